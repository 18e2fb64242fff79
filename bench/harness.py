"""What every benchmark shares: the context it runs in, how a process is timed and its
peak memory taken, and the one table (figure · ours · reference · ratio · goal · met?).

The machine is shared and noisy, so a figure is the median of several runs, and a
comparison is a ratio of two figures measured in the same run, interleaved where possible
(ours, theirs, ours, theirs, ...) so that a burst of load hits both sides alike.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"
RESULTS = REPO / "bench" / "results.json"
#: A development signing key: the benchmarks do real sends, which refuse to run without one.
SECRET = "bench-only-signing-key-not-secret-0123456789abcdef"


class BenchError(Exception):
    """A benchmark could not run or its result is wrong (wrong count, non-zero exit)."""


class Skip(Exception):  # noqa: N818 - reads as `raise Skip("why")`
    """An external tool is missing and we are not in CI: this part is skipped, and says why."""


@dataclass
class Row:
    """One line of the table."""

    bench: str
    figure: str
    ours: float | None
    reference: float | None = None
    unit: str = ""
    ratio: float | None = None  # ours / reference, when there is a reference
    goal: str = ""
    met: bool | None = None  # None: no goal, or not measured
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.reference:
            self.ratio = self.ours / self.reference


@dataclass
class Context:
    """Where and how big. `tiny` shrinks every size so the smoke test runs each benchmark in seconds."""

    tiny: bool = False
    work: Path = WORK
    runs: int | None = None  # override the number of repetitions
    verbose: bool = True
    notes: list[str] = field(default_factory=list)

    def size(self, full: int, tiny: int) -> int:
        return tiny if self.tiny else full

    def repeat(self, full: int, tiny: int = 1) -> int:
        return self.runs if self.runs is not None else (tiny if self.tiny else full)

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"  · {msg}", file=sys.stderr, flush=True)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def python() -> str:
    """The interpreter that has `newsletter` installed (the venv running this)."""
    return sys.executable


def newsletter_cmd() -> list[str]:
    """How a user runs the tool: the console script next to the interpreter, else `-m newsletter`."""
    script = Path(sys.executable).with_name("newsletter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]


def bench_env(**extra: str) -> dict[str, str]:
    """The environment benchmark processes run in: no colour, no terminal, a signing key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "NEWSLETTER_"))}
    env.update({"NEWSLETTER_SECRET": SECRET, "NO_COLOR": "1", "TERM": "dumb"})
    env.update(extra)
    return env


@dataclass
class Measured:
    """One run of a process."""

    wall: float  # seconds
    peak_rss_kib: int | None
    returncode: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + system seconds of the process and the children it waited for

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            tail = (self.stderr.strip() or self.stdout.strip())[-1500:]
            raise BenchError(f"{what} exited with {self.returncode}:\n{tail}")
        return self


GNU_TIME = Path("/usr/bin/time")


def measure(cmd: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, rss: bool = False,
            timeout: float = 900) -> Measured:
    """Run `cmd` to completion; wall time always, peak RSS (via GNU time, else psutil) on request.

    Output goes to temporary files, not pipes: a big send's output can never block it.
    """
    env = env if env is not None else bench_env()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out_path, err_path, rss_path = Path(tmp, "out"), Path(tmp, "err"), Path(tmp, "rss")
        full = list(cmd)
        use_time = rss and GNU_TIME.exists()
        if use_time:
            full = [str(GNU_TIME), "-f", "%M", "-o", str(rss_path), *full]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            peak = _poll_rss(proc) if rss and not use_time else None
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)  # wait + the child's CPU time, like GNU time
            finally:
                timer.cancel()
            wall = time.perf_counter() - start
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            if code == -signal.SIGKILL and wall >= timeout:
                raise BenchError(f"{' '.join(cmd[:4])} ... took longer than {timeout:.0f} s")
        if use_time:
            text = rss_path.read_text().strip().splitlines()
            peak = int(text[-1]) if text and text[-1].isdigit() else None
        return Measured(wall, peak, code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"),
                        cpu=usage.ru_utime + usage.ru_stime)


def _poll_rss(proc: subprocess.Popen[bytes]) -> int | None:
    """Peak RSS of a process and its children by polling (when GNU time is not installed)."""
    import psutil

    peak = 0
    try:
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            total = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
            peak = max(peak, total)
            time.sleep(0.02)
    except psutil.Error:
        pass
    return peak // 1024 or None


