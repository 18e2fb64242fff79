"""Where bounces are read from: a Maildir folder, an mbox file, or an IMAP folder over TLS.

The rule for every source: a message not recognised as a bounce is left exactly as it was
(never deleted, moved or marked read: IMAP messages are fetched with BODY.PEEK, Maildir
files are only read). Recognised bounces are moved to a `processed` folder (Maildir: the
Maildir++ subfolder `.processed`; IMAP: `processed`), after they have been recorded; an
mbox file is never written, its bounces are remembered in the store by message key.
"""

from __future__ import annotations

import imaplib
import os
import re
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from newsletter.audience.bounces import MAX_SCAN
from newsletter.errors import NewsletterError

IMAP_PASSWORD_VAR = "NEWSLETTER_IMAP_PASSWORD"
PROCESSED = "processed"


class MailboxError(NewsletterError):
    """The mailbox cannot be opened or read (missing, not a mailbox, login refused, gone mid-run)."""


@dataclass
class Item:
    ref: str  # how the message is named in notes: new/<file>, UID 7, message 3
    raw: bytes  # its first MAX_SCAN bytes
    size: int
    handle: object  # the source's own handle: a Path, a UID


class Source:
    """A mailbox to scan. `moves`: recognised bounces leave it (else: remembered in the store)."""

    name: str = ""
    moves: bool = True

    def items(self) -> Iterator[Item]:
        raise NotImplementedError

    def mark_processed(self, items: list[Item]) -> list[str]:
        """Move recognised bounces out of the way; returns a note per one that could not be."""
        return []

    def close(self) -> None:
        """Release the mailbox."""


class MaildirSource(Source):
    def __init__(self, path: Path, name: str):
        self.root, self.name = path, name
        if not path.exists():
            raise MailboxError(f"{name}: no such Maildir folder or mbox file")
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise MailboxError(f"{name}: not a Maildir (it has no cur/ and new/ folders)")
        self._made = False

    def items(self) -> Iterator[Item]:
        for sub in ("new", "cur"):
            try:
                names = sorted(os.listdir(self.root / sub))
            except FileNotFoundError:
                raise MailboxError(f"{self.name}: the Maildir disappeared during the run") from None
            for fname in names:
                if fname.startswith("."):
                    continue
                path = self.root / sub / fname
                try:
                    with open(path, "rb") as f:
                        raw = f.read(MAX_SCAN)
                        size = os.fstat(f.fileno()).st_size
                except FileNotFoundError:
                    if not (self.root / sub).is_dir():
                        raise MailboxError(f"{self.name}: the Maildir disappeared during the run") from None
                    continue  # another mail client moved it meanwhile: it is theirs now
                except IsADirectoryError:
                    continue
                except OSError as e:
                    raise MailboxError(f"{self.name}: cannot read {sub}/{fname}: {e.strerror}") from None
                yield Item(f"{sub}/{fname}", raw, size, path)

    def mark_processed(self, items: list[Item]) -> list[str]:
        dest = self.root / f".{PROCESSED}"
        if not self._made:
            try:
                for sub in ("cur", "new", "tmp"):
                    (dest / sub).mkdir(parents=True, exist_ok=True)
                (dest / "maildirfolder").touch()  # Maildir++: marks a subfolder
            except OSError as e:
                raise MailboxError(f"{self.name}: cannot create the {PROCESSED} folder: {e.strerror}") from None
            self._made = True
        notes = []
        for item in items:
            path = Path(str(item.handle))
            try:  # same file name (flags included) under the same new/ or cur/: only its folder changes
                os.rename(path, dest / path.parent.name / path.name)
            except FileNotFoundError:
                notes.append(f"{self.name}:{item.ref}: gone before it could be moved to {PROCESSED}")
            except OSError as e:
                notes.append(f"{self.name}:{item.ref}: cannot be moved to {PROCESSED}: {e.strerror}")
        return notes


class MboxSource(Source):
    """Read-only: the file is opened for reading and never written or locked."""

    moves = False

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name
        try:
            self.file = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise MailboxError(f"{name}: no such Maildir folder or mbox file") from None
        except OSError as e:
            raise MailboxError(f"{name}: cannot read: {e.strerror}") from None
        head = self.file.read(5)
        self.file.seek(0)
        if head and head != b"From ":
            self.file.close()
            raise MailboxError(f"{name}: not an mbox file (it does not start with a 'From ' line)")

    def items(self) -> Iterator[Item]:
        n, buf, size, blank = 0, [], 0, True
        kept = 0
        try:
            for line in self.file:
                if blank and line.startswith(b"From "):
                    if n:
                        yield Item(f"message {n}", b"".join(buf), size, n)
                    n, buf, size, kept = n + 1, [], 0, 0
                    blank = False
                    continue
                size += len(line)
                if kept < MAX_SCAN:
                    buf.append(line)
                    kept += len(line)
                blank = line in (b"\n", b"\r\n")
        except OSError as e:
            raise MailboxError(f"{self.name}: cannot read: {e.strerror}") from None
        if n:
            yield Item(f"message {n}", b"".join(buf), size, n)

    def close(self) -> None:
        self.file.close()


