"""Write the seed corpora under ``fuzz/corpus/<target>/`` (run from anywhere; idempotent).

The seeds are small, readable inputs in each target's layout (see the targets' docstrings),
built from real server dialogues: Postfix, aiosmtpd, Exchange and Gmail EHLO lists, a pipelined
transaction with a refused recipient, AUTH exchanges with RFC 4954/2195/5802/7677/7628 challenges,
STARTTLS response injection, 421 shutdowns, LMTP per-recipient replies, SMTP smuggling bodies.
"""

from __future__ import annotations

from pathlib import Path

from fuzz_replies import MENU, OPTIONAL_KEYWORDS

from smtpproto import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    EndOfMessage,
    MailFrom,
    MessageData,
    Quit,
    RcptTo,
    Rset,
    StartTLS,
)

CORPUS = Path(__file__).resolve().parent / "corpus"

POSTFIX_EHLO = (
    b"250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    b"250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
    b"250 CHUNKING\r\n"
)
AIOSMTPD_EHLO = (
    b"250-mx.example.net\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    b"250-AUTH LOGIN PLAIN\r\n250 HELP\r\n"
)
EXCHANGE_EHLO = (
    b"250-EXCH01.corp.example.com Hello [192.0.2.7]\r\n250-SIZE 37748736\r\n"
    b"250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n"
    b"250-AUTH GSSAPI NTLM\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 XRDST\r\n"
)
GMAIL_EHLO = (
    b"250-smtp.gmail.com at your service, [198.51.100.4]\r\n250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"
)
OLD_AUTH_EHLO = (
    b"250-mx.example.org\r\n250-AUTH=LOGIN PLAIN\r\n250-AUTH LOGIN PLAIN\r\n250 SIZE\r\n"
)

HELLO = "HELLO"
ALL_EXTENSIONS = (1 << len(OPTIONAL_KEYWORDS)) - 1
LMTP = 0x80


def replies_seed(flags: int, script: list[Command | str], server: bytes) -> bytes:
    return bytes([flags, len(script), *(MENU.index(item) for item in script)]) + server


