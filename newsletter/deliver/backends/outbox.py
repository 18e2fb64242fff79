"""The outbox backend (the default): each message becomes an `.eml` file under outbox/<issue>/.

No account, no network: open the files in a mail client to see exactly what readers would
get. Each reader's file has a fixed name, and is written to a temporary file first then
renamed into place, so a rerun after a kill rewrites a file instead of adding a second
copy: the outbox can never hold a reader twice. Test messages (`send --to`) go to
outbox/<issue>/test/ with a time stamp, so they never mix with the issue's send.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from newsletter.config import Config
from newsletter.deliver.backends.base import NO_HOOKS, Backend, Hooks, Outcome
from newsletter.deliver.message import PreparedMessage, Recipient
from newsletter.errors import BackendError


def file_name(email: str) -> str:
    """A safe, reversible-enough file name for an address (no '/', no leading dot)."""
    return re.sub(r"[^A-Za-z0-9@._+-]", lambda m: f"%{ord(m.group()):02X}", email.lower()).lstrip(".") + ".eml"


class OutboxBackend(Backend):
    name = "outbox"

    def __init__(self, config: Config, **options: object) -> None:
        super().__init__(config, **options)
        folder = options.get("folder")
        self.root = Path(str(folder)) if folder else config.outbox_dir
        self.folder: Path | None = None

    def open(self, message: PreparedMessage, hooks: Hooks = NO_HOOKS) -> None:
        super().open(message, hooks)
        folder = self.root / self.message.issue_slug
        if self.message.test:
            folder = folder / "test"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BackendError(f"outbox_dir: cannot create {folder}: {e.strerror}") from None
        self.folder = folder

    def send_messages(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        if self.message is None or self.folder is None:
            raise BackendError("outbox: send_messages() called before open()")
        out = []
        for r in recipients:
            name = file_name(r.email)
            if self.message.test:
                name = time.strftime("%Y%m%dT%H%M%S-") + name
            path = self.folder / name
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
            try:
                return_path = self.return_path(r)  # as an MTA writes it on delivery
                head = f"Return-Path: <{return_path}>\r\n".encode("ascii") if return_path else b""
                tmp.write_bytes(head + self.message.to_bytes(r))
                self.handoff([r])
                os.replace(tmp, path)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise BackendError(f"outbox: cannot write {path}: {e.strerror}") from None
            out.append(self.done(Outcome(r.email, "sent", str(path))))
        return out
