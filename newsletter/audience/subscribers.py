"""The subscriber CSV: read as a stream, validated row by row, never rewritten.

The file stays the user's: the tool only reads it. A list of a million rows is never held
in memory: rows are yielded one at a time, and duplicates are found with a flat table of
8-byte fingerprints of the normalised addresses (16-24 bytes per reader, not the row).

Format: a header row with an `email` column (required), optionally `name` and `language`;
any other column becomes a merge field (`city` -> `{{ city }}`). A UTF-8 BOM, `;` or tab
separators and stray whitespace around cells are all accepted.
"""

from __future__ import annotations

import codecs
import csv
import functools
import itertools
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from email_validator import EmailNotValidError, validate_email

from newsletter.deliver.placeholders import STANDARD_FIELDS
from newsletter.errors import InputError, Problem
from newsletter.store.db import email_key

#: Header names accepted for the address column (compared case-insensitively).
EMAIL_HEADERS = ("email", "e-mail", "email address", "e-mail address", "mail")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: Addresses whose normalised form is provably the address with its domain lower-cased, so
#: whose key is the raw text lower-cased: ASCII dot-atom local part, letters/digits/dots/
#: hyphens domain. (email-validator changes such an address in no other way: no quoting to
#: undo, no Unicode to normalise, IDNA leaves ASCII labels as they are.)
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9.\-]+")
CHUNK = 1000  # rows per `skip` question
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # C0, DEL, C1 (NEL...), line/paragraph separators

#: An unquoted ASCII local part (RFC 5322 dot-atom): email-validator returns it unchanged.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
#: RFC 2142 role mailboxes, which email-validator lower-cases: left to it in full.
_ROLE_MAILBOXES = frozenset({"info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster",
                             "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp"})
_MAX_ADDRESS = 254  # RFC 5321 path limit, as email-validator counts it

@dataclass(frozen=True)
class Subscriber:
    """One valid, first-seen reader. `email` is normalised (domain lower-cased, IDN as ASCII)."""

    email: str
    name: str
    language: str
    fields: dict[str, str]
    line: int

    @property
    def key(self) -> str:
        return email_key(self.email)


@dataclass(frozen=True)
class Rejected:
    """A row that is not sent to: invalid address or a duplicate of an earlier row."""

    line: int
    email: str
    reason: str
    duplicate: bool = False


@dataclass(frozen=True)
class Done:
    """A valid, first-seen reader whom `skip` said already has the issue (not validated again)."""

    line: int
    email: str


@dataclass
class ReadStats:
    """Counts kept while streaming, so a caller can report them without a second pass."""

    rows: int = 0
    valid: int = 0
    invalid: list[Rejected] = field(default_factory=list)
    duplicates: list[Rejected] = field(default_factory=list)
    max_kept: int = 1000  # keep at most this many rejected rows for reports (counts stay exact)
    invalid_count: int = 0
    duplicate_count: int = 0
    done: int = 0  # of `valid`: yielded as Done (already sent, not validated again)
    bytes_read: int = 0  # of the file so far (a progress bar's measure when the rows are not counted)

    def add(self, rejected: Rejected) -> None:
        if rejected.duplicate:
            self.duplicate_count += 1
            if len(self.duplicates) < self.max_kept:
                self.duplicates.append(rejected)
        else:
            self.invalid_count += 1
            if len(self.invalid) < self.max_kept:
                self.invalid.append(rejected)


