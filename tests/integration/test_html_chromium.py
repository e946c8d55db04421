"""report.html in a real browser: headless Chromium loads the page and the flame graph shows.

The screenshot is decoded here (a PNG reader in pure Python, no imaging library) and checked
for what a person would see: a page that is not blank, and a flame graph, that is, a large
area of the graph's red and orange frame colours in many distinct shades.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import chromium_path
from helpers.paths import FIXTURES

from bpfrun.report.writers import write_outputs

RESULTS = FIXTURES / "results"
WIDTH, HEIGHT = 1200, 2000
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

DESCRIPTION = ("Where *victim* waits; see [the docs](https://docs.kernel.org/).\n\n"
               "# Not a title\n\n<img src=x onerror=\"document.title='pwned'\">")

pytestmark = pytest.mark.chromium


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB triples) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos: pos + 4])
        kind, body = data[pos + 4: pos + 8], data[pos + 8: pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1: start + 1 + stride])
        for x in range(stride):  # PNG filters: 1 sub, 2 up, 3 average, 4 Paeth
            left = line[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + prev[x]) & 255
            elif kind == 3:
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
            elif kind == 4:
                up, corner = prev[x], prev[x - bpp] if x >= bpp else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[x] = (line[x] + pred) & 255
        prev = line
        rgb = line if bpp == 3 else bytearray(b for i, b in enumerate(line) if i % 4 != 3)
        rows.append(bytes(rgb))
    return width, height, rows


def is_flame(r: int, g: int, b: int) -> bool:
    """flamegraph.py's frame colours: red (user) and orange (kernel) shades, not the page's."""
    return r >= 190 and 50 <= g <= 160 and b <= 135 and r - g >= 60


def chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess[str]:
    binary = chromium_path()
    assert binary is not None  # the chromium marker skipped (or failed) the test otherwise
    env = dict(os.environ, HOME=str(user_dir))  # nothing lands in the real home
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={user_dir / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of a run whose one step has a stack aggregation, so the graph is on screen."""
    result: dict[str, Any] = json.loads((RESULTS / "runq_fired.json").read_text())
    result["steps"] = [s for s in result["steps"] if s["id"] == "offcpu"]
    result["runbook"]["description"] = DESCRIPTION
    out = tmp_path_factory.mktemp("report")
    return write_outputs(out, result, {"offcpu": "int x;\n"}, {}, {"html"})["html"]


def test_chromium_draws_the_flame_graph(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    done = chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri(),
                    user_dir=tmp_path)
    assert shot.is_file(), done.stderr[-2000:]
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    pixels = [row[i: i + 3] for row in rows for i in range(0, len(row), 3)]
    assert len(set(pixels)) > 200, "the screenshot is (nearly) blank"
    flame = [p for p in pixels if is_flame(*p)]
    # The graph is ~1150 px wide and 16 frames tall: tens of thousands of frame pixels.
    assert len(flame) > 30_000, f"only {len(flame)} flame-coloured pixels: no flame graph"
    assert len(set(flame)) > 50, "flame frames are coloured by name: many shades expected"
    flame_rows = [y for y, row in enumerate(rows)
                  if sum(is_flame(*row[i: i + 3]) for i in range(0, len(row), 3)) > 400]
    assert len(flame_rows) > 100  # wide frames stacked on many rows, not one red line


def test_chromium_loads_the_page_with_the_svg_inline(page: Path, tmp_path: Path) -> None:
    done = chromium("--dump-dom", page.as_uri(), user_dir=tmp_path)
    dom = done.stdout
    assert "<svg" in dom and "</svg>" in dom, done.stderr[-2000:]
    assert "fusion_worker_main" in dom and "Where the delayed task waits" in dom
    assert dom.count("<svg") == 1


def test_chromium_shows_the_runbook_markdown_inert(page: Path, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", page.as_uri(), user_dir=tmp_path).stdout
    assert "Where <em>victim</em> waits" in dom
    assert '<a href="https://docs.kernel.org/">the docs</a>' in dom
    assert "<h2>Not a title</h2>" in dom and dom.count("<h1") == 1
    assert "&lt;img src=x onerror=" in dom and "<img" not in dom and "pwned</title>" not in dom
