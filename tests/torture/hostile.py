"""Hostile values and the checks that say whether a rendered email survived them.

Shared by the fuzz tests and the hostile-content tests: the strings an attacker (or a
careless copy-paste) puts into an issue, a config or a subscriber list, and
`assert_safe_html`, the property every built email must have whatever went in.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import unquote

import lxml.etree
import lxml.html
from hypothesis import strategies as st

HOSTILE_STRINGS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '" onerror="alert(1)',
    "' onmouseover='alert(1)",
    "<style>body{display:none}</style>",
    "<iframe src=https://evil.example></iframe>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click]( javascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    "<a href=\"javascript:alert(1)\">x</a>",
    "</mj-text><mj-raw><script>alert(1)</script></mj-raw><mj-text>",
    "</title><script>alert(1)</script>",
    "<!--[if mso]><script>alert(1)</script><![endif]-->",
    "{{ unsubscribe_url }}",
    "{{ config.__class__.__init__.__globals__ }}",
    "{% include '../../../../etc/passwd' %}",
    "{{ '' }}{# x",
    "Subject\r\nBcc: victim@example.org",
    "line\nX-Injected: yes",
    "nul\x00byte",
    "\u2028\u2029\x85\x0b\x0c",
    "ünïcödé – “quotes” 🙂 \U0001f4a9",
    "\ud7ff\ue000\ufffd",
    "A" * 5000,
    "../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%0d%0aBcc:%20x@example.org",
    "=?utf-8?q?=0D=0ABcc:_x@example.org?=",
    "&amp;&lt;&gt;&#0;&#x0;",
    "\t \t",
    "",
]

#: A valid issue using every block type and every optional field: the seed of mutations.
BASE_ISSUE: dict[str, Any] = {
    "subject": "Hello {{ name }}",
    "preheader": "A preheader",
    "title": "A title",
    "date": dt.date(2011, 11, 28),
    "language": "fr",
    "links": {"view_in_browser": True, "donate": {"url": "https://example.org/donate", "label": "Faire un don"},
              "forward": {"url": "https://example.org/fwd"}, "website": {"url": "https://example.org/"}},
    "blocks": [
        {"type": "headline", "kicker": "K", "title": "T", "date": dt.date(2011, 11, 24),
         "image": {"src": "https://example.org/a.jpg", "alt": "A", "width": 600, "height": 300, "caption": "c"},
         "body": "Dear {{ name }}, **bold** [a](https://example.org/x)", "link": {"url": "https://example.org/l"}},
        {"type": "videos", "heading": "V", "items": [
            {"thumbnail": {"src": "https://example.org/t.jpg", "alt": "t"}, "caption": "c", "url": "https://e.org/v"}]},
        {"type": "gallery", "heading": "G", "intro": "intro", "items": [
            {"label": "L", "url": "https://example.org/g", "image": {"src": "https://example.org/g.jpg", "alt": "g"}}]},
        {"type": "quotes", "heading": "Q", "items": [
            {"text": "q", "author": "A", "role": "R", "date": dt.date(2011, 1, 1), "url": "https://example.org/q",
             "link_label": "more"}]},
        {"type": "teasers", "heading": "T", "items": [
            {"title": "t", "image": {"src": "https://example.org/i.jpg", "alt": "i"}, "excerpt": "e",
             "url": "https://example.org/t", "link_label": "Read"}]},
        {"type": "section", "heading": "S", "body": "b"},
        {"type": "buttons", "items": [{"label": "B", "url": "https://example.org/b", "style": "secondary"}]},
    ],
    "footer": {"text": "footer *text*", "unsubscribe_text": "Unsubscribe"},
}

FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "form", "input", "button", "textarea", "base",
                  "frame", "frameset", "applet", "svg", "math", "link-import"}
URL_ATTRS = {"href", "src", "action", "background", "formaction", "poster", "xlink:href", "lowsrc", "dynsrc"}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:", "file:")


def hostile_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Known-nasty strings, random text, and nasty strings glued to random text."""
    nasty = st.sampled_from(HOSTILE_STRINGS)
    return st.one_of(nasty, st.text(max_size=max_size),
                     st.builds(lambda a, b: a + b, nasty, st.text(max_size=max_size)))


def _scheme(url: str) -> str:
    cleaned = re.sub(r"[\x00-\x20\x7f]+", "", unquote(url)).lower()
    return cleaned


def assert_safe_html(html: str, where: str = "email.html") -> None:
    """No script, no event handler, no dangerous URL scheme, no <style> outside <head>.

    Checks the parsed document (what a mail client sees), not the source text, so escaped
    text such as `&lt;script&gt;` is allowed and an attribute smuggled past escaping is not.
    """
    doc = lxml.html.document_fromstring(html)
    body = doc.find("body")
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue  # comments, processing instructions
        tag = el.tag.lower()
        assert tag not in FORBIDDEN_TAGS, f"{where}: <{tag}> element in output: {lxml.html.tostring(el)[:200]!r}"
        if tag == "style" and body is not None:
            assert body not in el.iterancestors(), f"{where}: <style> inside <body>: {el.text[:200]!r}"
        for name, value in el.attrib.items():
            lname = name.lower()
            assert not lname.startswith("on"), f"{where}: event handler attribute {name}={value!r} on <{tag}>"
            if lname in URL_ATTRS:
                s = _scheme(value)
                assert not s.startswith(BAD_SCHEMES), f"{where}: dangerous URL {name}={value!r} on <{tag}>"
    # conditional comments are parsed by Outlook: nothing from the issue may hide in one
    for comment in doc.iter(lxml.etree.Comment):
        assert "<script" not in (comment.text or "").lower(), f"{where}: script in a comment: {comment.text[:200]!r}"
