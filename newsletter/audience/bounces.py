"""Reading what the mail servers sent back: bounces, told apart from auto-replies and other mail.

Who bounced is taken, in this order of trust, from
  1. the VERP address the bounce arrived at (`bounces+<token>@...`, see audience/verp.py):
     names issue and reader exactly, even through forwarding and aliases;
  2. flufl.bounce, Mailman's detector library: RFC 3464 DSNs and the non-standard formats
     real servers send (Exim, qmail, Yahoo, Exchange, Postfix, ...).
flufl.bounce gives addresses only, so the evidence kept with a suppression (status code and
the server's diagnostic) is read here: from the DSN's per-recipient fields, else from the
text near the address.

Hard or soft: a 5.x.x status is hard, except 5.2.2 (mailbox full); 4.x.x, a DSN's `delayed`
and a full mailbox are soft. A bounce whose kind cannot be told is soft: counting it is
safe, suppressing someone on a guess is not.

Auto-replies (vacation, out-of-office, challenge-response) are recognised and never counted:
listmonk counted them as bounces (its issue #1334). Anything not recognised is left alone.
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr
from typing import TYPE_CHECKING

from newsletter.store.bounces import Bounce

if TYPE_CHECKING:
    from newsletter.audience.mailboxes import Item, Source
    from newsletter.audience.secrets import SigningKeys
    from newsletter.audience.verp import VerpResolver
    from newsletter.store import Store

#: Bytes of each message that are parsed. A bounce's report comes first (the returned
#: original, possibly huge, comes last), so a 20 MB bounce is recognised from its start.
MAX_SCAN = 1 << 20

ADDRESS_RE = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
REPLY_RE = re.compile(r"(?<![\d.])([45]\d\d)[ :-]")
FULL_RE = re.compile(r"mailbox (is )?full|over ?quota|quota exceeded|insufficient (system )?storage"
                     r"|mailbox size limit", re.IGNORECASE)
DAEMON_RE = re.compile(r"mailer[-_ ]?daemon|postmaster|mail delivery (subsystem|system)|microsoftexchange",
                       re.IGNORECASE)
FAILURE_SUBJECT_RE = re.compile(r"undeliver|delivery (status notification|failure|has failed)|returned mail"
                                r"|failure notice|mail delivery failed|non[- ]?delivery|could not be delivered",
                                re.IGNORECASE)
AUTO_SUBJECT_RE = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesen"
                             r"|absence|r[ée]ponse automatique|vacation|on leave|away from|auto:"
                             r"|please confirm your (e-?mail|message)|verify your (e-?mail|message)|challenge)",
                             re.IGNORECASE)
ISSUE_HEADER_RE = re.compile(rb"^X-Newsletter-Issue:[ \t]*([A-Za-z0-9._-]{1,200})[ \t]*\r?$", re.MULTILINE)
#: Headers an MTA or mailbox writes with the address a message was delivered to.
ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "x-delivered-to",
                    "original-recipient", "to")


@dataclass(frozen=True)
class Failure:
    """One address a bounce reports as failed."""

    email: str
    kind: str  # hard | soft
    status: str = ""  # 5.1.1
    diagnostic: str = ""


@dataclass
class Finding:
    """What one message is."""

    kind: str  # bounce | auto-reply | other
    message_key: str
    failures: list[Failure] = field(default_factory=list)
    verp_token: str | None = None
    issue_hint: str | None = None  # X-Newsletter-Issue of the returned original, if it came back
    notes: list[str] = field(default_factory=list)


_parser = email.parser.BytesParser(policy=email.policy.compat32)


def message_key(raw: bytes, msg: Message | None, size: int) -> str:
    """The bounce's Message-ID, else a hash of its bytes: how a rerun knows it counted it."""
    mid = (msg.get("message-id", "") if msg is not None else "") or ""
    mid = " ".join(str(mid).split())
    if mid and len(mid) < 500:
        return f"mid:{mid}"
    return f"sha256:{hashlib.sha256(raw).hexdigest()}:{size}"


