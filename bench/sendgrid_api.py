"""sendgrid: recipients per second of a send to 1,000,000 generated subscribers through the
real backend (HTTP over loopback) into the stand-in for `POST /v3/mail/send`
(tests/sendgrid_server.py, in its own process so its CPU and memory are not counted as
ours; jsonschema validation off for speed, SendGrid's documented limits still checked,
every request's JSON parsed and its personalizations counted). The benchmark asserts that
the server accepted exactly one personalization per subscriber.

Goals: the whole send under 60 s wall, peak RSS under 200 MiB (GNU time, whole process).

    python -m bench sendgrid        # or: python -m bench.sendgrid_api
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.data import subscribers_csv
from bench.harness import (
    REPO,
    BenchError,
    Context,
    Row,
    bench_env,
    example_issues,
    measure,
    newsletter_cmd,
    project,
)

NAME = "sendgrid"
WALL_GOAL_S = 60.0
RSS_GOAL_MIB = 200.0
API_KEY = "SG.bench-key"

_SERVER = """
import json, sys
from tests.sendgrid_server import SendGridServer
s = SendGridServer(sys.argv[1], validate=False, record="count").start()
print(json.dumps({"url": s.url}), flush=True)
sys.stdin.readline()
print(json.dumps({"requests": len(s.requests), "accepted": s.accepted_count,
                  "refused": sum(1 for r in s.requests if r.status not in (200, 202))}), flush=True)
s.stop()
"""


class Server:
    """tests/sendgrid_server.py in a child process; `close()` returns its request accounting."""

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, API_KEY], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError("the SendGrid stand-in (tests/sendgrid_server.py) did not start")
        self.url = json.loads(line)["url"]
        return self

    def close(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        self.proc.wait(10)
        return answer

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    n = ctx.size(1_000_000, 2_500)
    issue = example_issues()[0]
    rel = f"issues/{issue.name}"
    csv = subscribers_csv(ctx.work / "data", n)
    with Server() as server:
        root = project(ctx, "sendgrid", {"sendgrid": {"host": server.url}})
        measure([*newsletter_cmd(), "build", rel], cwd=root).check(f"newsletter build {rel}")
        ctx.log(f"sendgrid: {n:,} recipients through the sendgrid backend into {server.url}")
        m = measure([*newsletter_cmd(), "send", rel, "--backend", "sendgrid", "--yes", "--subscribers", str(csv)],
                    cwd=root, env=bench_env(SENDGRID_API_KEY=API_KEY), rss=True, timeout=900)
        got = server.close()
    m.check("newsletter send --backend sendgrid")
    if got["accepted"] != n:
        raise BenchError(f"the SendGrid stand-in accepted {got['accepted']:,} personalizations "
                         f"in {got['requests']} requests, expected {n:,}")
    rss_mib = (m.peak_rss_kib or 0) / 1024
    rate = n / m.wall
    note = (f"{got['requests']:,} requests, {got['accepted']:,} personalizations accepted, "
            f"{got['refused']} refused; one run (a million rows: not repeated)")
    return [
        Row(NAME, f"send --backend sendgrid, {n:,} recipients: wall time", m.wall, None, "s",
            goal=f"< {WALL_GOAL_S:.0f} s", met=m.wall < WALL_GOAL_S,
            note=f"{rate:,.0f} recipients/s; CPU time {m.cpu:.1f} s (user+sys; the rest is waiting: for the "
                 f"server, or for a core on a loaded machine); " + note),
        Row(NAME, f"send --backend sendgrid, {n:,} recipients: peak RSS", rss_mib, None, "MiB",
            goal=f"< {RSS_GOAL_MIB:.0f} MiB", met=rss_mib < RSS_GOAL_MIB),
    ]


if __name__ == "__main__":
    import sys

    from bench.__main__ import main

    main([NAME, *sys.argv[1:]])  # e.g. python -m bench.smtp --tiny
