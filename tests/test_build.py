"""`newsletter build` on the two example issues and on small purpose-made issues.

The examples must carry all of their seed newsletter (tests/seeds/, copies of
/work/shared/seeds/), fit under Gmail's clip, give every image an alt text, and have a
text part that stands on its own with every link of the HTML part.
"""

from __future__ import annotations

import html
import re
import shutil
import unicodedata
from pathlib import Path

import lxml.html
import pytest

from newsletter.compose import i18n
from newsletter.compose.build import build_issue
from newsletter.compose.render import default_theme
from newsletter.config import load_config
from tests.conftest import REPO, run

EXAMPLES = {
    "2011-11-28-free-ales-bialiatski": "000-free-ales-bialiatski.txt",
    "2013-12-10-solidarity-with-ales-bialiatski": "001-solidarity-with-ales-bialiatski.txt",
}
#: Seed lines the example reproduces differently, and why.
SEED_EXCEPTIONS = {
    # the organisation's name comes from newsletter.toml, where it is spelled correctly
    "fidh- international fedération for human rights",
    # the seed's alt texts were file names; the example describes the pictures instead (issue 15)
    "mayor of paris&son of ales bialiatski",
    "ales cake ales-cake-hague",
    "ales bialiatski _mg_0633 ales bialiatski _mg_0667",
    "bialiatski-birthday wishes",
}
GMAIL_CLIP = 102 * 1024


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project, built once by the real command: its root folder."""
    root = tmp_path_factory.mktemp("examples")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "issues", root / "issues")
    r = run(["build", *(f"issues/{slug}.yaml" for slug in EXAMPLES)], cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", "a good build prints nothing on stderr (cssutils stays quiet)"
    (root / "stdout.txt").write_text(r.stdout)
    return root


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFC", html.unescape(text)).casefold()
    text = re.sub(r"[\"“”«»•]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def visible_text(page: str) -> str:
    """What a reader sees: the body's text, with each image's alt text where the image is."""
    doc = lxml.html.fromstring(page)
    for img in doc.iter("img"):
        img.tail = f" {img.get('alt', '')} {img.tail or ''}"
    for el in doc.iter("style", "title", "head"):
        el.drop_tree()
    return _norm(doc.text_content())


def seed_fragments(seed: str) -> list[str]:
    """Every non-empty piece of a seed: lines, split at '>' links, without list bullets or trailing ':'."""
    out = []
    for line in (REPO / "tests" / "seeds" / seed).read_text().splitlines():
        for piece in line.split(" > "):
            piece = _norm(piece).rstrip(":").strip()
            if piece and piece not in SEED_EXCEPTIONS:
                out.append(piece)
    return out


@pytest.mark.parametrize("slug", list(EXAMPLES))
def test_example_carries_every_line_of_its_seed(examples: Path, slug: str) -> None:
    page = visible_text((examples / "build" / slug / "email.html").read_text())
    fragments = seed_fragments(EXAMPLES[slug])
    assert len(fragments) > 20
    missing = [f for f in fragments if f not in page]
    assert missing == []


def test_seed_000_structure(examples: Path) -> None:
    """Captions, quote authors, top links and footer of seed 000, each where it belongs."""
    doc = lxml.html.fromstring((examples / "build/2011-11-28-free-ales-bialiatski/email.html").read_text())
    captions = [_norm(a.text_content()) for a in doc.cssselect(".nl-caption a")]
    assert len(captions) == 8 and captions[1] == "artak kirakosyan, secrétaire général de la fidh (arménie)"
    tiles = doc.cssselect("td.nl-play-cell")
    assert len(tiles) == 8 and all(t.cssselect(".nl-play[aria-label]") for t in tiles), "a play button over each"
    assert all(t.cssselect("a.nl-play-link[href]") for t in tiles), "the link is inside the tile, not around a table"
    authors = [_norm(s.text_content()) for s in doc.cssselect(".nl-cite strong")]
    assert authors == ["bertrand delanoë", "jerzy buzek", "french ministry of foreign affairs",
                       "polish ministry of foreign affairs"]
    nav = [_norm(a.text_content()) for a in doc.cssselect(".nl-nav a")]
    assert nav == ["découvrir la fidh", "faire un don", "envoyer à un ami"]
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert "https://news.example.org/issues/2011-11-28-free-ales-bialiatski/" in hrefs  # view in browser
    assert "{{ unsubscribe_url }}" in hrefs
    assert "https://example.org/press/2011-11-25-mayor-of-paris/" in hrefs


def test_seed_001_teasers(examples: Path) -> None:
    doc = lxml.html.fromstring((examples / "build/2013-12-10-solidarity-with-ales-bialiatski/email.html").read_text())
    titles = [_norm(h.text_content()) for h in doc.cssselect(".nl-h3")]
    assert len(titles) == 10 and titles[0] == "ales bialiatski becomes an honorary citizen of paris"
    more = [a for a in doc.cssselect(".nl-more a") if _norm(a.text_content()).startswith("read more")]
    assert len(more) == 10
    assert len({a.get("href") for a in more}) == 10, "each teaser links to its own article"


@pytest.mark.parametrize("slug", list(EXAMPLES))
def test_example_size_alt_text_and_image_hosts(examples: Path, slug: str) -> None:
    page = (examples / "build" / slug / "email.html").read_text()
    filled = page.replace("{{ unsubscribe_url }}", "https://news.example.org/unsubscribe/" + "x" * 120)
    assert len(filled.encode()) < GMAIL_CLIP
    doc = lxml.html.fromstring(page)
    imgs = list(doc.iter("img"))
    assert imgs
    assert all((img.get("alt") or "").strip() for img in imgs)
    sources = [img.get("src") for img in imgs] + re.findall(r"url\('([^']+)'\)", page)
    assert sources and all(s.startswith("https://example.org/") for s in sources)


@pytest.mark.parametrize("slug", list(EXAMPLES))
def test_text_part_has_every_link_and_stands_alone(examples: Path, slug: str) -> None:
    page = (examples / "build" / slug / "email.html").read_text()
    text = (examples / "build" / slug / "email.txt").read_text()
    hrefs = {html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)}
    hrefs = {h for h in hrefs if not h.startswith("{{")}
    assert len(hrefs) > 10
    assert sorted(h for h in hrefs if h not in text) == []
    assert "{{ unsubscribe_url }}" in text
    assert "<" not in text.replace("<https", ""), "no HTML in the text part"
    assert not re.search(r"\[\d+\]", text), "links are written in place, not as [1] footnotes"
    # each list's own organisation: FIDH's campaigns, Viasna's digest (newsletter.toml [lists.*])
    address = {"2011-11-28-free-ales-bialiatski": "17, Passage de la Main d’Or",
               "2013-12-10-solidarity-with-ales-bialiatski": "Viasna Human Rights Centre, Minsk"}[slug]
    assert address in text


def test_web_version_has_no_reader_parts(examples: Path) -> None:
    for slug in EXAMPLES:
        web = (examples / "build" / slug / "web.html").read_text()
        assert "{{" not in web and "unsubscribe" not in web.lower()
        # each list's archive address: [site] base_url for FIDH's campaigns, the digest's own base_url
        base = {"2011-11-28-free-ales-bialiatski": "https://news.example.org",
                "2013-12-10-solidarity-with-ales-bialiatski": "https://spring96.example.org/digest"}[slug]
        assert f'href="{base}/issues/{slug}/"' not in web, "no 'view in browser' on the web version"
        assert f'<meta property="og:url" content="{base}/issues/{slug}/">' in web
        assert {"2011-11-28-free-ales-bialiatski": "17, Passage de la Main d’Or",
                "2013-12-10-solidarity-with-ales-bialiatski": "Viasna Human Rights Centre, Minsk"}[slug] in web


def test_summary_is_one_screen(examples: Path) -> None:
    out = (examples / "stdout.txt").read_text().splitlines()
    assert len(out) <= 24
    assert "subject    Let’s mobilise to free Ales Bialiatski!" in out
    sizes = [line for line in out if line.startswith("email ")]
    assert len(sizes) == 2
    for line in sizes:
        kb, margin = map(float, re.findall(r"(\d+\.\d) KB", line)[:2])
        assert kb < 102 and abs(kb + margin - 102) < 0.11
        assert "under Gmail's 102 KB clip" in line


@pytest.mark.parametrize("slug", list(EXAMPLES))
def test_dark_mode_rules_can_win(examples: Path, slug: str) -> None:
    """Dark rules live in a kept @media block with !important, and no inlined colour is !important."""
    page = (examples / "build" / slug / "email.html").read_text()
    assert '<meta name="color-scheme" content="light dark">' in page
    assert '<meta name="supported-color-schemes" content="light dark">' in page
    styles = "".join(re.findall(r"<style[^>]*>(.*?)</style>", page, flags=re.S))
    dark = styles[styles.index("@media (prefers-color-scheme: dark)"):]
    assert "background-color: #1c1c1e !important" in dark
    assert "@media only screen and (max-width: 519px)" in styles
    inline = re.findall(r'style="([^"]*)"', page)
    assert not [s for s in inline if re.search(r"(^|;)\s*(background-)?color:[^;]*!important", s)]


# ---------------------------------------------------------------- small issues

TINY = """\
subject: "Hello {{ name }}"
preheader: A tiny issue
date: 2011-11-28
language: LANG
links:
  donate: {url: "https://example.org/donate"}
  forward: {url: "https://example.org/forward?from={{ email }}"}
