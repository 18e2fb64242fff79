"""The reference tools, found or installed: the official `mjml` CLI (npm) and Postfix's
`smtp-sink` / `smtp-source` (Debian `postfix`).

`bench/run` installs what is missing. Under the smoke test outside CI a missing tool skips
that part (with the reason); in CI it is an error, so the smoke test cannot quietly rot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench.harness import WORK, BenchError, Skip, in_ci

#: The reference compiler, pinned by major version so later runs compare like with like.
MJML_SPEC = "mjml@^5"
#: Deque's accessibility engine, injected into Chromium by tests/test_a11y_browser.py.
AXE_SPEC = "axe-core@^4"
POSTFIX_DIRS = ("/usr/sbin", "/usr/lib/postfix", "/usr/libexec/postfix", "/usr/bin")


def _missing(what: str, how: str, install: bool) -> None:
    if install or in_ci():
        raise BenchError(f"{what} is not installed and could not be installed ({how})")
    raise Skip(f"{what} is not installed ({how}); skipped outside CI")


def mjml_cli(work: Path = WORK, *, install: bool = True) -> list[str]:
    """Command line of the npm `mjml` CLI, installed into bench/.work/node_modules if needed."""
    main = work / "node_modules" / "mjml" / "bin" / "mjml"
    node = shutil.which("node")
    if not main.exists():
        npm = shutil.which("npm")
        if npm is None or node is None:
            _missing("npm mjml", "needs node and npm: apt-get install -y npm", install=install)
        work.mkdir(parents=True, exist_ok=True)
        pkg = work / "package.json"
        if not pkg.exists():
            pkg.write_text(json.dumps({"name": "newsletter-bench-tools", "private": True}, indent=2) + "\n")
        proc = subprocess.run([str(npm), "install", "--no-audit", "--no-fund", "--loglevel=error", MJML_SPEC],
                              cwd=work, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not main.exists():
            raise BenchError(f"npm install {MJML_SPEC} failed:\n{proc.stderr[-1500:]}")
    assert node is not None
    return [node, str(main)]


def _npm_install(spec: str, work: Path, wanted: Path, install: bool) -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        _missing(f"npm {spec}", "needs node and npm: apt-get install -y npm", install=install)
    if not install:
        _missing(f"npm {spec}", f"npm install {spec} in {work}", install=False)
    work.mkdir(parents=True, exist_ok=True)
    pkg = work / "package.json"
    if not pkg.exists():
        pkg.write_text(json.dumps({"name": "newsletter-bench-tools", "private": True}, indent=2) + "\n")
    proc = subprocess.run([str(npm), "install", "--no-audit", "--no-fund", "--loglevel=error", spec],
                          cwd=work, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not wanted.exists():
        raise BenchError(f"npm install {spec} failed:\n{proc.stderr[-1500:]}")


def axe_core(work: Path = WORK, *, install: bool = True) -> Path:
    """Path of axe-core's axe.min.js, installed into bench/.work/node_modules if needed."""
    script = work / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        _npm_install(AXE_SPEC, work, script, install)
    return script


def mjml_version(work: Path = WORK) -> str:
    pkg = work / "node_modules" / "mjml" / "package.json"
    try:
        return json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def _find(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in POSTFIX_DIRS:
        p = Path(d) / name
        if p.exists() and os.access(p, os.X_OK):
            return str(p)
    return None


def postfix_tools(*, install: bool = True) -> tuple[str, str]:
    """Paths of smtp-sink and smtp-source; `apt-get install postfix` first if allowed and needed."""
    sink, source = _find("smtp-sink"), _find("smtp-source")
    if (sink is None or source is None) and install and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # "No configuration": install the binaries without setting up a running mail server.
        subprocess.run(["debconf-set-selections"], input="postfix postfix/main_mailer_type select No configuration\n",
                       text=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postfix"], env=env,
                       capture_output=True, timeout=900)
        sink, source = _find("smtp-sink"), _find("smtp-source")
    if sink is None or source is None:
        _missing("Postfix smtp-sink/smtp-source", "apt-get install -y postfix", install=install)
    assert sink is not None and source is not None
    return sink, source
