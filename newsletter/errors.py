"""Errors the library raises; only the CLI turns them into exit codes and messages
(`newsletter.cli.LazyGroup.invoke`, the one place that does).

A user's mistake is reported as one or more `Problem`s, each naming the file, the line
and the field, so the editor can jump straight to it. All problems found in one pass are
reported together rather than one per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.deliver.backends.base import Outcome


@dataclass(frozen=True)
class Problem:
    """One finding about user input: `FILE:LINE: field.path: message`."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class NewsletterError(Exception):
    """Base class for every error meant to be shown to the user without a traceback."""

    def lines(self) -> list[str]:
        return [str(self)]


class InputError(NewsletterError):
    """The user's files (issue, config, CSV, templates) have one or more problems."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class ConfigError(InputError):
    """newsletter.toml is missing, malformed or has invalid values."""


class SendError(NewsletterError):
    """A send could not start or had to stop (refused, misconfigured, backend gave up)."""


class BackendError(NewsletterError):
    """A backend could not be built or could not hand messages off; carries the remote answer.

    `outcomes` are the recipients whose fate was settled before the backend gave up (handed
    off earlier in the same batch, or refused together with the request that stopped it):
    the send loop records them, or a rerun would send the earlier ones again.
    """

    def __init__(self, message: str = "", *, outcomes: Sequence[Outcome] = ()) -> None:
        super().__init__(message)
        self.outcomes: list[Outcome] = list(outcomes)


class MissingSecret(NewsletterError):
    """A required secret is not set or too weak (the message names the variable, never a value)."""


class CheckFailed(NewsletterError):
    """`newsletter check` (or `translations check --strict`) found errors; its findings are already
    printed, this is the summary."""