def classify(raw: bytes, *, size: int | None = None, bounce_address: str | None = None) -> Finding:
    """Tell what `raw` (a message's bytes, perhaps only its first MAX_SCAN) is."""

    size = len(raw) if size is None else size
    notes = []
    if len(raw) > MAX_SCAN:
        raw = raw[:MAX_SCAN]
    if size > MAX_SCAN:
        notes.append(f"{size / 1_048_576:.1f} MB message: only its first {MAX_SCAN // 1_048_576} MB was read")
    try:
        msg = _parser.parsebytes(raw)
    except Exception as e:  # noqa: BLE001 - compat32 is lenient; anything it still chokes on is "not a bounce"
        return Finding("other", message_key(raw, None, size), notes=[*notes, f"cannot be parsed: {e}"])
    key = message_key(raw, msg, size)
    token = _verp_token(raw, bounce_address) if bounce_address else None
    m = ISSUE_HEADER_RE.search(raw)
    hint = m.group(1).decode("ascii") if m else None

    blocks = _dsn_blocks(msg)
    from_daemon = bool(DAEMON_RE.search(str(msg.get("from", ""))))
    if not blocks and not from_daemon and _is_auto_reply(msg):
        return Finding("auto-reply", key, verp_token=token, notes=notes)
    temporary, permanent = _flufl(msg)
    text = _Text(msg)
    failures: list[Failure] = []
    for addr in sorted(temporary | permanent):
        status, diagnostic = _evidence(addr, blocks, text)
        failures.append(Failure(addr, _kind(addr in permanent, status, diagnostic), status, diagnostic))
    if blocks and not failures and _truncated(msg, blocks):
        notes.append("a delivery status notification without a readable recipient (truncated?)")
    looks_bounced = from_daemon or bool(FAILURE_SUBJECT_RE.search(str(msg.get("subject", "")))) or bool(blocks)
    if failures or (token and looks_bounced and not _only_successes(blocks)):
        if token and not failures:
            status, diagnostic = _evidence("", blocks, text)
            failures.append(Failure("", _kind(False, status, diagnostic, unknown="soft"), status, diagnostic))
        return Finding("bounce", key, failures, token, hint, notes)
    if not blocks and _is_auto_reply(msg):
        return Finding("auto-reply", key, verp_token=token, notes=notes)
    if blocks and not _only_successes(blocks) and not notes:
        notes.append("a delivery status notification naming no address that failed")
    return Finding("other", key, verp_token=token, notes=notes)


def _flufl(msg: Message) -> tuple[set[str], set[str]]:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector tripping on a malformed message: not recognised
        return set(), set()

    def clean(found: Iterable[bytes]) -> set[str]:
        out = set()
        for b in found:
            addr = b.decode("ascii", "replace").strip().strip("<>").strip()
            if ADDRESS_RE.match(addr):
                out.add(addr.lower())
        return out

    perm = clean(permanent)
    return clean(temporary) - perm, perm


def _dsn_blocks(msg: Message) -> list[Message]:
    """The per-recipient field groups of every message/delivery-status part (RFC 3464)."""
    blocks: list[Message] = []
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks.extend(b for b in payload if isinstance(b, Message) and (b.get("action") or b.get("status")))
    return blocks


def _only_successes(blocks: list[Message]) -> bool:
    """A DSN reporting delivery (Action: delivered/relayed/expanded), not failure."""
    return bool(blocks) and all(str(b.get("action", "")).strip().lower().startswith(("deliver", "relay", "expand"))
                                for b in blocks)


def _truncated(msg: Message, blocks: list[Message]) -> bool:
    return not any(b.get("final-recipient") or b.get("original-recipient") for b in blocks) or bool(msg.defects)


def _recipient(block: Message) -> Iterator[str]:
    for name in ("original-recipient", "final-recipient", "x-actual-recipient"):
        value = str(block.get(name, ""))
        addr = value.split(";", 1)[-1].strip().strip("<>").strip()
        if addr:
            yield addr.lower()


class _Text:
    """The bounce's readable text, decoded only if a DSN's own fields do not say enough."""

    def __init__(self, msg: Message):
        self.msg = msg
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = _text(self.msg)
        return self._value


