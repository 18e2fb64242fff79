"""email.html size: ours beside the pipeline as it was before issue 15, in the same run.

For each example issue:
  before  the theme and premailer settings of `main` at the commit given (default b3d1221,
          before issue 15): git's copy of that templates/ folder, and premailer inlining
          everything (MJML's reset onto every cell) and deriving width/height/bgcolor/align
          attributes onto every styled element;
  mrml    MRML's output for today's theme, before any inlining;
  ours    today's email.html (`newsletter build`).

    python -m bench.email_size [COMMIT]

Goal (issue 15): ours at least 15 % smaller than before on both examples.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import REPO, example_issues

BEFORE = "b3d1221"
GOAL = 0.15


def _old_premailer(html: str) -> str:
    from premailer import Premailer

    from newsletter.deliver.placeholders import protect, restore

    return restore(Premailer(protect(html), allow_network=False, allow_loading_external_files=False,
                             keep_style_tags=False, strip_important=False, disable_validation=True,
                             align_floating_images=False, cssutils_logging_level=logging.CRITICAL,
                             remove_classes=False).transform())


def _old_templates(commit: str, into: Path) -> Path | None:
    """templates/ as it was at `commit`, or None without git history."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "templates"], capture_output=True,
                                 check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "templates"


def main(argv: list[str]) -> int:
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import mjml_to_html, render_issue, render_mjml
    from newsletter.config import load_config

    commit = argv[0] if argv else BEFORE
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
        config = load_config(root / "newsletter.toml")
        old = _old_templates(commit, root / "old")
        print(f"{'issue':<48} {'before':>9} {'mrml':>9} {'ours':>9}  change")
        for path in example_issues():
            issue = load_issue(path)
            ours = len(render_issue(issue, config).html.encode())
            mrml = len(mjml_to_html(render_mjml(issue, config)).encode())
            before = None
            if old is not None:
                old_config = dataclasses.replace(config, templates_dir=old)
                before = len(("<!doctype html>\n" + _old_premailer(mjml_to_html(render_mjml(issue, old_config))))
                             .encode())
            change = f"{(ours - before) / before:+.1%}" if before else "?"
            ok &= bool(before) and ours <= (1 - GOAL) * before
            print(f"{path.stem:<48} {before or '?':>9} {mrml:>9} {ours:>9}  {change}")
    print(f"goal: ours at least {GOAL:.0%} smaller than before ({commit}) on every example")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
