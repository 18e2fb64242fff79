"""`newsletter screenshot`: four PNGs from real headless Chromium, as a reviewer sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, run


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