@functools.lru_cache(maxsize=8)
def _verp_re(bounce_address: str) -> re.Pattern[bytes]:
    local, domain = (re.escape(x.encode()) for x in bounce_address.rsplit("@", 1))
    names = b"|".join(re.escape(h.encode()) for h in ENVELOPE_HEADERS)
    return re.compile(rb"^(?:" + names + rb"):[^\n]*?(?<![^\s<:,\"])" + local + rb"\+([a-z2-7]{20})@" + domain
                      + rb"(?![a-z0-9.-])", re.IGNORECASE | re.MULTILINE)


def _verp_token(raw: bytes, bounce_address: str) -> str | None:
    """The VERP token of the address the bounce was delivered to, read from the raw headers
    (Delivered-To, X-Original-To, Envelope-To, To...): no address parsing for most mail."""
    end = raw.find(b"\n\n")
    end2 = raw.find(b"\r\n\r\n")
    head = raw[:min(x for x in (end, end2, len(raw)) if x >= 0)]
    if b"+" not in head:
        return None
    head = re.sub(rb"\r?\n[ \t]+", b" ", head)  # unfold continued header lines
    m = _verp_re(bounce_address).search(head)
    return m.group(1).decode("ascii").lower() if m else None


def _evidence(addr: str, blocks: list[Message], text_of: _Text | str) -> tuple[str, str]:
    """(status code, diagnostic) for `addr`: from its DSN block, else from the text around it."""
    text = ""
    for block in blocks:
        if addr and addr not in set(_recipient(block)):
            continue
        status = str(block.get("status", "")).strip()
        m = STATUS_RE.search(status)
        diagnostic = " ".join(str(block.get("diagnostic-code", "")).split())
        if diagnostic.lower().startswith(("smtp;", "x-postfix;", "x-unix;", "x-local;")):
            diagnostic = diagnostic.split(";", 1)[1].strip()
        if m is None:
            m = STATUS_RE.search(diagnostic)
        if m is not None and not diagnostic and addr:  # the status alone: the text says why
            text = str(text_of)
            diagnostic = next((" ".join(x.split()) for x in text.splitlines() if addr in x.lower()), "")
        if m is not None or diagnostic:
            return (m.group(0) if m else ""), diagnostic[:500]
    # no DSN fields: the line mentioning the address, and the few after it
    text = str(text_of)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if addr and addr not in line.lower():
            continue
        para = []
        for x in lines[i:i + 4]:  # the address's paragraph: up to the next blank line
            if not x.strip():
                break
            para.append(x.strip())
        window = " ".join(para)
        m = STATUS_RE.search(window)
        r = REPLY_RE.search(window)
        if m or r:
            start = min(x.start() for x in (m, r) if x)
            return (m.group(0) if m else ""), window[start:][:500]
        if not addr:
            break
    m = STATUS_RE.search(text)
    if m is not None:
        line = next((x.strip() for x in text.splitlines() if m.group(0) in x), "")
        return m.group(0), line[:500]
    return "", ""


def _kind(permanent: bool, status: str, diagnostic: str, *, unknown: str = "hard") -> str:
    if status.startswith("4") or status == "5.2.2" or FULL_RE.search(diagnostic):
        return "soft"
    if status.startswith("5"):
        return "hard"
    r = REPLY_RE.search(diagnostic)
    if r is not None:
        return "soft" if r.group(1).startswith("4") or r.group(1) == "552" else "hard"
    return unknown if not permanent else "hard"


def _is_auto_reply(msg: Message) -> bool:
    """RFC 3834 and the common non-standard marks of vacation/out-of-office/challenge replies."""
    auto = str(msg.get("auto-submitted", "")).strip().lower()
    if auto and auto != "no":
        return True
    if any(msg.get(h) for h in ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated",
                                "x-vacation", "x-challenge", "x-boxbe-challenge")):
        return True
    if str(msg.get("precedence", "")).strip().lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(AUTO_SUBJECT_RE.search(str(msg.get("subject", ""))))


def _text(msg: Message) -> str:
    """The readable text of the bounce (text/* parts, not the returned original's body)."""
    out: list[str] = []
    for part in msg.walk():
        if part.get_content_maintype() != "text" or part.get_content_subtype() not in ("plain", "rfc822-headers"):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            try:
                out.append(payload[:200_000].decode(part.get_content_charset() or "latin-1", "replace"))
            except LookupError:  # an unknown charset name
                out.append(payload[:200_000].decode("latin-1"))
        if len(out) > 5:
            break
    return "\n".join(out)


