"""Every SMTP control method of the seed, with the trio adapter, against a local server.

The ``# [Name]`` ... ``# [/Name]`` markers delimit the snippets that docs/seed-mapping.rst shows.
Run: python docs/examples/seed_trio.py
"""

from __future__ import annotations

import sys
from email.message import EmailMessage
from typing import TYPE_CHECKING

import trio
from local_server import PASSWORD, REFUSED, USERNAME, local_server

if TYPE_CHECKING:  # mypy cannot follow the package-dir mapping: it knows adapters/ as "adapters"
    from adapters.trio import SMTPClient, TLSMode
else:
    # [Initialize]
    from smtpproto.adapters.trio import SMTPClient, TLSMode
    # [/Initialize]


async def main() -> int:
    with local_server() as server:
        # [Connect]
        client = await SMTPClient.connect(
            server.host,
            server.port,
            tls=TLSMode.STARTTLS,  # the default: STARTTLS is required, the certificate verified
            ssl_context=server.client_context,  # trusts the local server's private CA
            local_hostname="client.example.org",
        )
        print("connected; TLS:", client.tls_active, "verified:", client.tls_verified)
        # [/Connect]
        async with client:
            # [Authenticate]
            reply = await client.authenticate(USERNAME, PASSWORD)
            print("authenticated:", reply.code)
            # [/Authenticate]

            # [SendMessage]
            message = EmailMessage()
            message["From"] = "alice@example.org"
            message["To"] = "bob@example.net, " + REFUSED
            message["Subject"] = "SendMessage"
            message.set_content("One call: envelope from the headers, a result per recipient.\n")
            result = await client.send_message(message)
            for outcome in result:
                print("SendMessage:", outcome.recipient, outcome.delivered, outcome.rcpt_reply.code)
            # [/SendMessage]

            # [CreateMessage]
            await client.create_message("alice@example.org")  # MAIL FROM
            # [/CreateMessage]
            # [AddRecipient]
            for recipient in ("carol@example.net", REFUSED):
                added = await client.add_recipient(recipient)  # RCPT TO; a refusal is a result
                print("AddRecipient:", recipient, added.accepted, added.rcpt_reply.code)
            # [/AddRecipient]
            # [AppendMessage]
            # The first append sends DATA; the content then streams in pieces of any size.
            await client.append_message(b"From: alice@example.org\r\nSubject: staged\r\n\r\n")
            await client.append_message(b".a line that starts with a dot\r\n")
            # [/AppendMessage]
            # [CloseMessage]
            staged = await client.close_message()  # the final dot; the verdict per recipient
            print("CloseMessage: delivered to", staged.delivered, "failed:", staged.failed)
            # [/CloseMessage]
        # [Disconnect]
        # Leaving the block above sent QUIT and closed the connection.  disconnect() does the
        # same without a block, and does nothing when the session is already closed.
        await client.disconnect()
        # [/Disconnect]
        print("stored:", [(m.sender, m.recipients) for m in server.messages])
    return 0 if len(server.messages) == 2 else 1


if __name__ == "__main__":
    sys.exit(trio.run(main))
