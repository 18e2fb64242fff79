"""`init`, `build` and `archive` create what they write with the umask's modes (issue 10, item
15): a copied archive must be readable by a web server running as another user."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import NEWSLETTER


def run_with_umask(args: list[str], cwd: Path, umask: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NEWSLETTER, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: os.umask(umask))


def modes(root: Path) -> dict[str, int]:
    """Every folder and file under root (root included) -> its permission bits."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return out


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_init_build_and_archive_respect_the_umask(tmp_path: Path, umask: int) -> None:
    r = run_with_umask(["init", "news", "--sender", "news@example.org"], tmp_path, umask)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "news"
    issue = next((root / "issues").glob("*.yaml"))
    for args in (["build", f"issues/{issue.name}"], ["archive"]):
        r = run_with_umask(args, root, umask)
        assert r.returncode == 0, r.stderr
    want_dir, want_file = 0o777 & ~umask, 0o666 & ~umask
    for folder in (root, root / "build" / issue.stem, root / "build" / "archive"):
        found = modes(folder)
        assert len(found) > 3, found
        wrong = {name: oct(mode) for name, mode in found.items()
                 if mode != (want_dir if (folder / name).is_dir() else want_file)}
        assert wrong == {}, folder