T = TypeVar("T")



def stop(proc: subprocess.Popen[Any]) -> None:
    """End a server a benchmark started: SIGTERM, then SIGKILL if it has not gone in 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def postgres_server(*, durable: bool) -> Any:
    """A PostgreSQL server of the benchmark's own (tests/pg.py), or Skip outside CI when the
    binaries are missing (in CI, a BenchError: CI installs them)."""
    from tests.pg import PgMissing, start_server

    try:
        return start_server(durable=durable)
    except PgMissing as e:
        if in_ci():
            raise BenchError(str(e)) from None
        raise Skip(str(e)) from None


def interleaved(runs: int, *jobs: Callable[[], T]) -> list[list[T]]:
    """Run each job once per round, `runs` rounds: ours and the reference share the same noise."""
    results: list[list[T]] = [[] for _ in jobs]
    for _ in range(runs):
        for i, job in enumerate(jobs):
            results[i].append(job())
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """min–max of the runs, for the notes: shows how noisy the machine was."""
    return f"{min(values) * 1000:.0f}–{max(values) * 1000:.0f} ms" if values else ""


# --------------------------------------------------------------------------- the table

def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit in ("msg/s", "rcpt/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.3g} {unit}".strip()


def table(rows: Sequence[Row]) -> str:
    head = ("figure", "ours", "reference", "ratio", "goal", "met?")
    body = [
        (
            f"{r.bench}: {r.figure}",
            fmt(r.ours, r.unit),
            fmt(r.reference, r.unit),
            "—" if r.ratio is None else f"{r.ratio:.2f}",
            r.goal or "—",
            {True: "yes", False: "NO", None: "—"}[r.met],
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return " · ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) if i < 4 else c
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    notes = [f"  [{r.bench}] {r.figure}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def write_results(rows: Sequence[Row], path: Path, *, started: float, extra: dict[str, Any]) -> None:
    doc = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average": list(os.getloadavg())},
        **extra,
        "rows": [asdict(r) for r in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- projects

def project(ctx: Context, name: str, settings: dict[str, dict[str, object]] | None = None,
            top: dict[str, object] | None = None) -> Path:
    """A fresh copy of the example project under bench/.work/<name>/, with config keys changed.

    The repo's own newsletter.toml is copied and edited key by key (so the benchmark follows
    whatever the config grows), then the project's issues/ are copied alongside.
    """
    root = ctx.work / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    text = (REPO / "newsletter.toml").read_text()
    for key, value in (top or {}).items():
        text = set_toml(text, None, key, value)
    for section, values in (settings or {}).items():
        for key, value in values.items():
            text = set_toml(text, section, key, value)
    (root / "newsletter.toml").write_text(text)
    shutil.copytree(REPO / "issues", root / "issues")
    return root


def set_toml(text: str, section: str | None, key: str, value: object) -> str:
    """Set `key = value` in [section] (None: top level) of a TOML text, adding it if absent."""
    import re

    rendered = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
    lines = text.splitlines()
    current: str | None = None
    end_of_section = None
    for i, line in enumerate(lines):
        m = re.match(r"\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if m:
            if current == section and end_of_section is None:
                end_of_section = i
            current = m.group(1).strip()
            continue
        if current == section and re.match(rf"\s*{re.escape(key)}\s*=", line):
            lines[i] = f"{key} = {rendered}"
            return "\n".join(lines) + "\n"
    if section is None:
        first = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")), len(lines))
        lines.insert(first, f"{key} = {rendered}")
    elif current == section or end_of_section is not None:
        at = end_of_section if end_of_section is not None else len(lines)
        lines.insert(at, f"{key} = {rendered}")
    else:
        lines += ["", f"[{section}]", f"{key} = {rendered}"]
    return "\n".join(lines) + "\n"


def example_issues() -> list[Path]:
    """The example issues of the two seeds; until they exist, the smoke issue stands in."""
    names = ["2011-11-28-free-ales-bialiatski.yaml", "2013-12-10-solidarity-with-ales-bialiatski.yaml"]
    found = [REPO / "issues" / n for n in names if (REPO / "issues" / n).exists()]
    return found or [REPO / "issues" / "smoke.yaml"]
