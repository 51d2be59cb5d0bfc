"""The selectors driver of docs/examples/ against the real Postfix: many sessions on one thread.

The example shares no code with the built-in adapters and imports only public names, so this is
the proof that the driver contract of :mod:`smtpproto.driver` is enough for a custom I/O loop.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from smtpproto import SendResult

if TYPE_CHECKING:
    from tests.servers.postfix import PostfixInstance
    from tests.servers.tls import TLSMaterial

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "selectors_driver.py"


def _example() -> Any:
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import selectors_driver  # noqa: PLC0415
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    return selectors_driver


def test_the_example_uses_public_names_only() -> None:
    tree = ast.parse(EXAMPLE.read_text(encoding="utf-8"))
    imported = {
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    ours = {name for name in imported if name.startswith("smtpproto")}
    assert ours == {"smtpproto", "smtpproto.driver", "smtpproto.adapters.bodies"}
    assert not any(part.startswith("_") for name in ours for part in name.split("."))


@pytest.mark.postfix
def test_selectors_driver_delivers_to_postfix_over_starttls(
    postfix_server: PostfixInstance, tls_material: TLSMaterial
) -> None:
    postfix_server.clear_mailboxes()
    recipients = ["alice@postfix.test", "bob@postfix.test", "carol@postfix.test"]
    try:
        check_delivery(postfix_server, tls_material, recipients)
    finally:
        postfix_server.clear_mailboxes()  # the instance is shared by the whole session


def check_delivery(
    postfix_server: PostfixInstance, tls_material: TLSMaterial, recipients: list[str]
) -> None:
    results = _example().send_all(
        *postfix_server.address,
        tls_material.client_context(),
        [*recipients, "reject1@postfix.test"],
        sender="sender@postfix.test",
        server_hostname="mx.postfix.test",
    )
    delivered, refused = results[:3], results[3]
    assert all(isinstance(r, SendResult) and r.all_delivered for r in delivered), results
    # A refused recipient is the operation's error, reported for that session alone.
    assert type(refused).__name__ == "RecipientsRefused", refused
    for rcpt in recipients:
        local = rcpt.split("@")[0]
        # Postfix delivers into the Maildir after its 250: wait for it, so that nothing of
        # this test arrives after the mailboxes are cleared for the next one.
        (delivered,) = postfix_server.wait_for_messages(local, 1)
        assert f"Hello, {rcpt}.".encode() in delivered