def normalise_address(address: str) -> str:
    """Validate one address (syntax only, no DNS) and return its normalised form.

    Raises ValueError with email-validator's explanation. Addresses that would need
    SMTPUTF8 (non-ASCII before the @) are refused: most relays cannot carry them.

    email-validator checks every address's domain character by character (IDNA / UTS-46),
    75% of the time of reading a list, though a list has few distinct domains. So the common
    shape (plain ASCII local part) takes the domain's answer from `_domain_forms`, memoised
    per domain; anything else, and any domain it refuses, goes through email-validator in
    full, so the result and the error wording are always email-validator's own.
    """
    text = address.strip()
    local, at, domain = text.rpartition("@")
    if at and _DOT_ATOM.fullmatch(local) and local.lower() not in _ROLE_MAILBOXES:
        forms = _domain_forms(domain)
        # email-validator's length rule, on each form it checks: as given, normalised, ASCII
        if forms is not None and all(len(local) + 1 + len(d.encode()) <= _MAX_ADDRESS for d in (domain, *forms)):
            return f"{local}@{forms[0]}"
    return _validate(text)


def _validate(address: str) -> str:
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        raise ValueError(str(e)) from None
    return result.ascii_email or result.normalized


@functools.lru_cache(maxsize=4096)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """The ASCII and the normalised forms email-validator gives `domain`, or None if it refuses
    it (the caller then validates the whole address to get email-validator's own message).
    A domain's answer does not depend on the local part, so one plain local part stands in."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return result.ascii_domain, result.domain


def _fingerprint(key: str) -> int:
    """64 bits of the key: Python's own string hash (SipHash, keyed per process), which is
    all a fingerprint that lives for one read needs; a tenth of the cost of blake2b here."""
    return hash(key) & 0xFFFF_FFFF_FFFF_FFFF


class _Seen:
    """The fingerprints seen so far, 8 bytes each in one flat array (open addressing, linear
    probing, at most half full): 16 MiB for a million readers, where a set of Python ints
    took ~75 MiB (bench memory: the dry-run peak grew with the list)."""

    __slots__ = ("_slots", "_mask", "_count")

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._slots = array("Q", [0]) * capacity
        self._mask = capacity - 1
        self._count = 0

    def add(self, fp: int) -> bool:
        """Remember `fp`; False if it was already there."""
        fp |= 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        i = fp & mask
        while (v := slots[i]) != 0:
            if v == fp:
                return False
            i = (i + 1) & mask
        slots[i] = fp
        self._count += 1
        if self._count * 2 > mask:
            old = self._slots
            self._slots = slots = array("Q", [0]) * (2 * len(old))
            self._mask = mask = len(slots) - 1
            for v in old:
                if v:
                    i = v & mask
                    while slots[i]:
                        i = (i + 1) & mask
                    slots[i] = v
        return True


def _clean(value: str | None) -> str:
    """Trim, and turn newlines/control characters (which could forge headers) into spaces."""
    if not value:
        return ""
    return _CONTROL.sub(" ", value).strip()


def sniff_delimiter(header_line: str) -> str:
    """`,`, `;` or tab: whichever the header row uses most (spreadsheets export all three)."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_subscribers(path: Path, *, default_language: str = "en", stats: ReadStats | None = None,
                     display: str | None = None, skip: Callable[[list[str]], set[str]] | None = None,
                     ) -> Iterator[Subscriber | Rejected | Done]:
    """Yield each data row as a Subscriber (valid, first seen) or a Rejected (invalid, duplicate).

    `skip` (the ledger's "which of these keys are already `sent`?") lets a resumed send or
    `status` pass over the readers who already have the issue without validating their
    address again (email-validator is most of the cost of a row): it is asked once per
    CHUNK rows with their plain raw keys, and a row whose key it returns is yielded as
    `Done`. Only plain ASCII addresses take that path (see _PLAIN), for which the key
    validation would give is provably the raw key lower-cased; everything else, and every
    row `skip` does not return, is validated as usual. Duplicates are found the same way on
    both paths.

    Problems with the file as a whole (missing, unreadable, no `email` column) raise
    InputError before anything is yielded. Line numbers are the file's physical lines,
    so a reader can jump to them in an editor.
    """
    name = display or str(path)
    stats = stats if stats is not None else ReadStats()
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InputError([Problem(name, None, "", "subscriber file not found")]) from None
    except OSError as e:
        raise InputError([Problem(name, None, "", f"cannot read subscriber file: {e.strerror}")]) from None
    with f:
        reader = csv_reader(f, name, stats)
        try:
            header = next(reader, None)
        except csv.Error as e:
            raise InputError([Problem(name, 1, "", f"malformed CSV header: {e}")]) from None
        if header is None or not any(h.strip() for h in header):
            raise InputError([Problem(name, 1, "", "empty file: expected a header row with an 'email' column")])
        columns = _columns(name, header)
        email_col = columns.index("email")
        name_col = columns.index("name") if "name" in columns else None
        lang_col = columns.index("language") if "language" in columns else None
        extra = [(i, c) for i, c in enumerate(columns) if c and c not in ("email", "name", "language")]
        seen = _Seen()
        done: set[str] = set()
        for start, row, error in _rows(reader, email_col, skip, done):
            if error is not None:
                stats.rows += 1
                rejected = Rejected(start, "", f"malformed CSV row: {error}")
                stats.add(rejected)
                yield rejected
                continue
            raw = row[email_col].strip() if email_col < len(row) else ""
            if not raw and not any(cell.strip() for cell in row):
                continue  # blank lines are not subscribers
            stats.rows += 1
            if not raw:
                rejected = Rejected(start, "", "no email address")
                stats.add(rejected)
                yield rejected
                continue
            key = raw.lower()
            if key in done and raw.isascii():  # `done` holds plain keys only; ASCII: raw plain as its key
                # already `sent` (so valid when it was sent); normalised form = domain lower-cased
                at = raw.rindex("@")
                address = raw[:at] + raw[at:].lower()
                if not seen.add(_fingerprint(key)):
                    rejected = Rejected(start, address, "duplicate of an earlier row", duplicate=True)
                    stats.add(rejected)
                    yield rejected
                    continue
                stats.valid += 1
                stats.done += 1
                yield Done(start, address)
                continue
            try:
                address = normalise_address(raw)
            except ValueError as e:
                rejected = Rejected(start, raw, str(e))
                stats.add(rejected)
                yield rejected
                continue
            if not seen.add(_fingerprint(email_key(address))):
                rejected = Rejected(start, address, "duplicate of an earlier row", duplicate=True)
                stats.add(rejected)
                yield rejected
                continue
            stats.valid += 1
            fields = {c: _clean(row[i]) if i < len(row) else "" for i, c in extra}
            language = _clean(row[lang_col]) if lang_col is not None and lang_col < len(row) else ""
            yield Subscriber(
                email=address,
                name=_clean(row[name_col]) if name_col is not None and name_col < len(row) else "",
                language=(language or default_language).lower(),
                fields=fields,
                line=start,
            )


