"""Accessibility and rendering of the theme in headless Chromium.

axe-core (npm, injected with Playwright) finds no violation of impact serious or critical in
email.html and web.html of both examples and of an issue with every block type, in the
archive, and on every page `serve` shows (unsubscribe, unsubscribed, resubscribed, invalid
link). Then what axe does not check: no text under 14 px, every link outside running prose
at least 44 px tall at 375 px, headings in order, `lang` on the French parts, a distinct
name for each repeated "Read more", declared image space kept with images off, Outlook.com's
dark mode, and the leaner inlined HTML drawing exactly what MRML drew before inlining.

Pages load with the network blocked (the examples' images live on example.org): that is
also what a reader with images off sees.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from tests.conftest import REPO, run
from tests.webserver import serve_in_thread

pytestmark = pytest.mark.browser

EXAMPLES = ["2011-11-28-free-ales-bialiatski", "2013-12-10-solidarity-with-ales-bialiatski"]
EVERY = "every-block"
SECRET = "a11y-test-signing-key-0123456789abcdef"
BAD_IMPACTS = ("serious", "critical")
#: email.html on main before issue 15 (commit b3d1221), bytes: the leaner HTML must be >= 15 % smaller.
BEFORE_BYTES = {EXAMPLES[0]: 69_903, EXAMPLES[1]: 51_432}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project plus the every-block issue, built, and its archive."""
    root = tmp_path_factory.mktemp("a11y")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "issues", root / "issues")
    shutil.copy(REPO / "tests" / "fixtures" / "craft" / f"{EVERY}.yaml", root / "issues" / f"{EVERY}.yaml")
    r = run(["build", *(f"issues/{s}.yaml" for s in [*EXAMPLES, EVERY])], cwd=root)
    assert r.returncode == 0, r.stderr
    r = run(["archive"], cwd=root)
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(scope="module")
def axe_js() -> Path:
    from bench import tools
    from bench.harness import BenchError, Skip

    try:
        return tools.axe_core(install=True)
    except Skip as e:
        pytest.skip(str(e))
    except BenchError as e:
        pytest.fail(str(e))


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 600, "height": 800}, bypass_csp=True)  # axe is injected
    context.route("**/*", lambda route: route.abort() if route.request.url.startswith("https://")
                  else route.continue_())
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def axe(page: Any, axe_js: Path) -> list[dict[str, Any]]:
    """axe-core's violations on the open page: id, impact, node count, the first targets."""
    page.add_script_tag(path=str(axe_js))
    return page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,
                                       targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")


def _serious(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in violations if v["impact"] in BAD_IMPACTS]


def test_axe_finds_nothing_serious_in_email_web_and_archive(site: Path, page: Any, axe_js: Path) -> None:
    pages = [site / "build" / s / name for s in [*EXAMPLES, EVERY] for name in ("email.html", "web.html")]
    pages += sorted((site / "build" / "archive").rglob("index.html"))  # every list's site: index, issue pages
    assert {site / "build" / "archive" / key / "index.html" for key in ("campaigns", "digest")} <= set(pages)
    counts = {}
    for path in pages:
        page.goto(path.as_uri())
        found = axe(page, axe_js)
        counts[str(path.relative_to(site / "build"))] = found
        assert _serious(found) == [], path
    print("\naxe-core violations per page (any impact):",
          {k: [(v["id"], v["impact"], v["nodes"]) for v in vs] for k, vs in counts.items()})


def test_axe_finds_nothing_serious_on_the_serve_pages(site: Path, page: Any, axe_js: Path) -> None:
    config = load_config(site / "newsletter.toml")
    keys = SigningKeys(SECRET.encode(), (), False)
    found = {}
    with serve_in_thread(config, keys) as port:
        for lang in ("en", "fr"):
            url = f"http://127.0.0.1:{port}/unsubscribe/{make_token(keys, f'{lang}@example.org', config.list_id, lang)}"
            page.goto(url)
            found[f"unsubscribe ({lang})"] = axe(page, axe_js)
            page.locator("form button").first.click()
            page.wait_for_load_state()
            found[f"unsubscribed ({lang})"] = axe(page, axe_js)
            page.locator("form button").first.click()
            page.wait_for_load_state()
            found[f"resubscribed ({lang})"] = axe(page, axe_js)
        page.goto(f"http://127.0.0.1:{port}/unsubscribe/not-a-token")
        found["invalid link"] = axe(page, axe_js)
    print("\naxe-core violations per serve page:", {k: [(v["id"], v["impact"]) for v in vs] for k, vs in found.items()})
    assert {k: _serious(v) for k, v in found.items() if _serious(v)} == {}
    assert len(found) == 7