blocks:
  - type: section
    heading: Welcome
    body: |
      Dear {{ name }} ({{ email }}), <script>alert(1)</script> <img src=x onerror=alert(1)>
      [a link](https://example.org/x) [bad](javascript:alert(1)) [worse](JaVaScRiPt:alert(1))
      [Stop these emails]({{ unsubscribe_url }})
  - type: quotes
    items:
      - {text: Free him, author: Someone, url: "https://example.org/pr"}
  - type: teasers
    items:
      - {title: T, excerpt: E, url: "https://example.org/t"}
list: campaigns
"""


def _build(project: Path, name: str, source: str) -> tuple[str, str, str]:
    """Build one issue through the library API (what the command calls): its three outputs."""
    (project / "issues" / f"{name}.yaml").write_text(source)
    built = build_issue(project / "issues" / f"{name}.yaml", load_config(project / "newsletter.toml"))
    assert built.out_dir == project / "build" / name
    return tuple((built.out_dir / n).read_text() for n in ("email.html", "email.txt", "web.html"))  # type: ignore


def _tiny(project: Path, language: str = "en") -> tuple[str, str, str]:
    return _build(project, "tiny", TINY.replace("LANG", language))


def test_placeholders_survive_and_markdown_html_is_escaped(project: Path) -> None:
    page, text, web = _tiny(project)
    assert 'href="{{ unsubscribe_url }}"' in page
    assert "Dear {{ name }} ({{ email }})" in page and "Dear {{ name }} ({{ email }})" in text
    assert "<title>Hello {{ name }}</title>" in page
    body = page.split("<body", 1)[1]
    assert "<script" not in body and "&lt;script&gt;" in body
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    assert not re.search(r'href="\s*javascript:', body, flags=re.I)
    assert "Dear reader" in web and "{{" not in web
    # placeholders in links, from Markdown and from URL fields, come through every step intact
    assert re.search(r'<a href="\{\{ unsubscribe_url \}\}"[^>]*>Stop these emails</a>', page)
    assert 'href="https://example.org/forward?from={{ email }}"' in page
    assert "Stop these emails ({{ unsubscribe_url }})" in " ".join(text.split())
    assert "https://example.org/forward?from={{ email }}" in text


def test_french_issue_gets_french_fixed_strings(project: Path) -> None:
    page, text, _ = _tiny(project, "fr")
    for fr in ("Faire un don", "Lire la suite", "Lire le communiqué", "Suivez-nous", "désinscrivez-vous ici",
               "Consultez-le dans votre navigateur", "28 novembre 2011"):
        assert fr in page, fr
    assert "Faire un don: https://example.org/donate" in text
    assert '<html lang="fr"' in page
    page_en, _, _ = _tiny(project, "en")
    assert "Donate" in page_en and "Faire un don" not in page_en and "28 November 2011" in page_en


def test_every_theme_string_is_translated_into_french() -> None:
    import jinja2

    env = jinja2.Environment(extensions=["jinja2.ext.i18n", "jinja2.ext.do"])
    msgids = set()
    theme = default_theme()
    for path in theme.rglob("*.j2"):
        if path.relative_to(theme).parts[0] == "web":  # the unsubscribe pages have their own test
            continue
        for _, _, message in env.extract_translations(path.read_text()):
            msgids.add(message[0] if isinstance(message, tuple) else message)
    assert {"Donate", "Read more", "Watch the video"} <= msgids
    french = i18n.translations("fr")
    assert sorted(m for m in msgids if french.gettext(m) == m) == []


@pytest.mark.parametrize("language", sorted(i18n.MONTHS))
def test_dates_are_written_as_babel_writes_them(language: str) -> None:
    """i18n keeps CLDR's month names so a build need not load Babel's locale data."""
    import datetime as dt

    from babel.dates import format_date

    for day in (dt.date(2011, m, d) for m in range(1, 13) for d in (1, 28)):
        assert i18n.format_date(day, language) == format_date(day, format="d MMMM y", locale=language)


def test_project_template_overrides_one_block_and_the_rest_falls_back(project: Path) -> None:
    (project / "templates" / "blocks").mkdir(parents=True)
    (project / "templates" / "blocks" / "quotes.mjml.j2").write_text(
        '<mj-section><mj-column>{% for q in block["items"] %}'
        '<mj-text css-class="my-quote">OVERRIDE {{ q.author | upper }}</mj-text>'
        "{% endfor %}</mj-column></mj-section>\n")
    page, text, _ = _tiny(project)
    assert "OVERRIDE SOMEONE" in page and 'class="my-quote"' in page
    assert 'class="nl-quote"' not in page, "the default quotes template is not used"
    assert "Welcome" in page and "nl-h2" in page, "other blocks still come from the default theme"
    assert "-- Someone" in text, "the text template was not overridden, so the default one is used"


@pytest.mark.parametrize("width", [20, 33, 47, 72])
def test_text_wrapping_never_splits_a_placeholder(width: int) -> None:
    from newsletter.compose.markdown import to_text

    body = "ab cd ef " + "Dear {{ name }}, [stop]({{ unsubscribe_url }}) and {{ email }}. " * 6
    text = to_text(body, width)
    assert (text.count("{{ name }}"), text.count("{{ unsubscribe_url }}"), text.count("{{ email }}")) == (6, 6, 6)


EVERY_BLOCK = """\
subject: Every block
preheader: One of each block type
date: 2024-05-06
language: en
links:
  website: {url: "https://example.org/"}
  donate: {url: "https://example.org/donate"}
  forward: {url: "https://example.org/forward"}
blocks:
  - type: headline
    kicker: Kicker text
    title: Headline title
    date: 2024-05-01
    image: {src: "https://example.org/i/head.jpg", alt: "Headline picture", width: 552, height: 300,
            caption: "Headline caption"}
    body: "Headline **body** with a [headline link](https://example.org/body-link)."
    link: {url: "https://example.org/headline", label: "Full story"}
  - type: videos
    heading: Videos heading
    intro: Videos intro
    items:
      - {thumbnail: {src: "https://example.org/i/v1.jpg", alt: "V1"}, caption: "Video one", url: "https://example.org/v1"}
      - {thumbnail: {src: "https://example.org/i/v2.jpg", alt: "V2"}, caption: "Video two", url: "https://example.org/v2"}
      - {thumbnail: {src: "https://example.org/i/v3.jpg", alt: "V3"}, caption: "Video three", url: "https://example.org/v3"}
  - type: gallery
    heading: Gallery heading
    intro: Gallery intro
    items:
      - label: "Album with picture"
        url: "https://example.org/g1"
        image: {src: "https://example.org/i/g1.jpg", alt: "G1"}
      - {label: "Second album", url: "https://example.org/g3", image: {src: "https://example.org/i/g3.jpg", alt: "G3"}}
      - {label: "Third album", url: "https://example.org/g4", image: {src: "https://example.org/i/g4.jpg", alt: "G4"}}
      - {label: "Album without picture", url: "https://example.org/g2"}
  - type: quotes
    heading: Quotes heading
    link_label: Source
    items:
      - {text: "Quote *one*", author: "Author One", role: "Role One", date: 2024-04-30, url: "https://example.org/q1"}
      - {text: "Quote two", author: "Author Two", url: "https://example.org/q2", link_label: "Own label"}
  - type: teasers
    heading: Teasers heading
    intro: Teasers intro
    items:
      - title: Teaser one
        url: https://example.org/t1
        image: {src: "https://example.org/i/t1.jpg", alt: "T1"}
        images:
          - {src: "https://example.org/i/t1a.jpg", alt: "T1a"}
          - {src: "https://example.org/i/t1b.jpg", alt: "T1b"}
          - {src: "https://example.org/i/t1c.jpg", alt: "T1c"}
        excerpt: "Excerpt one\\n\\n- a list item\\n- another"
      - {title: Teaser two, url: "https://example.org/t2", excerpt: "Excerpt two", link_label: "Continue"}
  - type: section
    heading: Section heading
    title: Section title
    image: {src: "https://example.org/i/s.jpg", alt: "S"}
    body: "> a blockquote\\n\\n1. first\\n2. second\\n\\n### A subheading"
    link: {url: "https://example.org/section"}
  - type: buttons
    items:
      - {label: "Sign the petition", url: "https://example.org/sign"}
      - {label: "Share", url: "https://example.org/share", style: secondary}
footer:
  text: "Footer *text* with [a footer link](https://example.org/footer)"
  follow_label: Follow along
  unsubscribe_text: Leave this list
list: campaigns
"""


def test_every_block_type_renders_in_html_and_text(project: Path) -> None:
    page, text, _ = _build(project, "every", EVERY_BLOCK)
    seen = visible_text(page)
    for words in ("Kicker text", "Headline title", "Headline caption", "Full story", "Videos intro", "Video three",
                  "Gallery intro", "Album with picture", "Album without picture", "Author One", "Role One",
                  "30 April 2024", "Source", "Own label", "Teasers intro", "Teaser two", "Continue",
                  "a list item", "Section title", "a blockquote", "A subheading", "Sign the petition", "Share",
                  "Follow along", "Leave this list", "Footer text", "G1", "T1c"):
        assert _norm(words) in seen, words
        assert words.casefold() in text.casefold() or words in ("Headline caption", "G1", "T1c"), words
    doc = lxml.html.fromstring(page)
    assert [h.text_content() for h in doc.cssselect("h2.nl-h2")] == [
        "Videos heading", "Gallery heading", "Quotes heading", "Teasers heading", "Section heading"]
    assert len(doc.cssselect("td.nl-play-cell")) == 3
    assert doc.cssselect(".nl-button-2"), "the secondary button has its own class (its dark-mode colours)"
    hrefs = {html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)} - {"{{ unsubscribe_url }}"}
    assert sorted(h for h in hrefs if h not in text) == []
    assert all((img.get("alt") or "").strip() for img in doc.iter("img"))


def test_warnings_name_what_to_fix(project: Path) -> None:
    """No preheader, a long subject, a file name that disagrees with the date, an unknown field."""
    source = (TINY.replace("LANG", "en").replace("preheader: A tiny issue\n", "")
              .replace('subject: "Hello {{ name }}"', 'subject: "' + "A very long subject " * 5 + '{{ nmae }}"'))
    (project / "issues" / "2011-11-29-tiny.yaml").write_text(source)
    built = build_issue(project / "issues" / "2011-11-29-tiny.yaml", load_config(project / "newsletter.toml"),
                        write=False)
    assert built.warnings == [
        "no preheader: inboxes will show the first text of the email instead",
        "subject is 110 characters: inboxes cut it around 80",
        "the file name says 2011-11-29 but the issue's date is 2011-11-28",
        "{{ nmae }}: not a standard field (name, email, unsubscribe_url); "
        "each must be a column of the subscriber CSV or it stays empty",
    ]
    assert not (project / "build").exists()


def test_a_folder_builds_every_issue_in_it(project: Path) -> None:
    r = run(["build", "issues"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (project / "build").iterdir()) == sorted(EXAMPLES)
    page = (project / "build" / next(iter(EXAMPLES)) / "web.html").read_text()
    assert '<meta property="og:title" content="Let’s mobilise to free Ales Bialiatski !">' in page


def test_building_fetches_nothing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No socket is opened: premailer fetches no stylesheet, nothing looks up a host."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during a build: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    config = load_config(project / "newsletter.toml")
    for slug in EXAMPLES:
        built = build_issue(project / "issues" / f"{slug}.yaml", config)
        assert (built.out_dir / "email.html").stat().st_size > 10_000


def test_an_english_build_does_not_load_babel(project: Path) -> None:
    """i18n writes English and French dates from its own table (checked against Babel), so the
    build does not pay for importing Babel."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from newsletter.compose.build import build_issue; "
            "from newsletter.config import load_config; "
            f"build_issue(Path('issues/{next(iter(EXAMPLES))}.yaml'), load_config(Path('newsletter.toml')), "
            "write=False); print('babel' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False"]
