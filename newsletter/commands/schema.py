"""`newsletter schema issue|config`"""

from __future__ import annotations

import json

import click


@click.command("schema")
@click.argument("what", type=click.Choice(["issue", "config"]))
def schema_command(what: str) -> None:
    """Print the JSON Schema (draft 2020-12) of an issue file or of newsletter.toml.

    It is generated from the very rules `build` and `check` validate with, so editors that
    read it (VS Code's YAML extension, any yaml-language-server client, Taplo for TOML)
    complete and check exactly what the tool accepts. `newsletter init` sets this up.

    \b
    Example:
        newsletter schema issue > .newsletter/issue.schema.json
    """
    if what == "issue":
        from newsletter.compose.issue import issue_json_schema as make
    else:
        from newsletter.config import config_json_schema as make
    click.echo(json.dumps(make(), indent=2, ensure_ascii=False))
