"""Generated data: subscriber lists of any size, written once under bench/.work/ and reused.

Rows look like real lists: mostly plain ASCII names, some accented ones (RFC 2047-encoded
in To:), an empty name now and then (the fallback greeting), English and French readers,
an extra merge column. Every address is valid and unique, so the expected number of
messages is exactly the number of rows.
"""

from __future__ import annotations

from pathlib import Path

HEADER = "email,name,language,city\n"
FIRST = ("Ada", "Marie", "Aleś", "Natalia", "José", "Zoë", "Oleg", "Amina", "Chen", "Ingrid", "Émile", "")
LAST = ("Lovelace", "Curie", "Bialiacki", "Estemirova", "Martí", "Novak", "Orlov", "Diallo", "Wei", "Berg")
CITIES = ("Paris", "Minsk", "London", "Geneva", "Dakar", "Vilnius")


def address(i: int) -> str:
    return f"reader{i:07d}@list{i % 97:02d}.example.org"


def subscribers_csv(folder: Path, n: int, *, start: int = 0) -> Path:
    """`n` subscribers numbered from `start`; generated once (about 1 s per million rows)."""
    path = folder / f"subscribers-{start}-{n}.csv"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        chunk: list[str] = []
        for i in range(start, start + n):
            first = FIRST[i % len(FIRST)]
            name = f"{first} {LAST[i % len(LAST)]}" if first else ""
            lang = "fr" if i % 5 == 0 else "en"
            chunk.append(f"{address(i)},{name},{lang},{CITIES[i % len(CITIES)]}\n")
            if len(chunk) >= 50_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    tmp.replace(path)
    return path
