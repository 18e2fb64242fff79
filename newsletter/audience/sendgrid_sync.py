"""`newsletter suppressions sync`: what SendGrid knows to be gone, pulled into our suppression list.

SendGrid keeps its own suppression lists (bounces, blocks, spam reports, invalid emails,
global unsubscribes) and reports changes through the event webhook, but only while
`newsletter serve` is reachable. Pulling them before every SendGrid send closes that gap:
a send never mails someone SendGrid already knows to be gone, even if the webhook was down.

Each list is read page by page (`limit`/`offset`, SendGrid's paging for these endpoints)
and only from where the last sync stopped (`start_time`, inclusive, the `created` time of
the newest entry seen). Inserting is idempotent, so reading the boundary second twice is
harmless, and the cursor only moves once a list has been read to its end: a sync cut off
halfway re-reads, it never skips.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from newsletter.audience.secrets import SENDGRID_KEY_VAR, env_secret
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.store import Store

PAGE = 500  # SendGrid's largest page for the suppression endpoints
#: Seconds re-read before the newest entry already seen: an entry SendGrid records late
#: (its clock, its queues) is still picked up; re-reading costs nothing (inserts are idempotent).
OVERLAP = 3600
SOURCE = "sendgrid-sync"
#: SendGrid list -> (our reason, what the detail says)
LISTS: dict[str, tuple[str, str]] = {
    "bounces": ("bounced", "SendGrid bounce"),
    "blocks": ("dropped", "SendGrid block"),
    "spam_reports": ("complained", "SendGrid spam report"),
    "invalid_emails": ("bounced", "SendGrid invalid email"),
    "unsubscribes": ("unsubscribed", "SendGrid global unsubscribe"),
}


class SyncError(NewsletterError):
    """SendGrid cannot be read (key missing or refused, unreachable, unexpected answer)."""


@dataclass
class SyncReport:
    read: dict[str, int] = field(default_factory=dict)  # entries read per list
    new: int = 0  # addresses newly suppressed
    requests: int = 0

    def line(self) -> str:
        parts = ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in self.read.items())
        return f"SendGrid suppressions read: {parts}; {self.new:,} newly suppressed"


class SendGridReader:
    """GET the suppression lists with the API key from SENDGRID_API_KEY (never shown)."""

    def __init__(self, config: Config, *, timeout: float | None = None, max_wait: float = 60):
        self.host = str(config.sendgrid.get("host") or "https://api.sendgrid.com").rstrip("/")
        self.timeout = float(timeout or config.sendgrid.get("timeout") or 30)
        self.max_wait = max_wait
        key = env_secret(SENDGRID_KEY_VAR)
        if not key:
            raise SyncError(f"{SENDGRID_KEY_VAR} is not set: `suppressions sync` needs the SendGrid API key")
        self._auth = f"Bearer {key}"
        self.requests = 0

    def get(self, path: str, params: dict[str, int]) -> list[dict[str, Any]]:
        url = f"{self.host}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Authorization": self._auth, "Accept": "application/json"})
        waited = 0.0
        while True:
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as r:  # noqa: S310 - https/http host
                    data = json.loads(r.read())
            except urllib.error.HTTPError as e:
                body = _errors(e)
                if e.code == 429 and waited < self.max_wait:
                    reset = e.headers.get("X-RateLimit-Reset", "")
                    pause = max(0.2, min(float(reset) - time.time(), 10.0)) if reset.isdigit() else 1.0
                    time.sleep(pause)
                    waited += pause
                    continue
                if e.code in (401, 403):
                    raise SyncError(f"SendGrid at {self.host} refused the API key in {SENDGRID_KEY_VAR} "
                                    f"({e.code}{': ' + body if body else ''}); it needs suppression read access"
                                    ) from None
                raise SyncError(f"SendGrid at {self.host} answered {e.code} to GET {path}"
                                + (f": {body}" if body else "")) from None
            except urllib.error.URLError as e:
                raise SyncError(f"cannot reach SendGrid at {self.host}: {e.reason}") from None
            except (OSError, ValueError) as e:
                raise SyncError(f"SendGrid at {self.host}: GET {path} failed: {e}") from None
            if not isinstance(data, list):
                raise SyncError(f"SendGrid at {self.host}: GET {path} did not answer a list")
            return data

    def entries(self, name: str, start_time: int | None, end_time: int) -> Iterator[dict[str, Any]]:
        """Every entry of one list created in [start_time, end_time], page by page."""
        offset = 0
        while True:
            params = {"limit": PAGE, "offset": offset, "end_time": end_time}
            if start_time is not None:
                params["start_time"] = start_time
            page = self.get(f"/v3/suppression/{name}", params)
            yield from page
            if len(page) < PAGE:
                return
            offset += len(page)


def _errors(e: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(e.read() or b"{}")
        return "; ".join(str(x.get("message", "")) for x in data.get("errors", []) if isinstance(x, dict))[:300]
    except (ValueError, OSError, AttributeError):
        return ""


def sync(store: Store, reader: SendGridReader, *, now: Callable[[], float] = time.time,
         progress: Callable[[str], None] | None = None) -> SyncReport:
    """Pull every list that is new since the last sync into the suppression list."""
    report = SyncReport()
    end = int(now())
    for name, (reason, what) in LISTS.items():
        cursor_name = f"sendgrid:{name}"
        start = store.sync_cursor(cursor_name)
        newest = int(start) if start else None
        begin = max(0, newest - OVERLAP) if newest is not None else None
        rows: list[tuple[str, str, str, str]] = []
        n = 0
        for entry in reader.entries(name, begin, end):
            email = str(entry.get("email") or "").strip()
            if not email or "@" not in email:
                continue
            created = entry.get("created")
            if isinstance(created, int) and (newest is None or created > newest):
                newest = created
            detail = " ".join(str(entry.get(k) or "") for k in ("status", "reason")).strip()
            rows.append((email, reason, SOURCE, f"{what}: {detail}" if detail else what))
            n += 1
            if len(rows) >= 5000:
                report.new += store.suppress_many(rows)
                rows.clear()
        report.new += store.suppress_many(rows)
        if newest is not None:  # nothing seen yet: the next sync reads the (empty) list from the start again
            store.set_sync_cursor(cursor_name, str(newest))
        report.read[name] = n
        if progress is not None:
            progress(f"{name.replace('_', ' ')}: {n:,} read")
    report.requests = reader.requests
    return report
