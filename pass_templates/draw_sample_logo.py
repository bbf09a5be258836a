"""Draw the sample store card's logo: a white coffee cup that reads on the card's green.

    python3 pass_templates/draw_sample_logo.py

writes storecard/logo.png, logo@2x.png and logo@3x.png (50, 100 and 150 px square). Apple
allots the logo up to 160x50 pt; Wallet puts the logo text right after the image, so the image
is only as wide as the cup (a transparent margin would push "Bean There" aside) and as high as
the slot. Plain Python (zlib, no imaging library): the same run always writes the same bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

POINTS = 50  # the drawing's size in points; shapes below are in points
COLOUR = (255, 255, 255)  # the card's foregroundColor
SAMPLES = 4  # per pixel and axis: anti-aliased edges
Shape = Callable[[float, float], bool]


def polygon(points: list[tuple[float, float]]) -> Shape:
    def inside(x: float, y: float) -> bool:
        hit = False
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                hit = not hit
        return hit

    return inside


def ring(cx: float, cy: float, outer: float, inner: float, min_x: float) -> Shape:
    return lambda x, y: x >= min_x and inner**2 <= (x - cx) ** 2 + (y - cy) ** 2 <= outer**2


def stroke(points: list[tuple[float, float]], width: float) -> Shape:
    def near(x: float, y: float) -> bool:
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            dx, dy = x2 - x1, y2 - y1
            t = max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy)))
            if math.hypot(x - x1 - t * dx, y - y1 - t * dy) <= width / 2:
                return True
        return False

    return near


def steam(x: float) -> Shape:
    wave = [(x + 1.6 * math.sin(step / 2.2), 15 - step * 0.5) for step in range(0, 21)]
    return stroke(wave, 2.2)


def cup_body() -> list[tuple[float, float]]:
    # Straight sides tapering a little, the bottom corners rounded.
    outline = [(9.0, 19.0), (35.0, 19.0), (32.5, 37.0)]
    outline += [
        (28.5 + 4 * math.cos(a), 37.0 + 4 * math.sin(a))
        for a in (math.radians(d) for d in range(0, 91, 15))
    ]
    outline += [
        (15.5 + 4 * math.cos(a), 37.0 + 4 * math.sin(a))
        for a in (math.radians(d) for d in range(90, 181, 15))
    ]
    outline += [(11.5, 37.0)]
    return outline


SHAPES: list[Shape] = [
    polygon(cup_body()),
    ring(35.0, 26.5, 6.5, 3.3, 33.5),  # the handle
    stroke([(6.0, 44.0), (41.0, 44.0)], 3.0),  # the saucer
    steam(15.0),
    steam(22.0),
    steam(29.0),
]


def draw(pixels: int) -> bytes:
    scale = POINTS / pixels
    rows = bytearray()
    for row in range(pixels):
        rows.append(0)  # PNG filter type: none
        for column in range(pixels):
            hits = 0
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    x = (column + (sx + 0.5) / SAMPLES) * scale
                    y = (row + (sy + 0.5) / SAMPLES) * scale
                    hits += any(shape(x, y) for shape in SHAPES)
            alpha = round(255 * hits / SAMPLES**2)
            rows.extend((*COLOUR, alpha) if alpha else (0, 0, 0, 0))
    return png(pixels, pixels, bytes(rows))


def png(width: int, height: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    folder = Path(__file__).resolve().parent / "storecard"
    for scale, name in ((1, "logo.png"), (2, "logo@2x.png"), (3, "logo@3x.png")):
        (folder / name).write_bytes(draw(POINTS * scale))
        print(f"wrote {folder / name}")
