"""Events validate themselves on construction: bad input never becomes bytes (checklist S1)."""

from __future__ import annotations

import pytest

from smtpproto import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    Bdat,
    EnhancedStatus,
    MailFrom,
    MessageData,
    Quit,
    RcptTo,
    Reply,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": -1}, "SIZE must not be negative"),
        ({"body": "9BIT"}, "BODY must be one of"),
        ({"ret": "ALL"}, "RET must be FULL or HDRS"),
        ({"envid": ""}, "ENVID must not be empty"),
        ({"envid": "x" * 101}, "ENVID is longer than 100"),
        ({"envid": "+" * 34}, "ENVID is longer than 100"),
        ({"mt_priority": 10}, "MT-PRIORITY must be between -9 and 9"),
        ({"mt_priority": -10}, "MT-PRIORITY must be between -9 and 9"),
        ({"auth": "not an address"}, "address"),
        ({"extra": (("X FOO", None),)}, "keyword"),
        ({"extra": (("X-FOO", "a\r\nRCPT TO:<x@y>"),)}, "value"),
        ({"extra": (("X-FOO", "a=b"),)}, "value"),
    ],
)
def test_S1_mail_parameters_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MailFrom("a@example.org", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("sender", ["a@example.org\r\nRCPT TO:<x@y>", "a\x00@example.org", "<a@b>"])
def test_S1_injection_through_the_sender_is_refused(sender: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- each bad address has its own message
        MailFrom(sender)


def test_mail_parameters_that_are_valid() -> None:
    mail = MailFrom("", size=0, body="BINARYMIME", ret="FULL", envid="x", auth="<>", mt_priority=-9)
    assert mail.sender == ""
    assert MailFrom("a@example.org", auth="b@example.org", extra=(("X-FOO", "bar"),)).auth


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"notify": ()}, "one or more distinct"),
        ({"notify": ("SUCCESS", "SUCCESS")}, "one or more distinct"),
        ({"notify": ("NEVER", "DELAY")}, "NEVER cannot be combined"),
        ({"notify": ("SOMETIMES",)}, "NOTIFY conditions"),
        ({"orcpt": ""}, "ORCPT must not be empty"),
        ({"orcpt": "x" * 500}, "ORCPT is longer than 500"),
        ({"orcpt": "a@b", "orcpt_type": "rfc 822"}, "keyword"),
        ({"extra": (("X-FOO", " "),)}, "value"),
    ],
)
def test_S1_rcpt_parameters_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RcptTo("b@example.net", **kwargs)  # type: ignore[arg-type]


def test_C2_postmaster_needs_no_domain_only_for_rcpt() -> None:
    assert RcptTo("postmaster").recipient == "postmaster"
    with pytest.raises(ValueError, match="@"):
        MailFrom("Postmaster")


def test_secrets_stay_out_of_reprs() -> None:
    assert "hunter2" not in repr(Auth("PLAIN", b"\0user\0hunter2"))
    assert "hunter2" not in repr(AuthResponse(b"hunter2"))
    assert "secret" not in repr(MessageData(b"secret body"))
    assert "secret" not in repr(Bdat(b"secret body"))


def test_reply_classification_and_text() -> None:
    reply = Reply(250, ("2.0.0 one", "two"))
    assert reply.text == "2.0.0 one\ntwo"
    kinds = {
        code: (r.is_positive, r.is_intermediate, r.is_transient, r.is_permanent)
        for code in (250, 354, 451, 550)
        for r in [Reply(code)]
    }
    assert kinds == {
        250: (True, False, False, False),
        354: (False, True, False, False),
        451: (False, False, True, False),
        550: (False, False, False, True),
    }


def test_sentinels_have_readable_reprs() -> None:
    assert (repr(NEED_DATA), repr(PAUSED)) == ("NEED_DATA", "PAUSED")


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((999,), ValueError, "200-599"),
        ((199,), ValueError, "200-599"),
        ((600,), ValueError, "200-599"),
        ((651, ("what",)), ValueError, "200-599"),
        ((True,), TypeError, "int"),
        (("250",), TypeError, "int"),
        ((250.0,), TypeError, "int"),
        ((250, "abc"), TypeError, "tuple of str"),
        ((250, ["abc"]), TypeError, "tuple of str"),
        ((250, (b"abc",)), TypeError, "tuple of str"),
        ((250, ()), ValueError, "at least one line"),
        ((250, ("ok",), "2.0.0"), TypeError, "EnhancedStatus"),
        ((250, ("ok",), EnhancedStatus(5, 0, 0)), ValueError, "does not match"),
        ((250, ("ok",), None, "QUIT"), TypeError, "command"),
    ],
)
def test_reply_validates_on_construction(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Reply(*args)  # type: ignore[arg-type]


def test_valid_replies_and_the_parsers_path_make_equal_objects() -> None:
    assert Reply(200).lines == ("",) and Reply(599).code == 599
    made = Reply(250, ("2.0.0 ok",), EnhancedStatus(2, 0, 0), Quit())
    parsed = Reply(250, ("2.0.0 ok",), EnhancedStatus(2, 0, 0), Quit(), True)
    assert made == parsed and hash(made) == hash(parsed) and repr(made) == repr(parsed)
    assert Reply.synthesized(451, "4.4.1 no answer").enhanced_status == EnhancedStatus(4, 4, 1)
    with pytest.raises(ValueError, match="200-599"):
        Reply.synthesized(651, "nonsense")
