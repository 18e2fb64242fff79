"""Rules about links and images: schemes an inbox can use, absolute https URLs, no local hosts,
no links left on reserved example domains (except in a demo project)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from newsletter.deliver.placeholders import PLACEHOLDER
from newsletter.lint.findings import Finding

if TYPE_CHECKING:
    from newsletter.lint.context import Context

#: RFC 2606 reserves these for documentation: nothing real lives there.
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
OK_SCHEMES = ("https", "http", "mailto", "tel", "sms")


def links_of(ctx: Context) -> list[tuple[str, str]]:
    """(kind, url) for every link and image in the HTML part, in document order, once each."""
    seen: dict[str, str] = {}
    for el in ctx.doc.iter():
        if not isinstance(el.tag, str):
            continue
        for attr, kind in (("href", "link"), ("src", "image"), ("background", "image")):
            url = (el.get(attr) or "").strip()
            if url and url not in seen and el.tag != "link":  # <link>: MRML's web-font stylesheets
                seen[url] = kind
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", el.get("style") or ""):
            seen.setdefault(url.strip(), "image")
    return [(kind, url) for url, kind in seen.items()]


def _urls(ctx: Context) -> Iterator[Finding]:
    """Links and images an inbox cannot use, and placeholders left pointing at example domains.

    Example domains (RFC 2606) are fine in a demo and a mistake in a real newsletter. What
    makes a project a demo is not a flag anyone could set and forget, but a fact: its
    sender address is itself on a reserved example domain, so it cannot deliver a single
    real message (no SPF, no DKIM, no inbox accepts it). Such a project (this repository's
    example, a fresh `newsletter init`) gets one warning naming `sender.address`; once the
    sender is real, every example link left in an issue or the config is an error.
    """
    demo_noted = False
    for kind, url in links_of(ctx):
        if PLACEHOLDER.fullmatch(url) or url.startswith("#"):
            continue
        file, line = ctx.locate(url)
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            yield Finding(file, line, "error", f"{kind} is not a valid URL: {url}", "url")
            continue
        scheme = parts.scheme.lower()
        if not scheme:
            yield Finding(file, line, "error",
                          f"relative {kind} URL {url}: an email has no page to be relative to; use https://...",
                          "url-relative")
            continue
        if scheme not in OK_SCHEMES:
            yield Finding(file, line, "error", f"{kind} URL with scheme '{scheme}:' does not work in email: {url}",
                          "url")
            continue
        if scheme not in ("http", "https"):
            continue
        if _is_local(host):
            yield Finding(file, line, "error",
                          f"{kind} points to a local address that no reader can reach: {url}", "url-localhost")
            continue
        if scheme == "http":
            yield Finding(file, line, "warning",
                          f"{kind} uses http://, not https://: {url}", "url-http")
        if is_example(host):
            if ctx.demo:
                if not demo_noted:
                    demo_noted = True
                    yield _demo_note(ctx)
                continue
            yield Finding(file, line, "error",
                          f"{kind} points to {_example_root(host)}, a reserved example domain: {url}",
                          "example-domain")


def _demo_note(ctx: Context) -> Finding:
    domain = ctx.built.config.sender_address.rpartition("@")[2]
    return Finding(ctx.config_file, ctx.config_line("sender.address"), "warning",
                   f"sender.address is on {domain}, a reserved example domain, so this is a demo project and its "
                   "links to example domains are allowed; use your own domain before a real send",
                   "example-domain")


def is_example(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in EXAMPLE_DOMAINS)


def _example_root(host: str) -> str:
    return next(d for d in EXAMPLE_DOMAINS if host == d or host.endswith("." + d))


def _is_local(host: str) -> bool:
    host = host.strip("[]").rstrip(".")
    if host == "localhost" or host.endswith(LOCAL_SUFFIXES) or "." not in host and ":" not in host:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_reserved


RULES = (_urls,)