def address_of(value: str) -> str:
    return parseaddr(value)[1].lower()


# --- scanning a mailbox and applying what is found ----------------------------------------------


@dataclass
class Summary:
    hard: int = 0
    soft: int = 0
    auto_replies: int = 0
    unrecognised: int = 0
    suppressed: int = 0
    already: int = 0  # bounces counted by an earlier run
    unmatched: int = 0  # bounces naming nobody this list mailed: left in place
    moved: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{self.hard + self.soft:,} bounces ({self.hard:,} hard, {self.soft:,} soft)",
                 f"{self.auto_replies:,} auto-replies ignored", f"{self.unrecognised:,} unrecognised left in place",
                 f"{self.suppressed:,} addresses newly suppressed"]
        if self.already:
            parts.append(f"{self.already:,} already counted")
        if self.unmatched:
            parts.append(f"{self.unmatched:,} naming nobody mailed, left in place")
        return ", ".join(parts)


def scan(source: Source, store: Store, *, keys: SigningKeys, bounce_address: str | None,
         soft_limit: int, soft_issues: int, batch: int = 500) -> Summary:
    """Classify every message of `source`, record the bounces, move (or remember) them.

    Bounces are recorded in the store before their message is moved, a batch at a time:
    a run stopped in between leaves a counted bounce in place, and the next run finds it
    already counted (by message key) and only moves it.
    """
    from newsletter.audience.verp import VerpResolver

    s = Summary()
    resolver = VerpResolver(keys, store.ledger_issues(), store.issue_readers)
    pending: list[tuple[Item, list[Bounce]]] = []

    def flush() -> None:
        found = [b for _item, bs in pending for b in bs]
        results = store.record_bounces(found, soft_limit=soft_limit, soft_issues=soft_issues)
        for b, r in zip(found, results, strict=True):
            if not r.new:
                s.already += 1
                continue
            if b.kind == "hard":
                s.hard += 1
            else:
                s.soft += 1
            s.suppressed += r.suppressed
        if source.moves:
            items = [item for item, _bs in pending]
            s.notes.extend(source.mark_processed(items))
            s.moved += len(items)
        pending.clear()

    for item in source.items():
        f = classify(item.raw, size=item.size, bounce_address=bounce_address)
        where = f"{source.name}:{item.ref}"
        s.notes.extend(f"{where}: {n}" for n in f.notes)
        if f.kind == "auto-reply":
            s.auto_replies += 1
            continue
        if f.kind != "bounce":
            s.unrecognised += 1
            continue
        if not source.moves and store.known_message(f.message_key):
            s.already += len(f.failures)
            continue
        found, notes = _attribute(f, store, resolver, keys)
        s.notes.extend(f"{where}: {n}" for n in notes)
        if not found:
            s.unmatched += 1
            continue
        pending.append((item, found))
        if len(pending) >= batch:
            flush()
    flush()
    return s


def _attribute(f: Finding, store: Store, resolver: VerpResolver,
               keys: SigningKeys) -> tuple[list[Bounce], list[str]]:
    """Which reader of which issue each failure is: by VERP token, else by the ledger."""
    if f.verp_token:
        who = resolver.resolve(f.verp_token)
        if who is None:
            hint = " (or NEWSLETTER_SECRET is not the key the issue was sent with)" if keys.is_development else ""
            return [], [f"bounce address token {f.verp_token} matches no reader this list mailed: forged or "
                        f"foreign{hint}; nothing suppressed, message left in place"]
        issue, email = who
        failure = next((x for x in f.failures if x.email == email), None) or f.failures[0]
        return [Bounce(f.message_key, email, issue, failure.kind, failure.status, failure.diagnostic)], []
    out, notes = [], []
    for x in f.failures:
        issues = store.mailed_issues(x.email)
        if not issues:
            notes.append(f"bounce for {x.email}, whom this list never mailed: nothing suppressed,"
                         " message left in place")
            continue
        issue = f.issue_hint if f.issue_hint in issues else issues[0]
        out.append(Bounce(f.message_key, x.email, issue, x.kind, x.status, x.diagnostic))
    return out, notes
