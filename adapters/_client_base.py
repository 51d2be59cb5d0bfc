"""What the blocking and the async ``SMTPClient`` share: a session, a driver, the options
``connect`` takes, and what the session knows of its connection."""

from __future__ import annotations

import abc
import ssl
from typing import Generic, TypeVar

from smtpproto import Extensions, Session, SessionOptions, Timeouts

__all__ = ["ClientBase"]

D = TypeVar("D")

_DEFAULT_OPTIONS = SessionOptions()  # immutable: one serves every connect() given none


class ClientBase(abc.ABC, Generic[D]):
    """A :class:`~smtpproto.Session` and the driver ``D`` that runs its operations."""

    def __init__(
        self, options: SessionOptions | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._session = Session(options)
        self._driver = self._make_driver(ssl_context)

    @abc.abstractmethod
    def _make_driver(self, ssl_context: ssl.SSLContext | None) -> D:
        """The driver that performs this client's I/O requests."""

    @staticmethod
    def _connect_options(
        options: SessionOptions | None, timeout: float | Timeouts | None, local_hostname: str | None
    ) -> SessionOptions:
        """``connect()``'s ``timeout`` and ``local_hostname`` over its ``options``."""
        return (options or _DEFAULT_OPTIONS).updated(timeout=timeout, local_hostname=local_hostname)

    @property
    def extensions(self) -> Extensions:
        """What the server advertised in its last EHLO reply."""
        return self._session.extensions

    @property
    def tls_active(self) -> bool:
        return self._session.tls_active

    @property
    def tls_verified(self) -> bool:
        return self._session.tls_verified
