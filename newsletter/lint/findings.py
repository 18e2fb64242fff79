"""What `newsletter check` reports: one Finding per problem, `FILE[:LINE]: error|warning: message [rule]`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One problem: `FILE[:LINE]: error|warning: message [rule]`."""

    file: str
    line: int | None
    severity: str  # "error" or "warning"
    message: str
    rule: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        tail = f" [{self.rule}]" if self.rule else ""
        return f"{where}: {self.severity}: {self.message}{tail}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether `send` must refuse (unless forced)."""
    return any(f.is_error for f in findings)


def dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    out = []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out
