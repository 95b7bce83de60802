"""The HTML report in a real browser: headless Chromium opens it from a file:// URL (no server) and its
screenshot must show the results table and the figures, checked on the pixels.

`make test` installs Chromium with apt-get when it is missing; where that is impossible this module is
skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_reports import make_run

from tfbench.reports.tables import build_table, render

BROWSER = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="Chromium is not installed (`make test` installs it with apt-get where it can)"
)

WIDTH, HEIGHT = 900, 2600
MARK = (255, 0, 255)  # the colour of the known figure
MARK_SIZE = (240, 120)  # its width and height in pixels


def _screenshot(page: Path, out: Path) -> np.ndarray:
    """Headless Chromium's screenshot of `page` at WIDTH x HEIGHT as an (H, W, 3) uint8 array."""
    assert BROWSER is not None
    args = [
        BROWSER,
        "--headless",
        "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--screenshot={out}",
        f"--window-size={WIDTH},{HEIGHT}",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    return np.asarray(Image.open(out).convert("RGB"))


def _text_lines(region: np.ndarray) -> int:
    """Runs of pixel rows holding dark (text) pixels: the lines of text in `region`."""
    dark_rows = (region.max(axis=2) < 110).sum(axis=1) > 2
    return int(np.count_nonzero(dark_rows[1:] & ~dark_rows[:-1]) + dark_rows[0])


def test_report_screenshot_shows_the_table_and_the_figures(tmp_path: Path) -> None:
    runs = [
        make_run(tmp_path / "run_a", "a_model", "lrs2", psnr=31.0, lse_d=7.5),
        make_run(tmp_path / "run_b", "b_model", "hdtf", psnr=28.0, lse_d=6.5),
    ]
    figures = tmp_path / "stability"
    figures.mkdir()
    Image.new("RGB", MARK_SIZE, MARK).save(figures / "known_figure.png")
    page = tmp_path / "report.html"
    page.write_text(render(build_table(runs, paper=True), "html", stability=figures), encoding="utf-8")

    shot = _screenshot(page, tmp_path / "shot.png")
    assert shot.shape == (HEIGHT, WIDTH, 3)
    assert shot.std() > 10 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 50  # not blank, not one colour
    # the known figure is drawn whole, at its own size, below the table
    ys, xs = np.nonzero(np.all(shot == MARK, axis=2))
    assert len(ys) == MARK_SIZE[0] * MARK_SIZE[1]
    assert (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == MARK_SIZE
    # above it: the title, the table's header and two rows, the notes (text lines of dark pixels)
    assert _text_lines(shot[: ys.min()]) >= 5
    # below it: the distributions (coloured points, axis labels) and the frame grid (12 grey 16 px frames
    # drawn about 110 px wide: ground truth, a_model and b_model at frames 0..3)
    below = shot[ys.max() + 1 :].astype(int)
    chroma = below.max(axis=2) - below.min(axis=2)
    assert np.count_nonzero(chroma > 50) > 10 and _text_lines(shot[ys.max() + 1 :]) >= 6
    grey = (chroma < 6) & (below.min(axis=2) > 40) & (below.max(axis=2) < 235)
    assert np.count_nonzero(grey) > 12 * 80 * 80
