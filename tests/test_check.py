"""`newsletter check`: one fixture issue per rule, each tripping exactly that rule.

Each fixture in tests/fixtures/check/ is an issue whose `# expect:` comment lines are the
exact output (`# expect-re:` where a figure depends on the theme, such as a size in KB);
`<name>.templates/`, when present, is that project's templates folder, and `<name>.toml` its
newsletter.toml.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.compose.build import build_issue
from newsletter.config import load_config
from newsletter.lint import Finding, has_errors, lint, validate_mjml
from tests.conftest import REPO, run
from tests.tomledit import edit_toml, line_of

FIXTURES = Path(__file__).parent / "fixtures" / "check"
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))
RULES = {"size", "subject", "preheader", "img-alt", "img-width", "url-relative", "url-http", "url-localhost",
         "example-domain", "unsubscribe", "postal-address", "mjml", "css", "img-alt-filename", "contrast"}


def fixture_project(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    (root / "issues").mkdir(parents=True)
    own = FIXTURES / f"{name}.toml"  # a fixture about the config brings its own
    shutil.copy(own if own.exists() else FIXTURES / "newsletter.toml", root / "newsletter.toml")
    shutil.copy(FIXTURES / f"{name}.yaml", root / "issues" / f"{name}.yaml")
    if (FIXTURES / f"{name}.templates").is_dir():
        shutil.copytree(FIXTURES / f"{name}.templates", root / "templates")
    return root


def expectations(name: str) -> list[tuple[str, str]]:
    out = []
    for line in (FIXTURES / f"{name}.yaml").read_text().splitlines():
        for kind in ("expect", "expect-re"):
            if line.startswith(f"# {kind}: "):
                out.append((kind, line[len(f"# {kind}: "):]))
    return out


@pytest.mark.parametrize("name", CASES)
def test_fixture_trips_exactly_its_rule(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fixture_project(tmp_path, name)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(cli, ["check", f"issues/{name}.yaml"])
    lines = result.stdout.splitlines()
    expected = expectations(name)
    assert len(lines) == len(expected), result.stdout
    for got, (kind, want) in zip(lines, expected, strict=True):
        if kind == "expect":
            assert got == want
        else:
            assert re.fullmatch(want, got), got
    errors = any(re.search(r":(\\)? error:", want) for _, want in expected)
    assert result.exit_code == (1 if errors else 0), result.output


def test_every_rule_has_a_fixture() -> None:
    tripped = {m for name in CASES for _, want in expectations(name) for m in re.findall(r"\\?\[([a-z-]+)\\?\]$", want)}
    assert tripped == RULES
    assert expectations("clean") == []


def test_exit_status_from_a_real_process(tmp_path: Path) -> None:
    root = fixture_project(tmp_path, "url-localhost")
    r = run(["check", "issues/url-localhost.yaml"], cwd=root)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [want for _, want in expectations("url-localhost")]
    assert r.stderr.strip() == "1 error, 0 warnings"
    assert not (root / "build").exists()  # check writes nothing


@pytest.mark.parametrize("issue", sorted(p.name for p in (REPO / "issues").glob("*.yaml")))
def test_example_issues_have_no_errors(issue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    built = build_issue(REPO / "issues" / issue, load_config(REPO / "newsletter.toml"), write=False)
    findings = lint(built)
    assert not has_errors(findings), "\n".join(map(str, findings))
    # the example project sends from example.org: its example links are allowed, said once, by line
    demo = [f for f in findings if f.rule == "example-domain"]
    assert len(demo) == 1 and demo[0].severity == "warning" and demo[0].file == "newsletter.toml"
    toml = (REPO / "newsletter.toml").read_text().splitlines()
    assert demo[0].line and toml[demo[0].line - 1].startswith("address = ")


def test_one_click_unsubscribe_needs_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fixture_project(tmp_path, "clean")
    toml = root / "newsletter.toml"
    edit_toml(toml, {"site.base_url": "http://news.fidh.org"})
    monkeypatch.chdir(root)
    built = build_issue(Path("issues/clean.yaml"), load_config(toml), write=False)
    line = line_of(toml, 'base_url = "http://news.fidh.org"')
    got = [str(f) for f in lint(built) if f.rule == "unsubscribe"]
    assert got == [f"newsletter.toml:{line}: error: site.base_url http://news.fidh.org is not https: the "
                   "List-Unsubscribe header's one-click link (RFC 8058) must be https:// [unsubscribe]"]


def test_mjml_validation_children_and_values() -> None:
    mjml = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-column></mj-column>
        <mj-image src="https://x.org/a.png" alt="a" align="middle" width="50%" />
        <mj-text line-height="1.5" padding="1px 2px 3px 4px 5px">ok <mj-unknown-inside-text/></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""
    got = [(p.line, p.message) for p in validate_mjml(mjml)]
    assert got == [
        (5, "<mj-column> cannot be inside <mj-column> (it may be inside: mj-group, mj-section)"),
        (6, '<mj-image align="middle">: must be one of left, center, right'),
        (6, '<mj-image width="50%">: must be 1 value(s) in px'),
        (7, '<mj-text padding="1px 2px 3px 4px 5px">: must be 1 to 4 value(s) in px, %'),
    ]


def test_finding_format() -> None:
    assert str(Finding("issues/a.yaml", 3, "error", "bad", "url")) == "issues/a.yaml:3: error: bad [url]"
    assert str(Finding("issues/a.yaml", None, "warning", "meh")) == "issues/a.yaml: warning: meh"


def test_images_keep_their_pixel_width_through_css_inlining(project: Path) -> None:
    """premailer used to copy each image's fluid CSS (width:100%) over MRML's width="552", which
    Outlook desktop reads as "natural size"; every image of the examples keeps its pixel width."""
    import lxml.html

    config = load_config(project / "newsletter.toml")
    for issue in sorted((project / "issues").glob("*.yaml")):
        built = build_issue(issue, config, write=False)
        widths = [img.get("width") for img in lxml.html.document_fromstring(built.rendered.html).iter("img")]
        assert widths and all(w and w.isdigit() and 0 < int(w) <= 600 for w in widths), (issue.name, widths)
        assert [f for f in lint(built) if f.rule == "img-width"] == []
