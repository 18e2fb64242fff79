"""The `newsletter` command. Thin: each command lives in newsletter/commands/<name>.py and is
imported only when run, so `newsletter --help` stays fast (no sendgrid, premailer, lxml).

Library code raises `NewsletterError` (newsletter/errors.py); only here, in `LazyGroup.invoke`,
is it turned into its message on stderr and an exit status, for every command alike.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from newsletter.errors import NewsletterError

#: Exit statuses: a problem the user can fix (bad input, refused send, missing secret, failed
#: check), and Ctrl-C (128 + SIGINT, as shells report it).
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, one-line help shown by `newsletter --help` without importing it)
    "build": ("newsletter.commands.build", "Build an issue: email.html, email.txt and web.html."),
    "check": ("newsletter.commands.check", "Lint a built issue before it is sent."),
    "preview": ("newsletter.commands.preview", "Preview an issue in the browser, rebuilding on change."),
    "screenshot": ("newsletter.commands.screenshot", "PNG screenshots: desktop and mobile, light and dark."),
    "archive": ("newsletter.commands.archive", "Static web archive of all issues, with an Atom feed."),
    "init": ("newsletter.commands.init", "Create a new newsletter project."),
    "translations": ("newsletter.commands.translations", "The theme's strings in your languages: init LANG, check."),
    "send": ("newsletter.commands.send", "Send an issue to the subscribers (or --dry-run, or --to one address)."),
    "status": ("newsletter.commands.status", "Show how far the send of an issue has got."),
    "serve": ("newsletter.commands.serve", "Serve the unsubscribe endpoint and the SendGrid webhook."),
    "unsubscribe": ("newsletter.commands.suppressions", "Suppress an address: it is never mailed again."),
    "resubscribe": ("newsletter.commands.suppressions", "Lift an address's suppression (explicit and logged)."),
    "suppressions": ("newsletter.commands.suppressions", "List, export or import the suppression list."),
    "subscribers": ("newsletter.commands.subscribers", "The readers in the store: import, export, count, list, "
                                                       "show, forget."),
    "signup-form": ("newsletter.commands.signup_form", "Print a list's HTML signup form for your web site."),
    "db": ("newsletter.commands.db", "The state database: migrate, or copy between SQLite and PostgreSQL."),
    "schema": ("newsletter.commands.schema", "Print the JSON Schema of an issue file or of newsletter.toml."),
    "bounces": ("newsletter.commands.bounces", "Read bounces from a mailbox; suppress addresses that bounce."),
    "report": ("newsletter.commands.report", "How an issue did (sent, bounced, complaints...); all issues as a chart."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return getattr(module, name.replace("-", "_") + "_command")

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; the one place a library error becomes lines on stderr and an exit status."""
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            for line in e.lines():
                click.echo(line, err=True)
            ctx.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    module = COMMANDS[name][0]
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="newsletter")
def cli() -> None:
    """Compose email newsletters as YAML in git, build them, and send them reliably.

    \b
    Example:
        newsletter build issues/2011-11-28-free-ales-bialiatski.yaml
        newsletter send issues/2011-11-28-free-ales-bialiatski.yaml --dry-run
    """


def main() -> None:
    cli.main(standalone_mode=True)
