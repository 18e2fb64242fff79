"""`newsletter screenshot`: four PNGs from real headless Chromium, as a reviewer sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, REPO, run


@pytest.mark.browser
def test_screenshot_writes_four_pngs_light_and_dark(project: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    from PIL import Image, ImageChops, ImageStat

    issue = sorted((project / "issues").glob("*.yaml"))[0]
    r = run(["screenshot", f"issues/{issue.name}"], cwd=project)
    assert r.returncode == 0, r.stderr
    shots = project / "build" / issue.stem / "shots"
    assert r.stdout.split() == [f"build/{issue.stem}/shots/{n}.png"
                                for n in ("desktop", "mobile", "desktop-dark", "mobile-dark")]
    images = {n: Image.open(shots / f"{n}.png").convert("RGB")
              for n in ("desktop", "mobile", "desktop-dark", "mobile-dark")}
    for name, im in images.items():
        assert im.width == (600 if name.startswith("desktop") else 375), name
        assert im.height > 800, name  # full page, not just the viewport
        colours = im.getcolors(maxcolors=1_000_000) or []
        assert len(colours) > 50, f"{name} looks blank"
    for width in ("desktop", "mobile"):
        light, dark = images[width], images[f"{width}-dark"]
        assert ImageChops.difference(light, dark).getbbox() is not None
        # dark mode is darker overall, not merely different
        assert sum(ImageStat.Stat(dark).mean) < sum(ImageStat.Stat(light).mean) * 0.7
    assert not list(shots.glob(".*.tmp"))


@pytest.mark.browser
def test_screenshot_shoots_each_edition_in_its_folder(project: Path) -> None:
    """An issue with a French edition: its four shots, and the edition's four in build/<issue>/fr/shots/,
    which show the French text (the pictures differ from the issue's)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    import shutil

    from PIL import Image, ImageChops

    slug = "2011-11-28-free-ales-bialiatski"
    shutil.copy(REPO / "tests" / "fixtures" / "i18n" / f"{slug}.fr.yaml", project / "issues")
    r = run(["screenshot", f"issues/{slug}.yaml"], cwd=project)
    assert r.returncode == 0, r.stderr
    names = ("desktop", "mobile", "desktop-dark", "mobile-dark")
    assert r.stdout.split() == [f"build/{slug}/{d}shots/{n}.png" for d in ("", "fr/") for n in names]
    for name in names:
        issue = Image.open(project / "build" / slug / "shots" / f"{name}.png").convert("RGB")
        french = Image.open(project / "build" / slug / "fr" / "shots" / f"{name}.png").convert("RGB")
        assert french.width == issue.width
        assert issue.size != french.size or ImageChops.difference(issue, french).getbbox() is not None, name


def test_without_playwright_the_error_names_both_ways_to_install_it(project: Path, tmp_path: Path) -> None:
    """A checkout installed with `pip install -e .` has no Playwright: the one line says how to
    add the extra from a package index and from a checkout. (Playwright is hidden from this one
    process by a stand-in package first on its PYTHONPATH that cannot be imported.)"""
    import os

    hidden = tmp_path / "hide" / "playwright"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'playwright'\")\n")
    issue = next((project / "issues").glob("*.yaml"))
    r = run(["screenshot", f"issues/{issue.name}"], cwd=project,
            env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "hide"), str(REPO)])})
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "screenshots need Playwright, the `screenshot` extra: pip install 'newsletter[screenshot]', "
        "or in a checkout of newsletter: pip install -e '.[screenshot]'"]
    assert not (project / "build").exists()
