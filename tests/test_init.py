"""`newsletter init DIR`: a project that builds and dry-runs on the first try."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from newsletter.compose.schema import Obj
from newsletter.config import _SCHEMA
from tests.conftest import run

BIN = Path(sys.executable).parent


def test_init_then_build_then_dry_run(tmp_path: Path) -> None:
    target = tmp_path / "x"
    script = ('newsletter init "$X" && cd "$X" && newsletter build issues/*.yaml '
              '&& newsletter send issues/*.yaml --dry-run')
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "X": str(target)}
    env.pop("NEWSLETTER_SECRET", None)
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dry run: nothing sent, nothing recorded" in r.stdout
    issues = list((target / "issues").glob("*.yaml"))
    assert len(issues) == 1
    assert (target / "build" / issues[0].stem / "email.html").is_file()
    assert (target / "templates" / "README.md").is_file()
    assert not list(target.parent.glob(".x.init.*"))  # no temporary folder left behind
    assert not (target / "outbox").exists() or not any((target / "outbox").rglob("*.eml"))

    # and `check` finds no error: a demo project, said as warnings naming newsletter.toml lines
    c = run(["check", f"issues/{issues[0].name}"], cwd=target)
    assert c.returncode == 0, c.stdout
    toml = (target / "newsletter.toml").read_text().splitlines()
    for line in c.stdout.splitlines():
        m = re.match(r"newsletter\.toml:(\d+): warning: ", line)
        assert m, line
        assert toml[int(m.group(1)) - 1].startswith(("address = ", "postal_address = "))


def test_every_config_key_is_in_the_scaffold_with_a_comment(tmp_path: Path) -> None:
    r = run(["init", str(tmp_path / "p")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "p" / "newsletter.toml").read_text()
    table = ""
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.lstrip("# ").rstrip()
        header = re.match(r"^\[(\w+)\]", line)
        if header:
            table = header.group(1)
            continue
        key = re.match(r"^(\w+) = ", line)
        if key and (raw.startswith(key.group(1)) or raw.startswith(f"# {key.group(1)} = ")):
            assert re.search(r"\s#\s\S", raw[len(key.group(0)):]), f"no comment on: {raw}"
            seen.add(f"{table}.{key.group(1)}" if table else key.group(1))
    expected = set()
    for name, spec in _SCHEMA.fields.items():
        if isinstance(spec, Obj):
            expected |= {f"{name}.{k}" for k in spec.fields}
        else:
            expected.add(name)
    assert expected - seen == set()


def test_init_with_real_addresses_checks_clean(tmp_path: Path) -> None:
    r = run(["init", "p", "--name", "Viasna", "--sender", "news@spring96.org",
             "--address", "Internatsionalnaya 33, Minsk, Belarus", "--language", "fr"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    issue = next((tmp_path / "p" / "issues").glob("*.yaml"))
    c = run(["check", f"issues/{issue.name}"], cwd=tmp_path / "p")
    assert (c.returncode, c.stdout) == (0, "")
    config = (tmp_path / "p" / "newsletter.toml").read_text()
    assert 'base_url = "https://news.spring96.org"' in config and 'default_language = "fr"' in config


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "newsletter.toml").write_text("# mine\n")
    r = run(["init", "p"], cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == f"{tmp_path / 'p'}: would overwrite newsletter.toml; init only creates a new project"
    assert (tmp_path / "p" / "newsletter.toml").read_text() == "# mine\n"
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["newsletter.toml"]


def test_init_bad_option_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    r = run(["init", "p", "--sender", "not-an-address"], cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "--sender 'not-an-address' is not an email address"
    assert not (tmp_path / "p").exists()
    r = run(["init", "p", "--base-url", "ftp://news.example.org"], cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("newsletter init: site.base_url: ")
    assert list(tmp_path.iterdir()) == []
