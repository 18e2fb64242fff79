"""No module of the package changes another library's globals or `sys.modules` (issue 11 §2):
a successor must be able to read an import as an import and a library call as that library's.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "newsletter"


def _foreign_names(tree: ast.Module) -> set[str]:
    """Names a module binds to other packages' modules or objects (`import x`, `from x import y`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("newsletter"):
                    names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and not node.module.startswith("newsletter") and node.module != "__future__":
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def offences(path: Path, root: Path = REPO) -> list[str]:
    """Every place in one file that touches sys.modules or assigns onto a foreign module/object."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    foreign = _foreign_names(tree)
    found: list[str] = []
    where = path.relative_to(root)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "modules" and _root_name(node) == "sys":
            found.append(f"{where}:{node.lineno}: uses sys.modules")
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            if isinstance(target, ast.Attribute) and _root_name(target) in foreign:
                found.append(f"{where}:{node.lineno}: assigns {ast.unparse(target)} (another library's)")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
                and node.args and _root_name(node.args[0]) in foreign:
            found.append(f"{where}:{node.lineno}: {node.func.id} on {ast.unparse(node.args[0])} (another library's)")
    return found


def test_no_module_touches_sys_modules_or_other_libraries_globals() -> None:
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in offences(path)]
    assert found == []


def test_the_scan_catches_what_it_looks_for(tmp_path: Path) -> None:
    """The rule above can fail: each kind of offence it looks for is reported."""
    bad = tmp_path / "probe.py"
    bad.write_text(
        "import sys, types, functools\n"
        "import email_validator.validate_email as ev\n"
        "from premailer import premailer\n"
        "sys.modules['requests'] = types.ModuleType('requests')\n"
        "ev.validate_email_domain_name = functools.lru_cache()(ev.validate_email_domain_name)\n"
        "setattr(premailer, 'requests', None)\n"
        "mine = {}\n"
        "mine['x'] = 1\n",
        encoding="utf-8",
    )
    found = offences(bad, root=tmp_path)
    assert sorted(int(line.split(": ", 1)[0].rsplit(":", 1)[1]) for line in found) == [4, 5, 6]
