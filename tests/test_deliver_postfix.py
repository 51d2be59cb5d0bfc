"""``deliver()`` to a real MTA found through DNS: postfix.test's MX is mx.postfix.test, the
private Postfix on 127.0.0.25:25.  Accepted mail is checked in Postfix's Maildirs."""

from __future__ import annotations

import pytest

from smtpproto import TLSPolicy
from tests.deliver_harness import Deliverer
from tests.servers.postfix import PostfixInstance
from tests.servers.tls import TLSMaterial

pytestmark = [pytest.mark.dns, pytest.mark.postfix]

ALICE, BOB = "alice@postfix.test", "bob@postfix.test"
REJECT, DEFER = "reject@postfix.test", "defer@postfix.test"


@pytest.fixture
def postfix(postfix_server: PostfixInstance) -> PostfixInstance:
    """The shared instance with empty mailboxes."""
    postfix_server.clear_mailboxes()
    return postfix_server


def test_postfix_delivered_rejected_and_deferred_through_dns(
    deliver: Deliverer, postfix: PostfixInstance
) -> None:
    """alice and bob land in their Maildirs; reject… is 550 permanent, defer… is 450 temporary
    (Postfix is the only MX, so a 4xx there defers).  STARTTLS is used, unverified."""
    sent = deliver([ALICE, REJECT, BOB, DEFER])
    report = sent.report
    assert report.with_status("delivered") == [ALICE, BOB]
    assert report.with_status("permanent") == [REJECT]
    assert report.with_status("temporary") == [DEFER]
    for rcpt in (ALICE, BOB):
        outcome = report[rcpt]
        assert (outcome.server_host, outcome.server_address) == ("mx.postfix.test", "127.0.0.25")
        assert (outcome.tls, outcome.tls_verified) == (True, False)
    rejected = report[REJECT]
    assert rejected.reply is not None and rejected.reply.code == 550
    assert str(rejected.reply.enhanced_status) == "5.1.1"
    deferred = report[DEFER]
    assert deferred.reply is not None and deferred.reply.code == 450
    for local_part in ("alice", "bob"):
        [message] = postfix.wait_for_messages(local_part)
        assert sent.marker.encode() in message
    # The refused recipients reached no mailbox (the catch-all would take any other name).
    assert postfix.messages("reject") == [] and postfix.messages("defer") == []


def test_postfix_required_tls_is_verified_for_the_mx_name(
    deliver: Deliverer, postfix: PostfixInstance, tls_material: TLSMaterial
) -> None:
    sent = deliver(
        [ALICE],
        tls_policy=TLSPolicy(required_domains=frozenset({"postfix.test"})),
        ssl_context=tls_material.client_context(),
    )
    outcome = sent[ALICE]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", True, True)
    [message] = postfix.wait_for_messages("alice")
    assert sent.marker.encode() in message
