"""TLS through each adapter: STARTTLS, implicit TLS, certificate verification (aiosmtpd)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from smtpproto import TLSError, TLSMode, TLSRequiredError

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter
    from tests.servers.fixtures import SMTPServerFactory
    from tests.servers.tls import TLSMaterial


SENDER = "sender@example.org"
MESSAGE = b"Subject: tls\r\n\r\nover TLS\r\n"


def test_starttls_verified_delivery_S5(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(starttls="offer")
    with adapter.connect(
        *server.address, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context()
    ) as client:
        assert client.tls_active
        assert client.tls_verified
        assert not client.extensions.starttls  # the EHLO after the handshake no longer offers it
        result = client.send_message(MESSAGE, SENDER, ["one@example.org"])
    assert result.all_delivered
    (message,) = server.messages
    assert message.tls
    assert message.content == MESSAGE
    # A fresh EHLO follows the handshake; nothing was queued behind STARTTLS (S5).
    assert server.connections[0].verbs == [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "QUIT",
    ]


def test_starttls_required_but_not_offered_S3(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    """S3: no STARTTLS under a require-TLS policy: TLSRequiredError, then QUIT only."""
    server = smtp_server_factory()
    with pytest.raises(TLSRequiredError):
        adapter.connect(
            *server.address, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context()
        )
    assert server.connections[0].verbs == ["EHLO", "QUIT"]


def test_implicit_tls(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(implicit_tls=True)
    with adapter.connect(
        *server.address, tls=TLSMode.IMPLICIT, ssl_context=tls_material.client_context()
    ) as client:
        assert client.tls_active
        assert client.tls_verified
        result = client.send_message(MESSAGE, SENDER, ["one@example.org"])
    assert result.all_delivered
    (message,) = server.messages
    assert message.tls
    assert server.connections[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.parametrize("kind", ["untrusted", "wrong-name", "expired"])
def test_starttls_bad_certificate_fails_S3(
    adapter: Adapter,
    smtp_server_factory: SMTPServerFactory,
    tls_material: TLSMaterial,
    kind: str,
) -> None:
    """Verification is on: a bad certificate is a TLSError, and no MAIL or AUTH follows (S3)."""
    server = smtp_server_factory(starttls="offer", cert_kind=kind)
    with pytest.raises(TLSError) as caught:
        adapter.connect(
            *server.address, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context()
        )
    assert caught.value.temporary
    assert server.connections[0].verbs == ["EHLO", "STARTTLS"]
    assert server.messages == []


@pytest.mark.parametrize("kind", ["untrusted", "wrong-name"])
def test_implicit_tls_bad_certificate_fails(
    adapter: Adapter,
    smtp_server_factory: SMTPServerFactory,
    tls_material: TLSMaterial,
    kind: str,
) -> None:
    server = smtp_server_factory(implicit_tls=True, cert_kind=kind)
    with pytest.raises(TLSError):
        adapter.connect(
            *server.address, tls=TLSMode.IMPLICIT, ssl_context=tls_material.client_context()
        )
    # aiosmtpd records a connection only once its handshake completed: none ever did.
    assert server.connections == [], [c.verbs for c in server.connections]


def test_default_context_does_not_trust_the_test_ca(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    """Without ``ssl_context`` the system store decides, and it does not know the test CA."""
    server = smtp_server_factory(starttls="offer")
    with pytest.raises(TLSError):
        adapter.connect(*server.address, tls=TLSMode.STARTTLS)
    assert server.connections[0].verbs == ["EHLO", "STARTTLS"]


def test_opportunistic_unverified_still_encrypts(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    """Opportunistic MX delivery (RFC 7435): an untrusted certificate still beats cleartext."""
    server = smtp_server_factory(starttls="offer", cert_kind="untrusted")
    with adapter.connect(*server.address, tls=TLSMode.OPPORTUNISTIC, verify=False) as client:
        assert client.tls_active
        assert not client.tls_verified
        assert client.send_message(MESSAGE, SENDER, ["one@example.org"]).all_delivered
    assert server.messages[0].tls


def test_opportunistic_without_starttls_goes_on_in_cleartext(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory()
    with adapter.connect(*server.address, tls=TLSMode.OPPORTUNISTIC) as client:
        assert not client.tls_active
        assert not client.tls_verified
        assert client.send_message(MESSAGE, SENDER, ["one@example.org"]).all_delivered
    assert not server.messages[0].tls