# ---------------------------------------------------------------- what axe does not check

_SIZES = """() => {
    const small = [], short = [];
    const visible = el => { const s = getComputedStyle(el); const r = el.getBoundingClientRect();
                            return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0; };
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const el = walker.currentNode.parentElement;
        if (!walker.currentNode.textContent.trim() || !visible(el) || el.closest('.nl-preheader')) continue;
        const size = parseFloat(getComputedStyle(el).fontSize);
        if (size < 14) small.push([el.tagName, size, walker.currentNode.textContent.trim().slice(0, 40)]);
    }
    for (const a of document.querySelectorAll('a[href]')) {
        if (!visible(a) || a.closest('.nl-md, .nl-quote-text')) continue;  // links inside prose are exempt
        const h = a.getBoundingClientRect().height;
        if (h < 44) short.push([Math.round(h), a.textContent.trim().slice(0, 40)]);
    }
    return {small, short, links: document.querySelectorAll('a[href]').length};
}"""


@pytest.mark.parametrize("slug", [*EXAMPLES, EVERY])
def test_text_at_least_14px_and_tap_targets_44px_at_375(site: Path, page: Any, slug: str) -> None:
    for width in (375, 480, 600):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto((site / "build" / slug / "email.html").as_uri())
        got = page.evaluate(_SIZES)
        assert got["links"] > 10
        assert got["small"] == [], f"text under 14 px at {width} px"
        if width == 375:
            assert got["short"] == [], f"links under 44 px tall at {width} px"


def test_video_tiles_at_480px_are_tappable_and_captions_short(site: Path, page: Any) -> None:
    page.set_viewport_size({"width": 480, "height": 800})
    page.goto((site / "build" / EXAMPLES[0] / "email.html").as_uri())
    tiles = page.evaluate("""() => [...document.querySelectorAll('.nl-play-link')].map(a => {
        const r = a.getBoundingClientRect(); return [r.width, r.height]; })""")
    assert len(tiles) == 8 and all(w >= 120 and h >= 44 for w, h in tiles), tiles
    lines = page.evaluate("""() => [...document.querySelectorAll('.nl-caption a')].map(a => {
        const s = getComputedStyle(a);
        const text = a.getBoundingClientRect().height - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom);
        return Math.round(text / parseFloat(s.lineHeight)); })""")
    assert max(lines) <= 4, lines


@pytest.mark.parametrize("slug", [*EXAMPLES, EVERY])
def test_headings_in_order_and_read_more_links_named_apart(site: Path, page: Any, slug: str) -> None:
    page.goto((site / "build" / slug / "email.html").as_uri())
    levels = page.evaluate("() => [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1])")
    assert levels[0] == 1 and levels.count(1) == 1
    assert [(a, b) for a, b in zip(levels, levels[1:], strict=False) if b > a + 1] == [], levels
    links = link_names(page)
    by_name: dict[str, set[str]] = {}
    for name, href in links:
        by_name.setdefault(name, set()).add(href)
    repeated = {n: h for n, h in by_name.items() if len(h) > 1 and n not in SEED_DUPLICATES}
    assert repeated == {}, "one name, several destinations"
    more = [n for n, _ in links if n.lower().startswith("read more")]
    if slug == EXAMPLES[1]:
        assert len(more) == 10 and all(n.startswith("Read More: ") for n in more)


#: Two videos of seed 000 carry the very same caption (their thumbnails' alt texts differ).
SEED_DUPLICATES = {"Manifestants demandant la libération d'Ales Bialiatski"}


