"""The message, prepared once per issue and filled in per recipient.

`PreparedMessage` holds everything shared by all readers (subject, parts with
placeholders, sender, list headers). `Recipient` holds what differs. Backends that speak
MIME (outbox, smtp) call `PreparedMessage.to_bytes(recipient)`; the SendGrid backend
sends the shared parts once per request and each reader's fields as substitutions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipient:
    """One reader of one issue. `fields` fills the placeholders (name, email, unsubscribe_url, ...)."""

    email: str
    name: str | None
    fields: Mapping[str, str]
    message_id: str  # "<...@...>", unique per (issue, recipient), stable across reruns
    list_unsubscribe: str  # value of the List-Unsubscribe header: "<https://...>, <mailto:...>"


@dataclass
class PreparedMessage:
    """What every reader of an issue shares. Text fields still hold `{{ field }}` placeholders."""

    issue_slug: str
    subject: str
    html: str
    text: str
    from_name: str
    from_email: str
    reply_to: str | None
    list_id: str  # full List-Id header value: "List name <list.id>"
    headers: dict[str, str] = field(default_factory=dict)  # extra shared headers
