"""Run the atheris (libFuzzer, coverage-guided) targets of atheris_targets.py as subprocesses.

Each target starts from a small seed corpus of valid inputs and mutates from there; a
crash (an exception other than the documented error), an input that takes longer than
10 s (a hang) or more than 1 GB of memory fails the test, with libFuzzer's report.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from tests.conftest import REPO
from tests.torture.figures import count, size
from tests.torture.hostile import BASE_ISSUE

pytestmark = pytest.mark.torture

pytest.importorskip("atheris", reason="atheris has wheels for Linux x86_64 only")

KEYS = SigningKeys(b"atheris-signing-key-0123456789abcdef", (b"atheris-old-key-0123456789",), False)


def seeds(target: str) -> list[bytes]:
    if target == "issue":
        return [yaml.safe_dump(BASE_ISSUE, allow_unicode=True).encode(),
                b"subject: x\ndate: 2011-11-28\nblocks:\n  - {type: section, body: hi}\n"]
    if target == "config":
        return [(REPO / "newsletter.toml").read_bytes()]
    if target == "token":
        return [make_token(KEYS, "a@example.org", "l.example.org").encode(),
                make_token(SigningKeys(KEYS.old[0], (), False), "b@example.org", "l.example.org", "fr").encode()]
    if target == "csv":
        return [b"email,name,language,city\na@example.org,A,en,Minsk\nB@Example.org;B;fr\n",
                b"\xef\xbb\xbfemail;name\n\"c@example.org\";\"C, c\"\n"]
    return [json.dumps([{"event": e, "email": "a@example.org", "reason": "r", "type": "bounce",
                         "newsletter_issue": "i"} for e in ("unsubscribe", "bounce", "delivered", "open")]).encode()]


@pytest.mark.parametrize("target", ["issue", "config", "token", "csv", "webhook"])
def test_atheris(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds(target)):
        (corpus / f"seed{i}").write_bytes(seed)
    runs, seconds = size(2500, 200_000), size(3, 120)
    r = subprocess.run([sys.executable, "-m", "tests.torture.atheris_targets", target, str(corpus),
                        f"-runs={runs}", f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=1024",
                        "-max_len=4096", "-print_final_stats=1"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 120)
    assert r.returncode == 0, r.stderr[-4000:]
    done = re.search(r"Done (\d+) runs", r.stderr)
    assert done, r.stderr[-2000:]
    count("fuzz examples", f"atheris {target} (coverage-guided)", int(done.group(1)))