def link_names(page: Any) -> list[tuple[str, str]]:
    """(accessible name, href) of every link, as Chromium's accessibility tree names them."""
    import yaml

    pairs: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.startswith("link"):
                    name = key[len("link"):].strip().strip('"')
                    url = next((v["/url"] for v in value or [] if isinstance(v, dict) and "/url" in v), None)
                    pairs.append((name, url))
                walk(value)

    walk(yaml.safe_load(page.locator("body").aria_snapshot()))
    return pairs


def test_french_strings_carry_lang(site: Path, page: Any) -> None:
    page.goto((site / "build" / EXAMPLES[0] / "email.html").as_uri())
    lang_of = page.evaluate("""() => Object.fromEntries(['.nl-nav a', '.nl-caption a', '.nl-h2'].map(sel =>
        [sel, [...document.querySelectorAll(sel)].map(el => (el.closest('[lang]') || {}).lang)]))""")
    assert lang_of[".nl-nav a"] == ["fr", "fr", "fr"]
    assert lang_of[".nl-caption a"] == ["fr"] * 8
    assert lang_of[".nl-h2"][0] == "fr" and lang_of[".nl-h2"][1] == "en"  # "Interview Vidéo", then English
    assert page.evaluate("() => document.documentElement.lang") == "en"


def test_images_off_keep_their_declared_space(site: Path, page: Any) -> None:
    page.goto((site / "build" / EVERY / "email.html").as_uri())
    boxes = page.evaluate("""() => [...document.querySelectorAll('img[height]')].map(img => {
        const r = img.getBoundingClientRect(); const s = getComputedStyle(img);
        return [img.getAttribute('alt'), +img.getAttribute('height'), Math.round(r.height), s.backgroundColor,
                img.complete && img.naturalWidth === 0];
    })""")
    assert len(boxes) >= 6
    for alt, declared, shown, background, broken in boxes:
        assert broken, f"{alt}: the test blocks images, so it must be broken"
        assert abs(shown - declared) <= 1, f"{alt}: {shown} px tall with images off, declared {declared}"
        assert background not in ("rgba(0, 0, 0, 0)", "transparent"), f"{alt}: no background colour"


def test_outlook_com_dark_mode_rules(site: Path, page: Any) -> None:
    """Outlook.com marks what it recolours with data-ogsc/data-ogsb; the theme's rules follow it."""
    page.goto((site / "build" / EXAMPLES[0] / "email.html").as_uri())
    probe = """() => [getComputedStyle(document.querySelector('.nl-md p')).color,
                      getComputedStyle(document.querySelector('.nl-card')).backgroundColor]"""
    light = page.evaluate(probe)
    page.evaluate("() => { document.body.setAttribute('data-ogsc', ''); document.body.setAttribute('data-ogsb', ''); }")
    outlook_dark = page.evaluate(probe)
    page.emulate_media(color_scheme="dark")
    page.reload()
    media_dark = page.evaluate(probe)
    assert light == ["rgb(31, 35, 40)", "rgb(255, 255, 255)"]
    assert outlook_dark == media_dark == ["rgb(236, 236, 236)", "rgb(28, 28, 30)"]


@pytest.mark.parametrize("slug", EXAMPLES)
def test_leaner_html_draws_what_mrml_drew(site: Path, page: Any, slug: str) -> None:
    """email.html (inlined) is >= 15 % smaller than before and pixel-identical at 375 and 600 px to
    MRML's own output for the same MJML, before premailer touched it."""
    from PIL import Image, ImageChops

    from newsletter.compose.render import mjml_to_html

    built = site / "build" / slug
    size = (built / "email.html").stat().st_size
    assert size <= 0.85 * BEFORE_BYTES[slug], f"{size} bytes, before {BEFORE_BYTES[slug]}"
    raw = built.parent / f"{slug}.mrml.html"
    raw.write_text(mjml_to_html((built / "email.mjml").read_text()), encoding="utf-8")
    for width in (375, 600):
        shots = []
        for path in (raw, built / "email.html"):
            page.set_viewport_size({"width": width, "height": 800})
            page.goto(path.as_uri())
            shots.append(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
        assert shots[0].size == shots[1].size, f"{width} px: heights differ"
        assert ImageChops.difference(*shots).getbbox() is None, f"{width} px: pixels differ"
