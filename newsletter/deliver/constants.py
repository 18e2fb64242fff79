"""Names the deliver code shares with the rest of the project and the outside world, defined once.

Imports nothing, so the config schema, the webhook receiver and `check` can use them without
loading a backend (or the `sendgrid` package).
"""

from __future__ import annotations

#: The backends, by name: "module:Class", imported only when one is built.
BACKENDS = {
    "outbox": "newsletter.deliver.backends.outbox:OutboxBackend",
    "smtp": "newsletter.deliver.backends.smtp:SMTPBackend",
    "sendgrid": "newsletter.deliver.backends.sendgrid:SendGridBackend",
}

#: RFC 8058's List-Unsubscribe-Post value: a POST to the List-Unsubscribe URL unsubscribes.
ONE_CLICK = "List-Unsubscribe=One-Click"

#: SendGrid custom_args keys; SendGrid echoes them as top-level keys of webhook events, so
#: the webhook receiver reads back which issue (and which message) an event is about.
ISSUE_ARG = "newsletter_issue"
MESSAGE_ID_ARG = "newsletter_message_id"
