"""The build pipeline end to end on a small issue: placeholders survive, HTML is escaped."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run

ISSUE = """\
subject: "Hello {{ name }}"
preheader: A small issue
date: 2011-11-28
blocks:
  - type: section
    heading: Welcome
    body: |
      Dear {{ name }}, <script>alert(1)</script> [a link](https://example.org/x) [bad](javascript:alert(1))
list: campaigns
"""


def test_build_keeps_placeholders_and_escapes_html(project: Path) -> None:
    (project / "issues" / "tiny.yaml").write_text(ISSUE)
    r = run(["build", "issues/tiny.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    html = (project / "build/tiny/email.html").read_text()
    assert 'href="{{ unsubscribe_url }}"' in html
    assert "Dear {{ name }}" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html.split("<body", 1)[1].replace("[bad](javascript:alert(1))", "")
    assert "@media (prefers-color-scheme: dark)" in html
    web = (project / "build/tiny/web.html").read_text()
    assert "{{" not in web and "unsubscribe_url" not in web
    text = (project / "build/tiny/email.txt").read_text()
    assert "https://example.org/x" in text and "{{ unsubscribe_url }}" in text