MAIL = MailFrom("alice@example.org")
RCPT = RcptTo("bob@example.net")
RCPT_DSN = RcptTo("carol@example.net", notify=("SUCCESS", "FAILURE"), orcpt="carol@example.net")
BODY = MessageData(b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n")

REPLIES = {
    "postfix-pipelined": replies_seed(
        ALL_EXTENSIONS,
        [MAIL, RCPT, RCPT_DSN, Data(), BODY, EndOfMessage(), Quit()],
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
        b"550 5.1.1 <carol@example.net>: Recipient address rejected: User unknown\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4Xb2Kq1wz0\r\n"
        b"221 2.0.0 Bye\r\n",
    ),
    "re-ehlo-postfix": replies_seed(ALL_EXTENSIONS, [HELLO, Quit()], POSTFIX_EHLO),
    "re-ehlo-gmail": replies_seed(0, [HELLO], GMAIL_EHLO),
    "re-ehlo-aiosmtpd": replies_seed(0, [HELLO], AIOSMTPD_EHLO),
    "multiline-rset": replies_seed(
        0, [Rset()], b"250-first line\r\n250-2.0.0 second\r\n250 2.0.0 last\r\n"
    ),
    "auth-login": replies_seed(
        ALL_EXTENSIONS,
        [Auth("LOGIN"), AuthResponse(b"user"), AuthResponse(b"user")],
        b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
    ),
    "auth-plain-refused": replies_seed(
        ALL_EXTENSIONS,
        [Auth("PLAIN", b"\0user\0secret")],
        b"535 5.7.8 Error: authentication failed: UGFzc3dvcmQ6\r\n",
    ),
    "auth-cancel": replies_seed(
        ALL_EXTENSIONS,
        [Auth("LOGIN"), AuthResponse(cancel=True)],
        b"334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication aborted\r\n",
    ),
    "starttls-injection": replies_seed(
        ALL_EXTENSIONS, [StartTLS()], b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
    ),
    "starttls-refused": replies_seed(
        ALL_EXTENSIONS, [StartTLS(), MAIL], b"454 4.7.0 TLS not available due to local problem\r\n"
    ),
    "421-mid-transaction": replies_seed(
        0,
        [MAIL, RCPT, Data()],
        b"250 2.1.0 Ok\r\n421 4.3.2 Service shutting down, closing transmission channel\r\n",
    ),
    "bdat": replies_seed(
        ALL_EXTENSIONS,
        [MAIL, RCPT, Bdat(b"Subject: hi\r\n\r\nchunk\r\n"), Bdat(b"last chunk\r\n", last=True)],
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 23 octets\r\n250 2.0.0 Ok: queued\r\n",
    ),
    "lmtp-per-recipient": replies_seed(
        LMTP | ALL_EXTENSIONS,
        [MAIL, RCPT, RCPT_DSN, Data(), BODY, EndOfMessage()],
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"
        b"250 2.1.5 <bob@example.net> delivered\r\n452 4.2.2 <carol@example.net> over quota\r\n",
    ),
    "bare-lf-and-close": replies_seed(0, [Rset()], b"250 ok\n250 ok\r\n"),
    "bare-code": replies_seed(0, [Rset(), MAIL], b"250\r\n250 2.1.0\r\n"),
}

EHLO = {
    "postfix": b"\0" + POSTFIX_EHLO,
    "aiosmtpd": b"\0" + AIOSMTPD_EHLO,
    "exchange": b"\0" + EXCHANGE_EHLO,
    "gmail": b"\0" + GMAIL_EHLO,
    "old-auth": b"\0" + OLD_AUTH_EHLO,
    "size-junk": b"\0250-mx\r\n250-SIZE 99999999999999999999999\r\n250-size -1\r\n250 8bitmime\r\n",
}


def fields(*texts: str) -> bytes:
    return b"\xff".join(text.encode() for text in texts)


ADDRESSES = {
    "mail-simple": b"\0\0\0" + fields("alice@example.org"),
    "mail-dsn-auth": b"\0\x34\x10" + fields("alice@example.org", "QQ-1+2=3", "<>"),
    "mail-quoted": b"\0\x0d\x00" + fields('"john \\"q\\" doe"@example.org'),
    "mail-utf8": b"\0\x0a\x00" + fields("δοκιμή@παράδειγμα.δοκιμή"),
    "mail-ipv6": b"\0\x00\x00" + fields("user@[IPv6:2001:db8::1]", "", "", "X-EXT", "v"),
    "mail-injection": b"\0\0\0" + fields("alice@example.org>\r\nRCPT TO:<evil@example.org"),
    "rcpt-dsn": b"\x01\x16\x00" + fields("bob@example.net", "bob@example.net", "rfc822"),
    "rcpt-postmaster": b"\x01\0\0" + fields("Postmaster"),
    "rcpt-literal": b"\x01\0\0" + fields("bob@[192.0.2.1]"),
    "ehlo-name": b"\x02\0\0" + fields("client.example.org"),
    "ehlo-idn": b"\x02\0\0" + fields("bücher.example"),
    "ehlo-literal": b"\x02\0\0" + fields("[IPv6:::1]"),
    "helo-name": b"\x03\0\0" + fields("client.example.org."),
    "vrfy": b"\x04\0\0" + fields("Postmaster"),
    "vrfy-smuggle": b"\x04\0\0" + fields("x\r\nRCPT TO:<evil@example.org>"),
    "auth": b"\x05\0\0" + fields("PLAIN", "\0user\0secret"),
    "local-hostname": b"\x06\0\0" + fields("client.example.org"),
}


def cut(body: bytes, *cuts: int) -> bytes:
    return bytes([len(cuts), *cuts]) + body


ENCODER = {
    "lf-dot-lf": cut(b"hello\n.\nMAIL FROM:<evil@example.org>\n"),
    "cr-dot-cr": cut(b"hello\r.\rMAIL FROM:<evil@example.org>\r"),
    "crlf-dot-lf": cut(b"hello\r\n.\nRCPT TO:<evil@example.org>\r\n"),
    "lf-dot-crlf": cut(b"hello\n.\r\nDATA\r\n"),
    "split-crlf": cut(b"line one\r\n.line two\r\n", 9, 1),
    "split-before-dot": cut(b"a\r\n.\r\nb", 3, 0, 1),
    "no-final-crlf": cut(b"Subject: x\r\n\r\nno final line break"),
    "empty": cut(b""),
    "lone-cr-end": cut(b"abc\r", 4),
    "binary": cut(bytes(range(256)), 100, 100),
}

SCRAM_SHA1 = (
    b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096\xff"
    b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
)
SCRAM_SHA256 = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    b"\xffv=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)
# mechanism index (see fuzz_sasl.MECHANISMS), mode bits: 1 initial response, 2 verify, 4 challenges
SASL = {
    "plain-empty-challenge": bytes([0, 6]) + b"",
    "plain": bytes([0, 3]),
    "login": bytes([1, 6]) + b"Username:\xffPassword:",
    "cram-md5": bytes([2, 6]) + b"<1896.697170952@postoffice.reston.mci.net>",
    "xoauth2-error": bytes([3, 7])
    + b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}',
    "oauthbearer-error": bytes([4, 7])
    + b'{"status":"invalid_token","scope":"example_scope",'
    + b'"openid-configuration":"https://example.com/.well-known/openid-configuration"}',
    "external": bytes([5, 3]),
    "scram-sha1": bytes([6, 7]) + SCRAM_SHA1,
    "scram-sha256": bytes([7, 7]) + SCRAM_SHA256,
    "scram-sha256-additional": bytes([7, 7]) + SCRAM_SHA256.replace(b"\xffv=", b"\xff\xffv="),
    "scram-error": bytes([7, 7]) + SCRAM_SHA256.split(b"\xff")[0] + b"\xffe=invalid-proof",
    "scram-extension": bytes([6, 5]) + b"m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXC,i=4096",
}

TARGETS = {
    "replies": REPLIES,
    "ehlo": EHLO,
    "addresses": ADDRESSES,
    "encoder": ENCODER,
    "sasl": SASL,
}


def main() -> None:
    for target, seeds in TARGETS.items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
