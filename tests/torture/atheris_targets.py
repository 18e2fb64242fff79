"""Coverage-guided fuzzing (atheris / libFuzzer) of the parsers that read what users and strangers send.

    python -m tests.torture.atheris_targets TARGET [libFuzzer flags, e.g. -runs=10000]

TARGET: issue (YAML -> validated issue), config (TOML -> Config), token (unsubscribe
tokens), csv (subscriber list), webhook (SendGrid event batch -> planned changes).
Anything but the documented error (InputError / InvalidToken / WebhookError) is a crash:
atheris prints the input and exits non-zero. tests/torture/test_atheris.py runs each.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["newsletter"]):
    from newsletter import config as config_mod
    from newsletter.audience import subscribers, tokens, webhook
    from newsletter.audience.secrets import SigningKeys
    from newsletter.compose import issue as issue_mod
    from newsletter.errors import InputError

KEYS = SigningKeys(b"atheris-signing-key-0123456789abcdef", (b"atheris-old-key-0123456789",), False)
WORK = Path(tempfile.mkdtemp(prefix="atheris-"))


def _file(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


def issue(data: bytes) -> None:
    try:
        issue_mod.load_issue(_file("fuzz.yaml", data))
    except InputError:
        pass


def config(data: bytes) -> None:
    try:
        config_mod.load_config(_file("newsletter.toml", data))
    except InputError:
        pass


def token(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(400)
    try:
        got = tokens.read_token(KEYS, text)
    except tokens.InvalidToken:
        return
    # accepted: then it is the one canonical spelling (no stray characters, no padding bits)
    body, sig = text.split(".")
    assert tokens._b64(tokens._unb64(body)) == body and tokens._b64(tokens._unb64(sig)) == sig, text
    assert got.email and "\n" not in got.email


def csv(data: bytes) -> None:
    try:
        for row in subscribers.read_subscribers(_file("subscribers.csv", data)):
            if isinstance(row, subscribers.Subscriber):
                assert row.email.isascii() and "\n" not in row.email and "\r" not in row.email
    except InputError:
        pass


def webhook_batch(data: bytes) -> None:
    try:
        events = webhook.parse_events(data)
    except webhook.WebhookError:
        return
    webhook.plan(events)


TARGETS = {"issue": issue, "config": config, "token": token, "csv": csv, "webhook": webhook_batch}


def main() -> None:
    target = TARGETS[sys.argv[1]]
    sys.setrecursionlimit(10_000)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
