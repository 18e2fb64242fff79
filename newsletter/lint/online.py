"""`check --online`: does every link and image answer? Slow and off by default."""

from __future__ import annotations

import concurrent.futures
import urllib.error
import urllib.request

from newsletter.compose.build import Built
from newsletter.deliver.placeholders import PLACEHOLDER
from newsletter.lint.context import Context
from newsletter.lint.findings import Finding
from newsletter.lint.links import links_of


def check_online(built: Built, *, timeout: float = 5.0, workers: int = 8) -> list[Finding]:
    """HEAD every http(s) link and image of the HTML part, a few at a time; GET if HEAD is refused.

    The issue's own web version is skipped: it is published after the send, not before.
    """
    ctx = Context(built)
    web_url = built.config.web_url(built.slug)
    targets = [(kind, url) for kind, url in links_of(ctx)
               if url.lower().startswith(("http://", "https://")) and not PLACEHOLDER.search(url)
               and url.rstrip("/") != web_url.rstrip("/")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        answers = list(pool.map(lambda t: _probe(t[1], timeout), targets))
    out = []
    for (kind, url), problem in zip(targets, answers, strict=True):
        if problem:
            file, line = ctx.locate(url)
            out.append(Finding(file, line, "error", f"{kind} {problem}: {url}", "online"))
    return out


def _probe(url: str, timeout: float) -> str | None:
    """None if `url` answers with a success (after redirects), else what went wrong."""
    headers = {"User-Agent": "newsletter-check/1 (link checker)"}
    for method in ("HEAD", "GET"):
        req = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
                if resp.status < 400:
                    return None
                status = resp.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            return f"does not answer ({'timed out' if 'timed out' in str(reason) else reason})"
        if method == "HEAD" and status in (403, 405, 501):
            continue  # some servers refuse HEAD only
        return f"answers HTTP {status}"
    return f"answers HTTP {status}"
