"""`newsletter translations init LANG` and `newsletter translations check`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from newsletter.commands._common import config_option, get_config
from newsletter.errors import CheckFailed, InputError, Problem


@click.group("translations")
def translations_command() -> None:
    """The theme's fixed strings ("Donate", "Read more", the unsubscribe pages) in your languages.

    A project's own catalogues live in locale/<lang>/LC_MESSAGES/messages.po next to
    newsletter.toml and win over the built-in ones (en, ar, be, de, es, fr, ru), string by string.

    \b
    Example:
        newsletter translations init de      # then fill in locale/de/LC_MESSAGES/messages.po
        newsletter translations check
    """


@translations_command.command("init")
@click.argument("language")
@config_option
def init_command(language: str, config_path: Path | None) -> None:
    """Write locale/LANGUAGE/LC_MESSAGES/messages.po with every string of the theme (and of your
    templates): the English text as msgid, an empty msgstr for you to fill in.

    Run it again after adding strings to your templates: new strings are added, your
    translations are kept.
    """
    from newsletter.compose import i18n
    from newsletter.compose.render import default_theme
    from newsletter.paths import display

    tag = i18n.normalise(language)
    if tag is None:
        raise InputError([Problem("LANGUAGE", None, "", f"{language!r} is not a language tag "
                                                        "(BCP 47, e.g. de, pt-BR, sr-Latn)")])
    config = get_config(config_path)
    messages = i18n.theme_messages([config.templates_dir, default_theme()])
    po = config.locale_dir / tag / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    existing = i18n.read_catalogue(po) if po.is_file() else None
    catalog = _catalog(tag, config.list_name)
    kept = 0
    for msgid, where in messages.items():
        old = existing.get(msgid) if existing is not None else None
        locations = [(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) if ":" in w else (w, None) for w in where]
        empty: str | tuple[str, ...] = ("",) * catalog.num_plurals if isinstance(msgid, tuple) else ""
        catalog.add(msgid, old.string if old is not None else empty,
                    locations=[(f, n) for f, n in locations if n] or [(locations[0][0], 0)],
                    flags=["python-format"] if "%(" in (msgid if isinstance(msgid, str) else msgid[0]) else [])
        kept += old is not None and bool(old.string)
    from babel.messages.pofile import write_po

    po.parent.mkdir(parents=True, exist_ok=True)
    tmp = po.with_suffix(".po.tmp")
    with tmp.open("wb") as f:
        write_po(f, catalog, width=0, sort_output=False, omit_header=False, include_previous=False)
    tmp.replace(po)
    todo = len(messages) - kept
    click.echo(f"wrote {display(po)}: {len(messages)} strings, {todo} to translate"
               + (f", {kept} kept from before" if existing is not None else ""))
    resolved = i18n.resolve(tag, config.default_language, None)
    if resolved.used != "en" and not existing:
        click.echo(f"until they are translated, {tag} issues show the built-in {resolved.used} strings "
                   "for the empty ones", err=True)


def _catalog(tag: str, project_name: str) -> Any:
    from babel import Locale, UnknownLocaleError
    from babel.messages.catalog import Catalog

    try:
        locale: Locale | None = Locale.parse(tag, sep="-")
    except (UnknownLocaleError, ValueError):
        locale = None
    catalog = Catalog(locale=locale, domain="messages", project=project_name, version="1",
                      msgid_bugs_address="", last_translator="", language_team="", charset="utf-8", fuzzy=False,
                      header_comment=f"# {tag} translations of the newsletter theme's fixed strings.\n"
                                     "# Fill in each msgstr; an empty one stays in English (or the built-in\n"
                                     "# translation). Keep every %(name)s exactly as in the msgid.")
    if locale is None:  # a tag Babel has no data for: still say which language this is
        catalog.locale_identifier = tag  # type: ignore[misc]
    return catalog


@translations_command.command("check")
@click.option("--strict", is_flag=True, help="Exit with status 1 when a string is untranslated.")
@config_option
def check_command(strict: bool, config_path: Path | None) -> None:
    """List, per language, the theme's strings no catalogue translates (they show in English),
    and every .po problem (syntax, placeholders) as FILE:LINE."""
    from newsletter.compose import i18n
    from newsletter.compose.render import default_theme
    from newsletter.paths import display

    config = get_config(config_path)
    i18n.check_project(config.locale_dir)
    messages = list(i18n.theme_messages([config.templates_dir, default_theme()]))
    untranslated = 0
    for tag in i18n.available(config.locale_dir):
        if tag == "en":
            continue
        files = i18n.catalogue_files(tag, config.locale_dir)
        where = display(files[0]) if files else tag
        missing = i18n.missing(tag, messages, config.locale_dir)
        untranslated += len(missing)
        click.echo(f"{where}: {tag}: " + (f"{len(missing)} of {len(messages)} strings untranslated"
                                          if missing else f"all {len(messages)} strings translated"))
        for msgid in missing:
            click.echo(f"  {msgid}")
    if strict and untranslated:  # the list above is the report; the CLI turns this into status 1
        raise CheckFailed(f"{untranslated} untranslated string{'s' * (untranslated != 1)}")
