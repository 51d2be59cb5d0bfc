"""The loopback test servers start, answer and behave as their fixtures promise.

The clients here are the standard library's smtplib and dnspython, so a failure points at
the server fixtures, not at smtpproto.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import time
from collections.abc import Callable

import dns.name
import dns.resolver
import pytest

from tests.servers.aiosmtpd_server import SMTPServerConfig
from tests.servers.dnsmasq import DEFAULT_ZONE, NXDOMAIN_NAME, DNSServer, Zone
from tests.servers.fixtures import POSTFIX_ADDRESS, SMTPServerFactory
from tests.servers.postfix import CATCH_ALL, PostfixInstance, SmtpSink
from tests.servers.tls import TLSMaterial

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: smoke\r\n\r\n.leading dot\r\nbody\r\n"
)


def ehlo_keywords(client: smtplib.SMTP) -> set[str]:
    code, _ = client.ehlo()
    assert code == 250
    return {keyword.upper() for keyword in client.esmtp_features}


# --- aiosmtpd ---------------------------------------------------------------------------------


def test_aiosmtpd_records_envelope_and_exact_content(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    server = smtp_server_factory()
    with smtplib.SMTP(*server.address, timeout=5) as client:
        assert {"PIPELINING", "8BITMIME", "SIZE"} <= ehlo_keywords(client)
        assert "SMTPUTF8" not in client.esmtp_features
        client.sendmail("a@example.org", ["b@example.org", "c@example.org"], MESSAGE)
    (message,) = server.messages
    assert message.mail_from == "a@example.org"
    assert message.rcpt_tos == ("b@example.org", "c@example.org")
    assert message.content == MESSAGE  # dot-unstuffed, CRLF kept
    assert message.rcpt_options == ((), ())
    assert not message.tls
    assert server.connections[0].verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]


def test_aiosmtpd_per_recipient_replies_and_limits(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        recipient_replies={
            "bad@example.org": "550 5.1.1 no such user",
            "later@example.org": "450 4.2.1 busy",
        },
        max_recipients=2,
    )
    with smtplib.SMTP(*server.address, timeout=5) as client:
        client.ehlo()
        assert client.mail("")[0] == 250  # null reverse-path is accepted
        assert client.rcpt("bad@example.org") == (550, b"5.1.1 no such user")
        assert client.rcpt("later@example.org") == (450, b"4.2.1 busy")
        assert client.rcpt("one@example.org")[0] == 250
        assert client.rcpt("two@example.org")[0] == 250
        assert client.rcpt("three@example.org") == (452, b"4.5.3 Too many recipients")
        assert client.data(b"x\r\n")[0] == 250
    (message,) = server.messages
    assert message.mail_from == ""
    assert message.rcpt_tos == ("one@example.org", "two@example.org")


def test_aiosmtpd_extension_parameters_and_smtputf8(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        smtputf8=True,
        extra_ehlo=("DSN",),
        omit_ehlo=("8BITMIME",),
        accept_params=("RET", "ENVID", "NOTIFY"),
        size_limit=1000,
    )
    with smtplib.SMTP(*server.address, timeout=5) as client:
        keywords = ehlo_keywords(client)
        assert {"SMTPUTF8", "DSN", "PIPELINING"} <= keywords
        assert "8BITMIME" not in keywords
        assert client.esmtp_features["size"] == "1000"
        assert client.mail("a@example.org", ["SIZE=2000"])[0] == 552
        assert client.mail("jösé@example.org", ["SMTPUTF8", "RET=HDRS", "ENVID=Q1"])[0] == 250
        assert client.rcpt("b@example.org", ["NOTIFY=FAILURE"])[0] == 250
        assert client.data("Subject: ü\r\n\r\nü\r\n".encode())[0] == 250
    (message,) = server.messages
    assert message.mail_from == "jösé@example.org"
    assert message.smtp_utf8
    assert message.mail_options == ("SMTPUTF8", "RET=HDRS", "ENVID=Q1")
    assert message.rcpt_options == (("NOTIFY=FAILURE",),)
    assert message.content == "Subject: ü\r\n\r\nü\r\n".encode()


def test_aiosmtpd_required_starttls_and_auth(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(starttls="require", auth=("user", "secret"))
    with smtplib.SMTP(*server.address, timeout=5) as client:
        keywords = ehlo_keywords(client)
        assert "STARTTLS" in keywords
        assert "AUTH" not in keywords  # offered only after STARTTLS
        assert client.mail("a@example.org")[0] == 530
        client.starttls(context=tls_material.client_context())
        assert "AUTH" in ehlo_keywords(client)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("user", "wrong")
        client.login("user", "secret")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    (message,) = server.messages
    assert message.tls
    assert message.auth_user == "user"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_aiosmtpd_auth_without_tls_when_allowed(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        auth=("user", "secret"), auth_require_tls=False, auth_required=True
    )
    with smtplib.SMTP(*server.address, timeout=5) as client:
        assert "AUTH" in ehlo_keywords(client)
        assert client.mail("a@example.org")[0] == 530
        client.login("user", "secret")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert server.messages[0].auth_user == "user"


@pytest.mark.parametrize("kind", ["wrong-name", "untrusted", "expired"])
def test_aiosmtpd_bad_certificates_fail_verification(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial, kind: str
) -> None:
    server = smtp_server_factory(starttls="offer", cert_kind=kind)
    with smtplib.SMTP(*server.address, timeout=5) as client:
        client.ehlo()
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(context=tls_material.client_context())


def test_aiosmtpd_implicit_tls_on_ipv6(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(host="::1", implicit_tls=True, auth=("user", "secret"))
    with smtplib.SMTP_SSL(
        *server.address, timeout=5, context=tls_material.client_context()
    ) as client:
        assert "STARTTLS" not in ehlo_keywords(client)
        client.login("user", "secret")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert server.messages[0].tls


def test_aiosmtpd_port_25_on_a_zone_address(smtp_server_factory: SMTPServerFactory) -> None:
    host = DEFAULT_ZONE.address("mx1.ordered.test")
    server = smtp_server_factory(host=host, port=25)
    assert server.address == (host, 25)
    with smtplib.SMTP(host, 25, timeout=5) as client:
        client.sendmail("a@example.org", ["b@ordered.test"], MESSAGE)
    assert server.wait_for_messages(1)[0].rcpt_tos == ("b@ordered.test",)


def test_aiosmtpd_greeting_and_ehlo_overrides(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        greeting="554 5.3.2 no service here", ehlo_reply="502 5.5.2 no EHLO"
    )
    client = smtplib.SMTP(timeout=5)
    try:
        assert client.connect(*server.address) == (554, b"5.3.2 no service here")
        assert client.ehlo()[0] == 502
        assert client.helo()[0] == 250
    finally:
        client.close()


def test_aiosmtpd_data_reply_and_hang_up(smtp_server_factory: SMTPServerFactory) -> None:
    deferring = smtp_server_factory(data_reply="451 4.3.0 try again later")
    with smtplib.SMTP(*deferring.address, timeout=5) as client:
        client.ehlo()
        client.mail("a@example.org")
        client.rcpt("b@example.org")
        assert client.data(MESSAGE) == (451, b"4.3.0 try again later")
    hanging = smtp_server_factory(drop_after_data=True)
    client = smtplib.SMTP(*hanging.address, timeout=5)
    client.ehlo()
    client.mail("a@example.org")
    client.rcpt("b@example.org")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.data(MESSAGE)
    client.close()
    # Both servers had the whole message before they answered (or did not).
    assert deferring.messages[0].content == MESSAGE
    assert hanging.wait_for_messages(1)[0].content == MESSAGE


def test_aiosmtpd_refuses_non_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SMTPServerConfig(host="192.0.2.1")
    with pytest.raises(ValueError, match="tls"):
        SMTPServerConfig(starttls="offer")


def test_aiosmtpd_server_stops(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory()
    server.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(server.address, timeout=2):
        pass


# --- Postfix ----------------------------------------------------------------------------------


@pytest.mark.postfix
def test_postfix_offers_its_extensions_and_starttls(
    postfix_server: PostfixInstance, tls_material: TLSMaterial
) -> None:
    assert postfix_server.address == POSTFIX_ADDRESS
    with smtplib.SMTP(*postfix_server.address, timeout=10) as client:
        keywords = ehlo_keywords(client)
        assert {
            "PIPELINING",
            "CHUNKING",
            "8BITMIME",
            "SMTPUTF8",
            "DSN",
            "SIZE",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
        } <= keywords
        client.starttls(context=tls_material.client_context())
        assert "STARTTLS" not in ehlo_keywords(client)


@pytest.mark.postfix
def test_postfix_delivers_into_maildirs(
    postfix_server: PostfixInstance, tls_material: TLSMaterial
) -> None:
    with smtplib.SMTP(*postfix_server.address, timeout=10) as client:
        client.ehlo()
        client.starttls(context=tls_material.client_context())
        client.ehlo()
        assert client.mail("sender@example.org", ["SMTPUTF8", "BODY=8BITMIME"])[0] == 250
        assert client.rcpt("Carol@postfix.test", ["NOTIFY=NEVER"])[0] == 250
        assert client.rcpt("jösé@postfix.test")[0] == 250
        assert client.rcpt("smoke-catch-all@postfix.test")[0] == 250
        assert client.rcpt("reject-me@postfix.test")[0] == 550
        assert client.rcpt("defer-me@postfix.test")[0] == 450
        assert client.rcpt("unknown-me@postfix.test")[0] == 550
        assert client.rcpt("someone@elsewhere.test")[0] == 554
        assert client.data("Subject: ü\r\n\r\n.dot\r\nbody ü\r\n".encode())[0] == 250
    for mailbox in ("carol", "jösé"):
        (delivered,) = postfix_server.wait_for_messages(mailbox)
        assert delivered.endswith("\n\n.dot\nbody ü\n".encode())  # Maildir files use LF
        assert b"with UTF8SMTPS" in delivered  # SMTPUTF8 over TLS (RFC 6531 §3.7.3)
    assert postfix_server.mailbox("smoke-catch-all").name == CATCH_ALL
    caught = postfix_server.wait_for_messages("smoke-catch-all")
    assert any(b"X-Original-To: smoke-catch-all@postfix.test" in message for message in caught)


@pytest.mark.postfix
def test_postfix_accepts_bdat(postfix_server: PostfixInstance) -> None:
    before = len(postfix_server.messages("dave"))
    chunks = [b"Subject: chunks\r\n\r\n", b"one\r\ntwo\r\n"]
    with socket.create_connection(postfix_server.address, timeout=10) as connection:
        stream = connection.makefile("rb")

        def reply() -> bytes:
            line = stream.readline()
            while line[3:4] == b"-":
                line = stream.readline()
            return line

        assert reply().startswith(b"220")
        connection.sendall(b"EHLO client.test\r\n")
        assert reply().startswith(b"250")
        connection.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<dave@postfix.test>\r\n")
        assert reply().startswith(b"250")
        assert reply().startswith(b"250")
        connection.sendall(b"BDAT %d\r\n%s" % (len(chunks[0]), chunks[0]))
        assert reply().startswith(b"250")
        connection.sendall(b"BDAT %d LAST\r\n%s" % (len(chunks[1]), chunks[1]))
        assert reply().startswith(b"250")
        connection.sendall(b"QUIT\r\n")
        assert reply().startswith(b"221")
    delivered = postfix_server.wait_for_messages("dave", before + 1)[-1]
    assert b"\nSubject: chunks\n" in delivered  # Postfix adds its own headers after ours
    assert delivered.endswith(b"\n\none\ntwo\n")


@pytest.mark.postfix
def test_postfix_factory_starts_a_configured_instance(
    postfix_factory: Callable[..., PostfixInstance], tls_material: TLSMaterial
) -> None:
    instance = postfix_factory(
        main_cf={"message_size_limit": "100000", "smtpd_tls_security_level": "encrypt"}
    )
    assert instance.host == "127.0.0.1"
    with smtplib.SMTP(*instance.address, timeout=10) as client:
        assert client.ehlo()[0] == 250
        assert client.esmtp_features["size"] == "100000"
        assert client.mail("a@example.org")[0] == 530  # STARTTLS required
        client.starttls(context=tls_material.client_context())
        client.ehlo()
        client.sendmail("a@example.org", ["erin@postfix.test"], MESSAGE)
    assert len(instance.wait_for_messages("erin")) == 1
    instance.clear_mailboxes()
    assert instance.messages("erin") == []


def test_smtp_sink_accepts_mail(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(*smtp_sink.address, timeout=5) as client:
        assert "PIPELINING" in ehlo_keywords(client)
        assert client.sendmail("a@example.org", ["b@example.org"], MESSAGE) == {}


# --- DNS --------------------------------------------------------------------------------------


def mx_records(resolver: dns.resolver.Resolver, domain: str) -> list[tuple[int, str]]:
    answer = resolver.resolve(domain, "MX")
    return sorted(
        (record.preference, record.exchange.to_text(omit_final_dot=True) or ".")
        for record in answer
    )


def addresses(resolver: dns.resolver.Resolver, host: str, kind: str = "A") -> list[str]:
    return [record.to_text() for record in resolver.resolve(host, kind)]


@pytest.mark.dns
def test_dns_mx_records(dns_resolver: dns.resolver.Resolver) -> None:
    assert mx_records(dns_resolver, "ordered.test") == [
        (10, "mx1.ordered.test"),
        (20, "mx2.ordered.test"),
        (30, "mx3.ordered.test"),
    ]
    assert mx_records(dns_resolver, "equal.test") == [
        (10, "a.equal.test"),
        (10, "b.equal.test"),
        (20, "c.equal.test"),
    ]
    assert mx_records(dns_resolver, "postfix.test") == [(10, "mx.postfix.test")]
    assert addresses(dns_resolver, "mx.postfix.test") == [POSTFIX_ADDRESS[0]]


@pytest.mark.dns
def test_dns_null_mx(dns_resolver: dns.resolver.Resolver) -> None:
    (record,) = dns_resolver.resolve("nullmx.test", "MX")
    assert record.preference == 0
    assert record.exchange == dns.name.root


@pytest.mark.dns
def test_dns_mx_without_address_and_dead_mx(dns_resolver: dns.resolver.Resolver) -> None:
    assert mx_records(dns_resolver, "noaddress.test")[0] == (10, "ghost.noaddress.test")
    with pytest.raises(dns.resolver.NXDOMAIN):
        dns_resolver.resolve("ghost.noaddress.test", "A")
    assert addresses(dns_resolver, "dead.deadmx.test") == ["127.0.0.31"]
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.31", 25), timeout=2),
    ):
        pass


@pytest.mark.dns
def test_dns_implicit_mx_and_addresses(dns_resolver: dns.resolver.Resolver) -> None:
    with pytest.raises(dns.resolver.NoAnswer):
        dns_resolver.resolve("implicit.test", "MX")
    assert addresses(dns_resolver, "implicit.test") == ["127.0.0.51"]
    assert addresses(dns_resolver, "mx.multihomed.test") == ["127.0.0.61", "127.0.0.62"]
    assert addresses(dns_resolver, "mx.dualstack.test") == ["127.0.0.71"]
    assert addresses(dns_resolver, "mx.dualstack.test", "AAAA") == ["::1"]
    with pytest.raises(dns.resolver.NoAnswer):
        dns_resolver.resolve("mx.multihomed.test", "AAAA")


@pytest.mark.dns
def test_dns_cnames(dns_resolver: dns.resolver.Resolver) -> None:
    answer = dns_resolver.resolve("alias.test", "MX")
    assert answer.canonical_name.to_text(omit_final_dot=True) == "ordered.test"
    assert mx_records(dns_resolver, "alias.test")[0] == (10, "mx1.ordered.test")
    assert addresses(dns_resolver, "www.implicit.test") == ["127.0.0.51"]


@pytest.mark.dns
def test_dns_failures(dns_server: DNSServer) -> None:
    resolver = dns_server.resolver(lifetime=1.0)
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(NXDOMAIN_NAME, "MX")
    with pytest.raises(dns.resolver.NoNameservers, match="SERVFAIL"):
        resolver.resolve("servfail.test", "MX")
    with pytest.raises(dns.resolver.NoNameservers, match="SERVFAIL"):
        resolver.resolve("mx.servfail.test", "A")
    started = time.monotonic()
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve("timeout.test", "MX")
    assert time.monotonic() - started < 3
    with pytest.raises(dns.resolver.NoNameservers, match="REFUSED"):
        resolver.resolve("example.com", "A")  # no upstream: nothing outside the zone


@pytest.mark.dns
def test_dns_custom_zone(dns_server_factory: Callable[[Zone], DNSServer]) -> None:
    server = dns_server_factory(
        Zone(
            mx={"custom.test": [(5, "mx.custom.test")]},
            addresses={"mx.custom.test": ["127.0.0.99"]},
        )
    )
    resolver = server.resolver()
    assert mx_records(resolver, "custom.test") == [(5, "mx.custom.test")]
    assert addresses(resolver, "mx.custom.test") == ["127.0.0.99"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("ordered.test", "MX")


@pytest.mark.dns
def test_dns_async_resolver(dns_server: DNSServer) -> None:
    # asyncio here: dnspython 2.9's trio backend needs trio >= 0.34.
    answer = asyncio.run(dns_server.async_resolver().resolve("ordered.test", "MX"))
    assert len(answer) == 3