def columns_of(path: Path, *, display: str | None = None) -> list[str]:
    """The merge-field names of the list's header row (`email`, `name`, `language` included),
    reading only the first line: what `check` and a send's preflight compare an issue's
    placeholders against. Raises InputError like read_subscribers for a bad header."""
    name = display or str(path)
    try:
        with path.open("rb") as f:
            first = next(_decoded_lines(f, name), "")
    except FileNotFoundError:
        raise InputError([Problem(name, None, "", "subscriber file not found")]) from None
    except OSError as e:
        raise InputError([Problem(name, None, "", f"cannot read subscriber file: {e.strerror}")]) from None
    try:
        header = next(csv.reader([first], delimiter=sniff_delimiter(first), skipinitialspace=True), None)
    except csv.Error as e:
        raise InputError([Problem(name, 1, "", f"malformed CSV header: {e}")]) from None
    if header is None or not any(h.strip() for h in header):
        raise InputError([Problem(name, 1, "", "empty file: expected a header row with an 'email' column")])
    return [c for c in _columns(name, header) if c]


def numbered_rows(reader: Any) -> Iterator[tuple[int, list[str], str | None]]:
    """(first physical line, cells, csv error) per row of a `csv.reader`: a quoted cell may span
    lines, so a row's own line is where it starts, and a malformed row is reported, not fatal.
    The subscriber CSV and the suppression-import CSV both read rows through it."""
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            line = reader.line_num
            yield start, [], str(e)
        else:
            line = reader.line_num
            yield start, row, None


