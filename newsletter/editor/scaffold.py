"""`newsletter init DIR`: a new newsletter project that works on the first try.

The project is assembled in a temporary folder beside DIR, loaded and built there (so a
bad --sender or --base-url fails before anything appears), and only then moved into
place. Existing files are never overwritten.

Until given real addresses, the project sends from example.org, a domain reserved for
examples: it builds, previews and dry-runs, the outbox backend writes files instead of
sending, and `newsletter check` says it is a demo project until the sender is real.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import string
from pathlib import Path

from newsletter.compose.i18n import BUILT_IN, normalise
from newsletter.compose.render import default_theme
from newsletter.config import CONFIG_NAME, EMAILISH, load_config
from newsletter.errors import InputError, NewsletterError, Problem
from newsletter.paths import staging_dir

SCAFFOLD = Path(__file__).parents[1] / "data" / "scaffold"
#: What init writes until told the real one; `newsletter check` reports it (see check.py).
PLACEHOLDER_ADDRESS = "1 Example Street, 00000 Example City, Country"


class ScaffoldError(NewsletterError):
    """DIR cannot take a new project (files in the way, bad options)."""


def _q(text: str) -> str:
    """A TOML (and YAML) double-quoted string."""
    return json.dumps(text, ensure_ascii=False)


def planned_files(*, name: str, sender: str, base_url: str | None, website: str | None, language: str,
                  postal_address: str, today: dt.date) -> dict[str, str]:
    """Relative path -> text of every file `init` writes."""
    domain = sender.rpartition("@")[2].lower()
    website = website or f"https://{domain}/"
    base_url = (base_url or f"https://news.{domain}").rstrip("/")
    list_id = f"news.{domain}" if not domain.startswith("news.") else domain
    slug = f"{today.isoformat()}-welcome"
    demo = domain in ("example.org", "example.com", "example.net") or domain.endswith(
        (".example.org", ".example.com", ".example.net"))
    values = {
        "language": _q(language), "sender_name": _q(name), "sender_address": _q(sender),
        "demo_note": ("example.org is reserved for examples: put your own address here before a real send"
                      if demo else "it must be on a domain you can send from (SPF, DKIM)"),
        "list_name": _q(f"{name} news"), "list_name_plain": f"{name} news", "list_id": _q(list_id),
        "org_name": _q(name), "postal_address": _q(postal_address), "website": _q(website),
        "base_url": _q(base_url), "slug": slug, "date": today.isoformat(),
        "subject": _q(f"Welcome to {name} news"),
    }
    theme = default_theme()
    listing = "\n".join(f"- `{p.relative_to(theme).as_posix()}`" for p in sorted(theme.rglob("*.j2")))

    def fill(template: str, **extra: str) -> str:
        return string.Template((SCAFFOLD / template).read_text(encoding="utf-8")).safe_substitute(values, **extra)

    return {
        CONFIG_NAME: _align_comments(fill("newsletter.toml.tmpl")),
        f"issues/{slug}.yaml": fill("first-issue.yaml.tmpl"),
        "templates/README.md": fill("templates-README.md", theme_files=listing),
        "subscribers.csv": fill("subscribers.csv.tmpl"),
        ".gitignore": fill("gitignore.tmpl"),
        **editor_files(),
    }


def editor_files() -> dict[str, str]:
    """What makes editors complete and check issue files: the JSON Schemas (from the validator's
    own rules; `newsletter schema issue` prints the current one) and VS Code's settings pointing
    the YAML extension at them. Other yaml-language-server clients use the issue's modeline."""
    from newsletter.compose.issue import issue_json_schema
    from newsletter.config import config_json_schema

    settings = {"yaml.schemas": {"./schemas/issue.schema.json": ["issues/*.yaml", "issues/*.yml"]},
                "evenBetterToml.schema.associations": {"newsletter\\.toml$": "./schemas/config.schema.json"}}
    return {
        "schemas/issue.schema.json": json.dumps(issue_json_schema(), indent=2, ensure_ascii=False) + "\n",
        "schemas/config.schema.json": json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n",
        ".vscode/settings.json": json.dumps(settings, indent=2) + "\n",
    }


def _align_comments(text: str, column: int = 36) -> str:
    """Line up the `# ...` explanations after `key = value` once the values are filled in."""
    out = []
    for line in text.splitlines():
        cut = line.rfind("  # ")
        if cut > 0 and not line.lstrip().startswith("#") or cut > 0 and re.match(r"^# \w+ = ", line):
            left, comment = line[:cut].rstrip(), line[cut:].strip()
            line = f"{left:<{column - 1}} {comment}" if len(left) < column - 1 else f"{left}  {comment}"
        out.append(line)
    return "\n".join(out) + "\n"


def init_project(target: Path, *, name: str = "My Organisation", sender: str = "newsletter@example.org",
                 base_url: str | None = None, website: str | None = None, language: str = "en",
                 postal_address: str = PLACEHOLDER_ADDRESS,
                 today: dt.date | None = None) -> list[Path]:
    """Create a project in `target` (new or empty folder); return the files written."""
    problems = []
    if not re.fullmatch(EMAILISH, sender):
        problems.append(f"--sender {sender!r} is not an email address")
    if normalise(language) is None:
        problems.append(f"--language {language!r} is not a language tag (BCP 47, e.g. en, fr, pt-BR); "
                        f"built-in translations: {', '.join(BUILT_IN)}")
    else:
        language = normalise(language) or language
    if not name.strip() or "\n" in name:
        problems.append("--name must be one line of text")
    if not postal_address.strip():
        problems.append("--address must not be empty: the law requires a postal address in every email")
    if problems:
        raise ScaffoldError("\n".join(problems))
    files = planned_files(name=name.strip(), sender=sender, base_url=base_url, website=website, language=language,
                          postal_address=postal_address, today=today or dt.date.today())
    target = target.absolute()
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder")
    in_the_way = [rel for rel in files if (target / rel).exists()] + (
        ["templates"] if (target / "templates").exists() else [])
    if in_the_way:
        raise ScaffoldError(f"{target}: would overwrite {', '.join(sorted(set(in_the_way)))}; "
                            "init only creates a new project")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(target.parent, f".{target.name}.init.")
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        _verify(tmp, next(rel for rel in files if rel.startswith("issues/")))
        if not target.exists():
            os.replace(tmp, target)
        else:
            for entry in tmp.iterdir():
                os.replace(entry, target / entry.name)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [target / rel for rel in files]


def _verify(root: Path, issue: str) -> None:
    """The new project must load and build; an option that breaks it is the user's mistake."""
    from newsletter.compose.build import build_issue

    try:
        config = load_config(root / CONFIG_NAME)
        build_issue(root / issue, config, write=False)
    except InputError as e:
        lines = [p.message if p.field == "" else f"{p.field}: {p.message}" for p in e.problems]
        raise InputError([Problem("newsletter init", None, "", line) for line in lines]) from None
