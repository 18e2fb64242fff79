"""bounces: `newsletter bounces` over a Maildir of 100,000 messages, and `newsletter suppressions
sync` of 100,000 SendGrid suppressions.

The Maildir is built from the test corpus (tests/data/bounces), one message per reader of a
100,000-row ledger: six hard bounces in ten (Postfix and Exchange through VERP, Exim, Gmail,
Yahoo without), two soft (qmail mailbox full; an RFC 3464 delay through VERP), one vacation
auto-reply, one ordinary reply. The run asserts the summary counts exactly and that every
bounce left for `.processed`. Reference: the same files read and judged by flufl.bounce's
`scan_message` alone in one Python process (what Mailman does per message; no state, no
moving), interleaved with ours.

The sync serves 100,000 suppressions (bounces, blocks, spam reports, invalid emails, global
unsubscribes) from tests/sendgrid_server.py on loopback and asserts all are suppressed after.
Reference: the same pages fetched and JSON-decoded by a bare urllib loop (the HTTP floor).
Goals: bounces >= 2,000 messages/s; sync < 30 s.

    python -m bench bounces          # or: python -m bench.bounces
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from bench.data import address
from bench.harness import (
    SECRET,
    BenchError,
    Context,
    Row,
    bench_env,
    interleaved,
    measure,
    median,
    newsletter_cmd,
    project,
    python,
)

NAME = "bounces"
RATE_GOAL = 2_000
SYNC_GOAL_S = 30.0
SLUG = "2011-11-28-bench"
BOUNCES = "bounces@example.org"
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "bounces"
#: i % 10 -> (corpus file, the reader address in it, through VERP?)
MIX = [
    ("postfix.eml", "ada@example.org", True), ("postfix.eml", "ada@example.org", False),
    ("exim.eml", "marie.curie@example.net", False), ("gmail.eml", "nobody.here@gmail.example", False),
    ("qmail.eml", "full.box@example.info", False), ("rfc3464.eml", "slow.server@example.edu", True),
    ("exchange.eml", "ales.b@contoso.example.com", True), ("yahoo.eml", "gone.reader@yahoo.example", False),
    ("autoreply-vacation.eml", "", False), ("ordinary-reply.eml", "", False),
]
KINDS = {"postfix.eml": "hard", "exim.eml": "hard", "gmail.eml": "hard", "exchange.eml": "hard", "yahoo.eml": "hard",
         "qmail.eml": "soft", "rfc3464.eml": "soft", "autoreply-vacation.eml": "auto", "ordinary-reply.eml": "other"}
MID = re.compile(rb"^(Message-I[Dd]: *)<[^>]*>", re.MULTILINE)

REFERENCE = """\
import os, sys, email
from email import policy
from flufl.bounce import scan_message
root = sys.argv[1]
n = found = 0
for sub in ("new", "cur"):
    for name in os.listdir(os.path.join(root, sub)):
        with open(os.path.join(root, sub, name), "rb") as f:
            msg = email.message_from_bytes(f.read(1 << 20), policy=policy.compat32)
        found += bool(scan_message(msg))
        n += 1
print(n, found)
"""

FETCH = """\
import json, sys, urllib.request
host, key = sys.argv[1], sys.argv[2]
n = 0
for name in ("bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes"):
    offset = 0
    while True:
        req = urllib.request.Request(f"{host}/v3/suppression/{name}?limit=500&offset={offset}",
                                     headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req) as r:
            page = json.loads(r.read())
        n += len(page)
        offset += len(page)
        if len(page) < 500:
            break
