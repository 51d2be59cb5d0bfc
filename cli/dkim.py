"""DKIM on the command line: the signers of ``send --dkim-key/--dkim-selector/--dkim-domain``,
and ``smtpproto dkim-record``, which prints the DNS TXT record to publish for a key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .common import MissingExtra, UsageError

if TYPE_CHECKING:
    from smtpproto.dkim import DKIMSigner

__all__ = ["read_key", "run_dkim_record", "signers_from"]


def read_key(path: str) -> bytes:
    """The key file's bytes, or a :exc:`UsageError` that names it."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"cannot read the DKIM key {path}: {exc.strerror}") from None


def _signer(domain: str, selector: str, key: bytes, path: str) -> DKIMSigner:
    try:
        from smtpproto.dkim import DKIMSigner  # noqa: PLC0415 -- only when signing

        return DKIMSigner(domain, selector, key)
    except ImportError as exc:
        raise MissingExtra(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"DKIM key {path}: {exc}") from None


def signers_from(
    keys: Sequence[str], selectors: Sequence[str], domains: Sequence[str], sender: str
) -> tuple[DKIMSigner, ...]:
    """A signer per ``--dkim-key``, with the selector given in the same place; one
    ``--dkim-domain`` serves every key, and without one the domain of ``--from`` signs."""
    if not keys:
        if selectors or domains:
            raise UsageError("--dkim-selector and --dkim-domain need --dkim-key")
        return ()
    if len(selectors) != len(keys):
        raise UsageError("give one --dkim-selector for each --dkim-key, in the same order")
    if len(domains) not in (0, 1, len(keys)):
        raise UsageError("give one --dkim-domain for all keys, or one for each --dkim-key")
    if not domains:
        domain = sender.rpartition("@")[2]
        if not domain:
            raise UsageError("--from has no domain: give --dkim-domain")
        domains = [domain]
    if len(domains) == 1:
        domains = list(domains) * len(keys)
    return tuple(
        _signer(domain, selector, read_key(path), path)
        for path, selector, domain in zip(keys, selectors, domains, strict=True)
    )


def run_dkim_record(key_path: str, selector: str | None, domain: str | None) -> int:
    """Print the TXT record for the key; with a selector and a domain, as a zone file line
    with the name to publish it at."""
    key = read_key(key_path)
    if (selector is None) != (domain is None):
        raise UsageError("give --selector and --domain together, or neither")
    if selector is not None and domain is not None:
        print(_signer(domain, selector, key, key_path).zone_entry())
        return 0
    try:
        from smtpproto.dkim import dns_txt_record  # noqa: PLC0415

        print(dns_txt_record(key))
    except ImportError as exc:
        raise MissingExtra(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"DKIM key {key_path}: {exc}") from None
    return 0