class ImapSource(Source):
    """imaps://user@host[:port]/Folder, password from NEWSLETTER_IMAP_PASSWORD."""

    def __init__(self, url: str, *, timeout: float = 60):
        u = urllib.parse.urlsplit(url)
        user = urllib.parse.unquote(u.username or "")
        folder = urllib.parse.unquote(u.path.lstrip("/")) or "INBOX"
        try:
            port = u.port or 993
        except ValueError:
            raise MailboxError(f"{url}: the port is not a number") from None
        host = u.hostname or ""
        self.name = f"imaps://{user}@{host}" + (f":{u.port}" if u.port else "") + f"/{folder}"
        if not user or not host:
            raise MailboxError(f"{self.name}: give the user and host, e.g. imaps://bounces@mail.example.org/INBOX")
        if not folder.isascii() or any(c in folder for c in '"\\\r\n'):
            raise MailboxError(f"{self.name}: the folder name must be plain ASCII without quotes")
        password = os.environ.get(IMAP_PASSWORD_VAR, "")
        if not password:
            raise MailboxError(f"{self.name}: {IMAP_PASSWORD_VAR} is not set: export the mailbox's password in it")
        self.folder = folder
        try:
            self.imap = imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(), timeout=timeout)
        except ssl.SSLError as e:
            raise MailboxError(f"{self.name}: TLS failed: {e.reason or e}") from None
        except OSError as e:
            raise MailboxError(f"{self.name}: cannot connect: {e.strerror or e}") from None
        try:
            try:
                self.imap.login(user, password)
            except imaplib.IMAP4.error:
                raise MailboxError(f"{self.name}: login refused for {user}") from None
            typ, data = self.imap.select(_quoted(folder))
            if typ != "OK":
                raise MailboxError(f"{self.name}: cannot open folder {folder}: {_said(data)}")
            typ, data = self.imap.capability()
            self.caps = set(_said(data).upper().split())
        except (imaplib.IMAP4.abort, OSError) as e:
            raise MailboxError(f"{self.name}: connection lost: {e}") from None
        except BaseException:
            self.close()
            raise
        self._made = False

    def _check(self, typ: str, data: list[object], what: str) -> None:
        if typ != "OK":
            raise MailboxError(f"{self.name}: {what} refused: {_said(data)}")

    def items(self) -> Iterator[Item]:
        try:
            typ, data = self.imap.uid("SEARCH", None, "ALL")  # type: ignore[arg-type]
            self._check(typ, data, "SEARCH")
            uids = _said(data).split()
            for i in range(0, len(uids), 100):
                chunk = ",".join(uids[i:i + 100])
                typ, data = self.imap.uid("FETCH", chunk, f"(UID RFC822.SIZE BODY.PEEK[]<0.{MAX_SCAN}>)")
                self._check(typ, data, "FETCH")
                for el in data:
                    if not isinstance(el, tuple):
                        continue
                    meta = el[0].decode("ascii", "replace")
                    uid = re.search(r"UID (\d+)", meta)
                    size = re.search(r"RFC822\.SIZE (\d+)", meta)
                    if uid is None:
                        continue
                    raw = el[1] if isinstance(el[1], bytes) else b""
                    yield Item(f"UID {uid.group(1)}", raw, int(size.group(1)) if size else len(raw), uid.group(1))
        except (imaplib.IMAP4.abort, OSError) as e:
            raise MailboxError(f"{self.name}: connection lost or folder gone during the run: {e}") from None
        except imaplib.IMAP4.error as e:
            raise MailboxError(f"{self.name}: the server refused: {e}") from None

    def mark_processed(self, items: list[Item]) -> list[str]:
        if not items:
            return []
        uids = ",".join(str(i.handle) for i in items)
        try:
            if not self._made:
                typ, data = self.imap.create(PROCESSED)
                if typ != "OK" and "ALREADYEXISTS" not in _said(data).upper() and "EXISTS" not in _said(data).upper():
                    raise MailboxError(f"{self.name}: cannot create the {PROCESSED} folder: {_said(data)}")
                self._made = True
            if "MOVE" in self.caps:
                typ, data = self.imap.uid("MOVE", uids, PROCESSED)
                self._check(typ, data, "MOVE")
            else:
                typ, data = self.imap.uid("COPY", uids, PROCESSED)
                self._check(typ, data, "COPY")
                if "UIDPLUS" not in self.caps:  # a plain EXPUNGE would remove others' \Deleted mail too
                    return [f"{self.name}: the server has neither MOVE nor UIDPLUS: bounces were copied to "
                            f"{PROCESSED} but left in {self.folder} too"]
                typ, data = self.imap.uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)")
                self._check(typ, data, "STORE")
                typ, data = self.imap.uid("EXPUNGE", uids)
                self._check(typ, data, "EXPUNGE")
        except (imaplib.IMAP4.abort, OSError) as e:
            raise MailboxError(f"{self.name}: connection lost during the run: {e}") from None
        except imaplib.IMAP4.error as e:
            raise MailboxError(f"{self.name}: the server refused: {e}") from None
        return []

    def close(self) -> None:
        try:  # LOGOUT without CLOSE: CLOSE would expunge anyone's \Deleted messages in the folder
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _quoted(folder: str) -> str:
    return f'"{folder}"'


def _said(data: list[object]) -> str:
    return " ".join(x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in data if x)


def open_source(spec: str) -> Source:
    """A Maildir folder, an mbox file, or imaps://user@host/Folder."""
    if spec.startswith("imaps://"):
        return ImapSource(spec)
    if "://" in spec:
        raise MailboxError(f"{spec}: only imaps:// URLs are read (IMAP over TLS), or a Maildir folder or mbox file")
    path = Path(spec)
    if path.is_dir():
        return MaildirSource(path, spec)
    return MboxSource(path, spec)
