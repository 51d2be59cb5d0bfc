"""AUTH through each adapter against aiosmtpd (PLAIN and LOGIN, one account)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from smtpproto import AuthenticationError, CleartextAuthRefused, TLSMode

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter
    from tests.servers.fixtures import SMTPServerFactory
    from tests.servers.tls import TLSMaterial


USER, PASSWORD = "user", "pass-wörd"
SENDER = "sender@example.org"
MESSAGE = b"Subject: auth\r\n\r\nauthenticated\r\n"


def test_auth_over_starttls(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(starttls="offer", auth=(USER, PASSWORD))
    with adapter.connect(
        *server.address, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context()
    ) as client:
        assert client.extensions.auth >= {"PLAIN", "LOGIN"}
        assert client.authenticate(USER, PASSWORD).code == 235
        assert client.send_message(MESSAGE, SENDER, ["one@example.org"]).all_delivered
    (message,) = server.messages
    assert message.auth_user == USER
    assert message.tls


def test_auth_wrong_password(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(starttls="offer", auth=(USER, PASSWORD))
    with adapter.connect(
        *server.address, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context()
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.authenticate(USER, "wrong")
        assert caught.value.code == 535
        assert not caught.value.temporary
        assert client.noop().code == 250  # a refused AUTH leaves the session usable


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_in_cleartext_refused_S8(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    """S8: a password never crosses a cleartext connection unless explicitly allowed."""
    server = smtp_server_factory(auth=(USER, PASSWORD), auth_require_tls=False)
    with adapter.connect(*server.address, tls=TLSMode.NONE) as client:
        assert "PLAIN" in client.extensions.auth
        with pytest.raises(CleartextAuthRefused):
            client.authenticate(USER, PASSWORD)
        assert client.noop().code == 250
    lines = server.connections[0].lines
    assert server.connections[0].verbs == ["EHLO", "NOOP", "QUIT"]
    assert not any(PASSWORD.encode() in line for line in lines)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_in_cleartext_when_allowed_S8(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(auth=(USER, PASSWORD), auth_require_tls=False)
    with adapter.connect(*server.address, tls=TLSMode.NONE) as client:
        assert client.authenticate(USER, PASSWORD, allow_cleartext=True).code == 235
        assert client.send_message(MESSAGE, SENDER, ["one@example.org"]).all_delivered
    (message,) = server.messages
    assert message.auth_user == USER
    assert not message.tls
    assert server.connections[0].verbs[:2] == ["EHLO", "AUTH"]
