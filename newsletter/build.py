"""`newsletter build`: validate an issue, render it, and write build/<issue>/ atomically.

Either every output file is written or none is: outputs go to a temporary folder that
replaces the old one in one rename, so a failed build never leaves a half-written issue.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.config import Config
from newsletter.issue import Issue, load_issue
from newsletter.placeholders import Template
from newsletter.render import Rendered, render_issue

GMAIL_CLIP_BYTES = 102 * 1024
#: What a realistic reader looks like when sizing the email (Gmail clips above 102 KB).
SAMPLE_RECIPIENT = {
    "name": "Maximilian Alexander Featherstonehaugh-Bialiatski",
    "email": "maximilian.featherstonehaugh@example-subscriber.org",
    "unsubscribe_url": "https://news.example.org/unsubscribe/" + "x" * 120,
}


@dataclass(frozen=True)
class Built:
    """A built issue: what `send` needs, in memory."""

    issue: Issue
    config: Config
    rendered: Rendered
    out_dir: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.issue.slug

    def sample_html_bytes(self) -> int:
        """Size of the HTML part with a realistic recipient filled in."""
        filled = Template(self.rendered.html, escape_html=True).fill(SAMPLE_RECIPIENT)
        return len(filled.encode("utf-8"))


def build_issue(issue_path: Path, config: Config, *, write: bool = True) -> Built:
    """Load, validate and render an issue; with `write`, replace build/<slug>/ atomically."""
    issue = load_issue(issue_path, display=_display(issue_path))
    rendered = render_issue(issue, config)
    out_dir = config.build_dir / issue.slug
    built = Built(issue=issue, config=config, rendered=rendered, out_dir=out_dir)
    built.warnings.extend(_warnings(built))
    if write:
        _write(built)
    return built


def _warnings(built: Built) -> list[str]:
    out = []
    size = built.sample_html_bytes()
    if size > GMAIL_CLIP_BYTES:
        out.append(f"email.html is {size / 1024:.1f} KB: Gmail clips messages over 102 KB")
    elif size > 90 * 1024:
        out.append(f"email.html is {size / 1024:.1f} KB: close to Gmail's 102 KB clipping limit")
    if not built.issue.preheader:
        out.append("no preheader: inboxes will show the first text of the email instead")
    return out


def _write(built: Built) -> None:
    r = built.rendered
    files = {
        "email.html": r.html,
        "email.txt": r.text,
        "web.html": r.web_html,
        "email.mjml": r.mjml,
        "meta.json": json.dumps(
            {
                "slug": built.slug,
                "subject": built.issue.subject,
                "preheader": built.issue.preheader,
                "date": built.issue.date.isoformat(),
                "language": built.issue.language or built.config.default_language,
                "fields": sorted(r.fields),
                "web_url": built.config.web_url(built.slug),
            },
            indent=2,
            ensure_ascii=False,
        ) + "\n",
    }
    parent = built.out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{built.slug}.", dir=parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        old = None
        if built.out_dir.exists():
            old = parent / f".{built.slug}.old.{os.getpid()}"
            os.replace(built.out_dir, old)
        os.replace(tmp, built.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def summary(built: Built) -> list[str]:
    """The one-screen summary `newsletter build` prints."""
    size = built.sample_html_bytes()
    margin = (GMAIL_CLIP_BYTES - size) / 1024
    lines = [
        f"built    {_display(built.out_dir)}/ (email.html, email.txt, web.html)",
        f"subject  {built.issue.subject}",
        f"size     {size / 1024:.1f} KB HTML "
        + (f"({margin:.1f} KB under Gmail's 102 KB clip)" if margin >= 0
           else f"({-margin:.1f} KB OVER Gmail's 102 KB clip)"),
        f"text     {len(built.rendered.text.encode('utf-8')) / 1024:.1f} KB",
    ]
    lines += [f"warning  {w}" for w in built.warnings]
    return lines


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