print(n)
"""


def pristine(ctx: Context, n: int) -> tuple[Path, Path, dict[str, int]]:
    """(Maildir, state file with a ledger of n `sent` readers, expected counts); built once."""
    from bench.state import fill_ledger
    from newsletter.audience.secrets import SigningKeys
    from newsletter.audience.verp import verp_address
    from newsletter.store.sqlite import MIGRATIONS, SqliteStore

    folder = ctx.work / "data" / f"bounces-{n}-v{len(MIGRATIONS)}"
    box, database = folder / "Maildir", folder / "state.db"
    expected = {"hard": 0, "soft": 0, "auto": 0, "other": 0}
    for i in range(n):
        expected[KINDS[MIX[i % 10][0]]] += 1
    if (folder / "done").exists():
        return box, database, expected
    shutil.rmtree(folder, ignore_errors=True)
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    keys = SigningKeys(SECRET.encode(), (), False)
    templates = {f: (CORPUS / f).read_bytes().replace(b"@@ISSUE@@", SLUG.encode()) for f, _a, _v in MIX}
    for i in range(n):
        name, reader, verp = MIX[i % 10]
        email = address(i)
        to = verp_address(BOUNCES, keys, SLUG, email) if verp else "newsletter@example.org"
        raw = templates[name].replace(b"@@TO@@", to.encode())
        if reader:
            raw = raw.replace(reader.encode(), email.encode())
        raw = MID.sub(lambda m, i=i: m.group(1) + f"<bench.{i}@mx.example.org>".encode(), raw, count=1)
        (box / "new" / f"1322470000.M{i}P1.bench").write_bytes(raw)
    with SqliteStore(database, name=str(database)) as store:
        fill_ledger(store, SLUG, n)
        store.checkpoint()
    (folder / "done").touch()
    return box, database, expected


def run_bounces(ctx: Context) -> Row:
    n = ctx.size(100_000, 300)
    ctx.log(f"bounces: a Maildir of {n:,} messages (built once)")
    box, database, expected = pristine(ctx, n)
    root = project(ctx, "bounces", {"bounces": {"address": BOUNCES}}, top={"database": ".newsletter/state.db"})
    work = root / "Maildir"
    reference_script = root / "reference.py"
    reference_script.write_text(REFERENCE)

    def reset() -> None:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(root / ".newsletter", ignore_errors=True)
        subprocess.run(["cp", "-al", str(box), str(work)], check=True)  # hard links: moving one leaves the pristine
        (root / ".newsletter").mkdir()
        shutil.copyfile(database, root / ".newsletter" / "state.db")

    want = (f"{expected['hard'] + expected['soft']:,} bounces ({expected['hard']:,} hard, {expected['soft']:,} soft),"
            f" {expected['auto']:,} auto-replies ignored, {expected['other']:,} unrecognised left in place,"
            f" {expected['hard']:,} addresses newly suppressed")

    cpu: list[float] = []

    def ours() -> float:
        reset()
        m = measure([*newsletter_cmd(), "bounces", "Maildir"], cwd=root, timeout=1800).check("newsletter bounces")
        cpu.append(m.cpu)
        if m.stdout.strip() != want:
            raise BenchError(f"newsletter bounces said {m.stdout.strip()!r}, expected {want!r}")
        moved, bounced = sum(1 for _ in (work / ".processed" / "new").iterdir()), expected["hard"] + expected["soft"]
        if moved != bounced:
            raise BenchError(f"{moved:,} messages moved to .processed, expected {bounced:,}")
        return n / m.wall

    def reference() -> float:
        m = measure([python(), str(reference_script), str(box)], cwd=root, timeout=1800).check("flufl.bounce alone")
        if int(m.stdout.split()[0]) != n:
            raise BenchError(f"the reference read {m.stdout.strip()}, expected {n} messages")
        return n / m.wall

    rounds = ctx.repeat(2, 1)
    mine, theirs = interleaved(rounds, ours, reference)
    return Row(NAME, f"bounces, Maildir of {n:,} messages: msg/s (vs flufl.bounce scan alone)", median(mine),
               median(theirs), "msg/s", goal=f"≥ {RATE_GOAL:,} msg/s", met=median(mine) >= RATE_GOAL,
               note=f"median of {rounds}; {n / median(cpu):,.0f} msg per CPU second (user+sys: what a quiet core "
                    f"gives); {expected['hard']:,} hard, {expected['soft']:,} soft, {expected['auto']:,} auto-replies, "
                    f"{expected['other']:,} other; counts and moves checked")


def run_sync(ctx: Context) -> Row:
    from tests.sendgrid_server import SendGridServer

    n = ctx.size(100_000, 1_000)
    key = "SG.bench-sync-key"
    per = n // 5
    now = int(time.time())
    with SendGridServer(api_key=key, validate=False) as sg:
        sg.add_suppressions("bounces", ({"created": now - i, "email": f"b{i}@example.org", "reason": "550 5.1.1",
                                         "status": "5.1.1"} for i in range(per)))
        sg.add_suppressions("blocks", ({"created": now - i, "email": f"k{i}@example.org", "reason": "554",
                                        "status": "5.7.1"} for i in range(per)))
        sg.add_suppressions("spam_reports", ({"created": now - i, "email": f"s{i}@example.org", "ip": "192.0.2.1"}
                                             for i in range(per)))
        sg.add_suppressions("invalid_emails", ({"created": now - i, "email": f"v{i}@example.org", "reason": "bad"}
                                               for i in range(per)))
        sg.add_suppressions("unsubscribes", ({"created": now - i, "email": f"u{i}@example.org"}
                                             for i in range(n - 4 * per)))
        root = project(ctx, "sync", {"sendgrid": {"host": sg.url}}, top={"database": ".newsletter/state.db"})
        fetch = root / "fetch.py"
        fetch.write_text(FETCH)

        def ours() -> float:
            shutil.rmtree(root / ".newsletter", ignore_errors=True)
            m = measure([*newsletter_cmd(), "suppressions", "sync"], cwd=root,
                        env=bench_env(SENDGRID_API_KEY=key), timeout=600).check("newsletter suppressions sync")
            with sqlite3.connect(root / ".newsletter" / "state.db") as conn:
                got = conn.execute("SELECT count(*) FROM suppressions").fetchone()[0]
            if got != n:
                raise BenchError(f"{got:,} suppressed after the sync, expected {n:,}")
            return m.wall

        def reference() -> float:
            m = measure([python(), str(fetch), sg.url, key], cwd=root, timeout=600).check("bare urllib fetch")
            if int(m.stdout.strip()) != n:
                raise BenchError(f"the reference fetched {m.stdout.strip()}, expected {n}")
            return m.wall

        rounds = ctx.repeat(3, 1)
        mine, theirs = interleaved(rounds, ours, reference)
    return Row(NAME, f"suppressions sync of {n:,} SendGrid suppressions: wall time (vs bare urllib fetch)",
               median(mine), median(theirs), "s", goal=f"< {SYNC_GOAL_S:.0f} s", met=median(mine) < SYNC_GOAL_S,
               note=f"median of {rounds}; {n // 500 + 5} pages of 500; every address checked suppressed after")


def run(ctx: Context, *, install: bool = True) -> list[Row]:
    return [run_bounces(ctx), run_sync(ctx)]


if __name__ == "__main__":
    from bench.harness import table

    print(table(run(Context())))
