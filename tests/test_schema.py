"""`newsletter schema issue|config`: a JSON Schema generated from the validator's own rules.

The examples must validate; what the validator refuses, the schema must refuse too; every
field has a description and an example (editors show them)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from newsletter.compose.issue import problems_of
from newsletter.config import load_config
from newsletter.errors import ConfigError
from tests.conftest import REPO, run
from tests.tomledit import edit_toml


class _NoDates(yaml.SafeLoader):
    """YAML as an editor's language server sees it: dates stay text."""


_NoDates.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def _schema(what: str, tmp_path: Path) -> dict[str, Any]:
    r = run(["schema", what], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return schema


def _undocumented(node: Any, path: str = "") -> list[str]:
    """Every property (at any depth) lacking a description or examples."""
    out = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if not (prop.get("description") and prop.get("examples")):
                out.append(f"{path}.{name}")
        for key, value in node.items():
            if key == "if":  # a condition on `type`, not a field
                continue
            out += _undocumented(value, f"{path}.{key}" if key != "properties" else path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _undocumented(value, f"{path}[{i}]")
    return out


def test_issue_schema_documents_every_field_and_accepts_the_examples(tmp_path: Path) -> None:
    schema = _schema("issue", tmp_path)
    assert _undocumented(schema) == []
    blocks = schema["properties"]["blocks"]["items"]["properties"]["type"]["enum"]
    assert set(blocks) == {"headline", "videos", "gallery", "quotes", "teasers", "section", "buttons"}
    validator = Draft202012Validator(schema)
    issues = sorted((REPO / "issues").glob("*.yaml")) + [REPO / "tests/fixtures/craft/every-block.yaml"]
    for path in issues:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoDates)  # noqa: S506 - a SafeLoader
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], f"{path.name}: {errors[:3]}"
        assert problems_of(path) == []


def _mutations() -> list[tuple[str, Any]]:
    """(what, how) pairs: each breaks a valid issue in a way the validator reports."""
    def setter(*path: Any, value: Any) -> Any:
        def apply(data: dict[str, Any]) -> None:
            node = data
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        return apply

    def deleter(*path: Any) -> Any:
        def apply(data: dict[str, Any]) -> None:
            node = data
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]
        return apply

    return [
        ("unknown top-level key", setter("subjct", value="typo")),
        ("subject missing", deleter("subject")),
        ("empty subject", setter("subject", value="   ")),
        ("two-line subject", setter("subject", value="a\nb")),
        ("subject too long", setter("subject", value="x" * 201)),
        ("control character", setter("subject", value="a\x00b")),
        ("bad date", setter("date", value="28/11/2011")),
        # a tag CLDR does not know (`xx`) only the validator can tell; a malformed one, both
        ("not a language tag", setter("language", value="english")),
        ("no blocks", setter("blocks", value=[])),
        ("unknown block type", setter("blocks", 0, "type", value="hedline")),
        ("block without type", deleter("blocks", 0, "type")),
        ("headline without title", deleter("blocks", 0, "title")),
        ("unknown block key", setter("blocks", 0, "colour", value="red")),
        ("javascript: link", setter("blocks", 0, "link", value={"url": "javascript:alert(1)"})),
        ("relative image", setter("blocks", 0, "image", "src", value="/img/a.jpg")),
        ("image without alt", deleter("blocks", 0, "image", "alt")),
        ("width as text", setter("blocks", 0, "image", "width", value="552px")),
        ("width out of range", setter("blocks", 0, "image", "width", value=5000)),
        ("width true", setter("blocks", 0, "image", "width", value=True)),
        ("bad lang tag", setter("blocks", 0, "lang", value="français")),
        ("too many videos", setter("blocks", 1, "items", value=[
            {"caption": "c", "url": "https://example.org/v", "thumbnail": {"src": "https://example.org/a.jpg",
                                                                              "alt": "a"}}] * 13)),
        ("view_in_browser a number", setter("links", "view_in_browser", value=3)),
        ("mailto without address", setter("links", "donate", value={"url": "mailto:nobody"})),
    ]


@pytest.mark.parametrize("what,how", _mutations(), ids=[m[0] for m in _mutations()])
def test_what_the_validator_rejects_the_schema_rejects(tmp_path: Path, what: str, how: Any) -> None:
    schema = _issue_schema_cached(tmp_path)
    source = REPO / "issues" / "2011-11-28-free-ales-bialiatski.yaml"
    data = yaml.load(source.read_text(encoding="utf-8"), Loader=_NoDates)  # noqa: S506 - a SafeLoader
    broken = copy.deepcopy(data)
    how(broken)
    path = tmp_path / "issue.yaml"
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    assert problems_of(path), f"the validator accepts: {what}"
    assert list(Draft202012Validator(schema).iter_errors(broken)), f"the schema accepts: {what}"


_CACHE: dict[str, Any] = {}


def _issue_schema_cached(tmp_path: Path) -> dict[str, Any]:
    if "issue" not in _CACHE:
        _CACHE["issue"] = _schema("issue", tmp_path)
    return _CACHE["issue"]


def test_config_schema_accepts_the_example_and_rejects_what_load_config_rejects(tmp_path: Path) -> None:
    schema = _schema("config", tmp_path)
    assert _undocumented(schema) == []
    validator = Draft202012Validator(schema)
    good = tomllib.loads((REPO / "newsletter.toml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(good)) == []
    bad_cases = {
        "sender address": (("sender", "address"), "nobody"),
        "theme colour": (("theme", "primary"), "red"),
        "button shape": (("theme", "button_shape"), "round"),
        "smtp port": (("smtp", "port"), 70000),
        "unknown table": (("themes",), {}),
    }
    for what, (path, value) in bad_cases.items():
        data = copy.deepcopy(good)
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        assert list(validator.iter_errors(data)), f"the schema accepts: {what}"
        toml = tmp_path / f"{what.replace(' ', '-')}.toml"
        shutil.copy(REPO / "newsletter.toml", toml)
        edit_toml(toml, {".".join(path): value})  # the example, that one value changed
        with pytest.raises(ConfigError, match=re.escape(".".join(path))):
            load_config(toml)


def test_init_sets_up_editor_completion(tmp_path: Path) -> None:
    r = run(["init", "p"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "p"
    settings = json.loads((root / ".vscode" / "settings.json").read_text())
    (schema_file, globs), = settings["yaml.schemas"].items()
    assert "issues/*.yaml" in globs
    schema = json.loads((root / schema_file).read_text())
    issue = next((root / "issues").glob("*.yaml"))
    first = issue.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/issue.schema.json"
    assert (issue.parent / first.split("=", 1)[1]).resolve() == (root / schema_file).resolve()
    data = yaml.load(issue.read_text(), Loader=_NoDates)  # noqa: S506 - a SafeLoader
    assert list(Draft202012Validator(schema).iter_errors(data)) == []
    assert schema == _schema("issue", tmp_path)


def _with_examples(node: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(node, dict):
        if "examples" in node:
            out.append(node)
        for value in node.values():
            out += _with_examples(value)
    elif isinstance(node, list):
        for value in node:
            out += _with_examples(value)
    return out


@pytest.mark.parametrize("what", ["issue", "config"])
def test_every_example_in_the_schema_is_valid_by_its_own_field(tmp_path: Path, what: str) -> None:
    nodes = _with_examples(_schema(what, tmp_path))
    assert len(nodes) > 20
    for node in nodes:
        for example in node["examples"]:
            errors = [e.message for e in Draft202012Validator(node).iter_errors(example)]
            assert errors == [], f"{node.get('description')}: {example!r}: {errors}"
