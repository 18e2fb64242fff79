"""Bounce addresses (VERP): each message's envelope sender names its issue and its reader.

With `[bounces] address = "bounces@example.org"`, the message for reader R of issue I is
sent with the envelope sender `bounces+<token>@example.org`. A bounce comes back to that
address, so who bounced is known from the address it arrived at, not guessed from the
bounce's text (which forwarding, aliases and badly written DSNs make unreliable).

The token is 20 characters of lower-case base32 (MTAs may change the case of a local part),
keeping the local part far below RFC 5321's 64 octets whatever the reader's address:

    4 characters   a plain hash of the issue id: which issue (a few candidates at most)
    16 characters  HMAC(signing key, issue, reader): which reader, and proof we made it

The reader is found by recomputing the tokens of that issue's ledger rows, so a token
cannot be forged without the signing key (NEWSLETTER_SECRET; old keys still match) and a
token for someone never mailed matches nobody.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.audience.secrets import SigningKeys

_DOMAIN = b"newsletter/verp/v1\n"
ISSUE_CHARS = 4
READER_CHARS = 16
TOKEN_RE = re.compile(r"^(?P<base>[^@+\s]+)\+(?P<token>[a-z2-7]{20})@(?P<domain>[^@\s]+)$", re.IGNORECASE)


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def issue_tag(issue: str) -> str:
    return _b32(hashlib.blake2b(issue.encode("utf-8"), digest_size=5).digest())[:ISSUE_CHARS]


def reader_tag(key: bytes, issue: str, email: str) -> str:
    mac = hmac.new(key, _DOMAIN + f"{issue}\n{email.strip().lower()}".encode(), hashlib.sha256).digest()
    return _b32(mac[:10])[:READER_CHARS]


def verp_address(bounce_address: str, keys: SigningKeys, issue: str, email: str) -> str:
    """`bounces+<token>@domain` for (issue, reader), from `[bounces] address`."""
    local, domain = bounce_address.rsplit("@", 1)
    return f"{local}+{issue_tag(issue)}{reader_tag(keys.current, issue, email)}@{domain}"


def parse_verp(address: str, bounce_address: str) -> str | None:
    """The token if `address` is a VERP form of `bounce_address`, else None."""
    m = TOKEN_RE.match(address.strip().strip("<>"))
    if m is None:
        return None
    local, domain = bounce_address.rsplit("@", 1)
    if m.group("base").lower() != local.lower() or m.group("domain").lower() != domain.lower():
        return None
    return m.group("token").lower()


@dataclass
class VerpResolver:
    """Token -> (issue, reader), by recomputing tokens of the ledger's readers, one issue at
    a time and only for issues whose tag appears (so 100,000 bounces cost one pass per issue)."""

    keys: SigningKeys
    issues: list[str]
    readers_of: Callable[[str], list[str]]  # the ledger's addresses for an issue
    _by_issue: dict[str, dict[str, str]] = field(default_factory=dict)

    def resolve(self, token: str) -> tuple[str, str] | None:
        itag, rtag = token[:ISSUE_CHARS], token[ISSUE_CHARS:]
        for issue in self.issues:
            if issue_tag(issue) != itag:
                continue
            table = self._by_issue.get(issue)
            if table is None:
                table = {}
                for email in self.readers_of(issue):
                    for key in self.keys.all:
                        table.setdefault(reader_tag(key, issue, email), email)
                self._by_issue[issue] = table
            email = table.get(rtag)
            if email is not None:
                return issue, email
        return None
