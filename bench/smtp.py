"""smtp: messages per second of `newsletter send --backend smtp --yes` to 20,000 generated
subscribers into Postfix's `smtp-sink` on loopback, beside Postfix's own `smtp-source`
pushing the same number of messages, byte-for-byte one of ours (`-F`), into the same sink
over the same number of connections (`-d`: reusing them, as we do), in the same run.

Ours is the whole process with everything a real send does: read and validate the CSV,
check suppressions, sign an unsubscribe link per reader, fill the message, mark the ledger
before and after each hand-off, one SMTP conversation per message. Every run starts from
an empty ledger (otherwise the rerun would rightly send nothing), and the sink's own
counter must grow by exactly the number of messages each time.
Goal: ours ≥ 0.6 × smtp-source.

    python -m bench smtp            # or: python -m bench.smtp
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench import tools
from bench.data import subscribers_csv
from bench.harness import (
    BenchError,
    Context,
    Row,
    example_issues,
    interleaved,
    measure,
    median,
    newsletter_cmd,
    project,
)
from tests.ports import free_port

NAME = "smtp"
GOAL = 0.6
SENDER = "newsletter@example.org"


class Sink:
    """Postfix's smtp-sink on a loopback port; `count()` reads its running message counter."""

    def __init__(self, binary: str, folder: Path):
        self.binary = binary
        self.port = free_port()
        self.log = folder / f"smtp-sink-{self.port}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sink:
        folder = self.log.parent
        folder.mkdir(parents=True, exist_ok=True)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([self.binary, "-c", *user, f"127.0.0.1:{self.port}", "1024"],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"smtp-sink exited: {self.log.read_text(errors='replace')[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise BenchError("smtp-sink did not start listening")

    def count(self) -> int:
        """Messages the sink has accepted so far (its -c counter, flushed on every '.')."""
        time.sleep(0.05)
        found = re.findall(rb"mesg=(\d+)", self.log.read_bytes()[-4000:])
        return int(found[-1]) if found else 0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sample_message(ctx: Context, root: Path, rel_issue: str) -> Path:
    """One of our real messages (outbox backend, one reader), to size smtp-source's messages.

    Returned with LF line ends: smtp-source -F sends each line followed by CRLF, so the bytes
    on the wire are the same as ours.
    """
    one = subscribers_csv(ctx.work / "data", 1, start=9_999_999)
    outbox = root / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    measure([*newsletter_cmd(), "send", rel_issue, "--backend", "outbox", "--yes", "--subscribers", str(one)],
            cwd=root).check("newsletter send --backend outbox (one sample message)")
    found = sorted(outbox.rglob("*.eml"))
    if not found:
        raise BenchError(f"the outbox send wrote no .eml under {outbox}")
    data = found[0].read_bytes()
    shutil.rmtree(outbox, ignore_errors=True)
    shutil.rmtree(root / ".newsletter", ignore_errors=True)
    target = ctx.work / "smtp-source-message.eml"
    target.write_bytes(data.replace(b"\r\n", b"\n"))
    return target


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    sink_bin, source_bin = tools.postfix_tools(install=install)
    n = ctx.size(20_000, 200)
    runs = ctx.repeat(3, 1)
    connections = 1
    issue = example_issues()[0]
    rel = f"issues/{issue.name}"
    csv = subscribers_csv(ctx.work / "data", n)
    with Sink(sink_bin, ctx.work / "sink") as sink:
        root = project(ctx, "smtp", {"smtp": {"host": "127.0.0.1", "port": sink.port, "security": "none",
                                               "connections": connections}})
        measure([*newsletter_cmd(), "build", rel], cwd=root).check(f"newsletter build {rel}")
        message = sample_message(ctx, root, rel)
        wire_size = len(message.read_bytes().replace(b"\n", b"\r\n"))
        ours_cmd = [*newsletter_cmd(), "send", rel, "--backend", "smtp", "--yes", "--subscribers", str(csv)]
        source_cmd = [source_bin, "-d", "-s", str(connections), "-m", str(n), "-F", str(message),
                      "-f", SENDER, "-t", "bench@example.org", f"127.0.0.1:{sink.port}"]

        cpu: list[float] = []

        def counted(what: str, cmd: list[str], fresh: Path | None = None) -> float:
            if fresh is not None:
                shutil.rmtree(fresh, ignore_errors=True)  # an empty ledger: a first send, not a rerun
            before = sink.count()
            m = measure(cmd, cwd=root, timeout=600).check(what)
            got = sink.count() - before
            if got != n:
                raise BenchError(f"{what}: the sink received {got} messages, expected {n}")
            if fresh is not None:
                cpu.append(m.cpu)
            return m.wall

        ctx.log(f"smtp: {runs} interleaved runs of {n:,} messages ({wire_size / 1024:.1f} KB each), "
                f"ours and smtp-source, {connections} connection(s)")
        ours_t, ref_t = interleaved(
            runs,
            lambda: counted("newsletter send --backend smtp", ours_cmd, fresh=root / ".newsletter"),
            lambda: counted("smtp-source", source_cmd),
        )
    ours_rate, ref_rate = n / median(ours_t), n / median(ref_t)
    return [Row(NAME, f"send --backend smtp, {n:,} msgs into smtp-sink (vs smtp-source -d)", ours_rate, ref_rate,
                "msg/s", goal=f"ratio ≥ {GOAL}", met=ours_rate / ref_rate >= GOAL,
                note=f"median of {runs}; {wire_size / 1024:.1f} KB per message, {connections} connection; "
                     f"ours {min(ours_t):.1f}–{max(ours_t):.1f} s, smtp-source {min(ref_t):.1f}–{max(ref_t):.1f} s "
                     f"per run (whole process, ledger + signed unsubscribe links on); our CPU time "
                     f"{median(cpu):.1f} s per run")]


if __name__ == "__main__":
    import sys

    from bench.__main__ import main

    main([NAME, *sys.argv[1:]])  # e.g. python -m bench.smtp --tiny
