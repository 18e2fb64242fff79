"""A small newsletter project for send tests: example config, a tiny issue, a tiny theme.

The theme is the project's own (templates/ overrides the default theme entirely), so the
send tests exercise sending, not the default theme, and stay fast and stable while the
theme evolves. The theme still emits the reader's fields the way the real one does.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO
from tests.tomledit import edit_toml

MJML = """\
<mjml lang="{{ language }}">
  <mj-head><mj-title>{{ issue.subject }}</mj-title></mj-head>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>Dear {{ recipient.name }} from {{ recipient.city }}, {{ issue.title }}.</mj-text>
      {% for block in blocks %}<mj-text>{{ block.body | markdown }}</mj-text>{% endfor %}
      <mj-text>{{ config.org_name }}, {{ config.org_postal_address | replace("\n", ", ") }}</mj-text>
      {% if personal %}<mj-text><a href="{{ recipient.unsubscribe_url }}">Unsubscribe</a></mj-text>{% endif %}
    </mj-column></mj-section>
  </mj-body>
</mjml>
"""

TEXT = """\
Dear {{ recipient.name }} from {{ recipient.city }}, {{ issue.title }}.
{% for block in blocks %}
{{ block.body | markdown_text }}
{% endfor %}
{{ config.org_name }}
{{ config.org_postal_address }}
Unsubscribe: {{ recipient.unsubscribe_url }}
"""

ISSUE = """\
subject: "Brèves de campagne: {{ name }}"
preheader: Ales Bialiatski is still in prison
date: 2011-11-28
blocks:
  - type: section
    heading: News
    body: |
      Ales Bialiatski is **still** in prison. Écrivez-lui. A line that starts with a dot follows:
      .hidden dot
list: campaigns
"""

SLUG = "2011-11-28-test"


def make_project(root: Path, *, subscribers: int = 0, smtp_port: int | None = None,
                 settings: Mapping[str, object] | None = None) -> Path:
    """Write the project into `root`; `subscribers` > 0 writes that many rows to subscribers.csv.
    `settings` are more newsletter.toml keys, as tests.tomledit.edit_toml takes them."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    ours: dict[str, object] = {"subscribers": "subscribers.csv"}
    if smtp_port is not None:
        ours |= {"smtp.host": "127.0.0.1", "smtp.port": smtp_port}
    edit_toml(root / "newsletter.toml", {**ours, **(settings or {})})
    (root / "templates").mkdir(exist_ok=True)
    (root / "templates" / "email.mjml.j2").write_text(MJML)
    (root / "templates" / "email.txt.j2").write_text(TEXT)
    (root / "issues").mkdir(exist_ok=True)
    (root / "issues" / f"{SLUG}.yaml").write_text(ISSUE)
    if subscribers:
        write_subscribers(root / "subscribers.csv", subscribers)
    else:
        shutil.copy(REPO / "subscribers.example.csv", root / "subscribers.csv")
    return root


def address(i: int) -> str:
    return f"reader{i:06d}@example.org"


def write_subscribers(path: Path, n: int, *, start: int = 0) -> list[str]:
    emails = [address(i) for i in range(start, start + n)]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "language", "city"])
        for i, e in enumerate(emails, start):
            w.writerow([e, f"Reader {i}", "en", "Minsk"])
    return emails