def _rows(reader: Any, email_col: int, skip: Callable[[list[str]], set[str]] | None,
          done: set[str]) -> Iterator[tuple[int, list[str], str | None]]:
    """numbered_rows(reader); with `skip`, read CHUNK rows at a time and, before a chunk is
    yielded, refill `done` with skip(its plain raw keys)."""
    chunk: list[tuple[int, list[str], str | None]] = []
    for item in numbered_rows(reader):
        chunk.append(item)
        if skip is None:
            yield chunk.pop()
        elif len(chunk) >= CHUNK:
            _refill(done, skip, chunk, email_col)
            yield from chunk
            chunk = []
    if chunk:
        if skip is not None:
            _refill(done, skip, chunk, email_col)
        yield from chunk


def _refill(done: set[str], skip: Callable[[list[str]], set[str]],
            chunk: list[tuple[int, list[str], str | None]], email_col: int) -> None:
    keys = [row[email_col].strip().lower() for _, row, _ in chunk if email_col < len(row)]
    done.clear()
    done.update(skip([k for k in keys if k and _PLAIN.fullmatch(k)]))


def csv_reader(f: BinaryIO, name: str, stats: ReadStats | None = None) -> Any:
    """A `csv.reader` over `f` decoded line by line (an encoding error is an InputError naming
    its own line; a BOM is dropped), with the delimiter sniffed from the header line."""
    lines = _decoded_lines(f, name, stats)
    first = next(lines, "")
    return csv.reader(itertools.chain([first], lines), delimiter=sniff_delimiter(first), skipinitialspace=True)


def _decoded_lines(f: BinaryIO, name: str, stats: ReadStats | None = None) -> Iterator[str]:
    """Lines decoded one by one, so an encoding error names its own line; a BOM is dropped."""
    for n, raw in enumerate(f, 1):
        if stats is not None:
            stats.bytes_read += len(raw)
        if n == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError([Problem(name, n, "", "not UTF-8 text (save the CSV as UTF-8)")]) from None


def _columns(name: str, header: list[str]) -> list[str]:
    """Header cells as merge-field names: lower-cased, spaces and dashes as `_`."""
    out: list[str] = []
    problems: list[Problem] = []
    for i, cell in enumerate(header):
        label = cell.strip()
        if label.lower() in EMAIL_HEADERS:
            out.append("email")
            continue
        key = re.sub(r"[\s\-.]+", "_", label.lower())
        if not key:
            out.append("")
            continue
        if not _FIELD_NAME.fullmatch(key):
            problems.append(Problem(name, 1, f"column {i + 1}",
                                    f"{label!r} cannot be a merge field: use letters, digits and _"))
            out.append("")
            continue
        if key in out:
            problems.append(Problem(name, 1, f"column {i + 1}", f"column {label!r} appears twice"))
        if key == "unsubscribe_url":
            problems.append(Problem(name, 1, f"column {i + 1}", "'unsubscribe_url' is set by the tool, not the CSV"))
        out.append(key)
    if "email" not in out:
        problems.append(Problem(name, 1, "", "no 'email' column in the header row "
                                f"(found: {', '.join(h.strip() for h in header) or 'nothing'})"))
    elif out.count("email") > 1:
        problems.append(Problem(name, 1, "", "more than one email column"))
    if problems:
        raise InputError(problems)
    return out


__all__ = ["Subscriber", "Rejected", "Done", "ReadStats", "read_subscribers", "columns_of", "normalise_address",
           "STANDARD_FIELDS"]
