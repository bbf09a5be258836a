"""PNG checks for the images of a pass package, without an imaging library.

Sizes and the images each style shows come from Apple's Wallet Developer Guide, "Pass Design
and Creation" (Table 4-1 and "Images Fill Their Allotted Space") and, for the personalization
logo, "Rewards Enrollment"; the poster images and their sizes from apple/pass-builder
(PassPackage's image descriptors) and the images Wallet itself loads from a pass bundle.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

IMAGE_NAMES = (
    "icon",
    "logo",
    "strip",
    "thumbnail",
    "background",
    "footer",
    "personalizationLogo",
    # Poster layouts: poster event tickets (iOS 18) and poster generic passes (iOS 27).
    "artwork",
    "primaryLogo",
    "secondaryLogo",
    # The venue map in a poster event ticket's event guide.
    "venueMap",
)
# `xx.lproj/name@2x.png`; the language part is checked by the package validator.
IMAGE_PATH = re.compile(
    r"(?:(?P<lang>[^/]+)\.lproj/)?"
    r"(?P<name>" + "|".join(IMAGE_NAMES) + r")"
    r"(?:@(?P<scale>[23])x)?\.png"
)

# Table 4-1. Wallet draws nothing else; an extra image is ignored, not refused.
SUPPORTED_IMAGES: dict[str, frozenset[str]] = {
    "boardingPass": frozenset({"icon", "logo", "footer"}),
    "coupon": frozenset({"icon", "logo", "strip"}),
    "eventTicket": frozenset({"icon", "logo", "strip", "background", "thumbnail"}),
    "generic": frozenset({"icon", "logo", "thumbnail"}),
    "storeCard": frozenset({"icon", "logo", "strip"}),
    # Shown beside the style above on devices that can show the poster. Wallet draws the
    # artwork (or the background) behind a poster and the primary logo instead of the logo.
    "posterEventTicket": frozenset(
        {"icon", "artwork", "background", "primaryLogo", "secondaryLogo", "venueMap"}
    ),
    "posterGeneric": frozenset(
        {"icon", "logo", "artwork", "background", "primaryLogo", "secondaryLogo"}
    ),
}

# Allotted space in points. "max": Wallet scales a bigger image down (and crops it when the
# aspect ratio differs); a smaller one is fine. The strip has a fixed slot instead.
MAX_POINTS: dict[str, tuple[int, int]] = {
    "logo": (160, 50),
    "thumbnail": (90, 90),
    "background": (180, 220),
    "footer": (286, 15),
    "personalizationLogo": (150, 40),
    "artwork": (358, 448),
    "primaryLogo": (126, 30),
    "secondaryLogo": (135, 12),
}
# Behind a poster the background fills the card, instead of the blurred 180x220 pt of an event
# ticket. The venue map has no documented size.
POSTER_BACKGROUND_POINTS = (345, 505)
# The guide asks for a 29 pt icon; newer devices show it at up to 38 pt, so both ends pass.
ICON_POINTS = (29, 38)
STRIP_WIDTH = 375
# "375 x 98 points for event tickets, 375 x 144 points for gift cards and coupons, and
# 375 x 123 in all other cases" (gift cards are store cards).
STRIP_HEIGHTS = {"eventTicket": 98, "coupon": 144, "storeCard": 144}
DEFAULT_STRIP_HEIGHT = 123

Severity = Literal["error", "warning"]


class InvalidPNG(ValueError):
    """The bytes are not a usable PNG file."""


@dataclass(frozen=True)
class Finding:
    """One image problem; the package validator turns it into a Problem."""

    severity: Severity
    path: str
    message: str
    fix: str


@dataclass(frozen=True)
class ImageRef:
    """What a package path says about an image: which one, at what scale, in which language."""

    path: str
    name: str
    scale: int
    lang: str | None


def parse_image_path(path: str) -> ImageRef | None:
    """The image a package path names, or None when it is not a known image file."""
    match = IMAGE_PATH.fullmatch(path)
    if not match:
        return None
    return ImageRef(
        path=path,
        name=match["name"],
        scale=int(match["scale"] or 1),
        lang=match["lang"],
    )


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the PNG header; InvalidPNG for anything else or truncated data."""
    if len(data) < len(PNG_SIGNATURE) or not data.startswith(PNG_SIGNATURE):
        raise InvalidPNG(_not_png_reason(data))
    header = data[8:33]
    if len(header) < 25:
        raise InvalidPNG("the PNG file is truncated before the end of its header (IHDR)")
    length, kind = struct.unpack(">I4s", header[:8])
    if kind == b"CgBI":
        # Xcode's "Compress PNG Files" writes this variant; it is not a standard PNG.
        raise InvalidPNG("the file is an Xcode-optimised (CgBI) PNG, not a standard PNG")
    if kind != b"IHDR" or length != 13:
        raise InvalidPNG("the PNG file does not start with an IHDR header chunk")
    (crc,) = struct.unpack(">I", header[21:25])
    if zlib.crc32(header[4:21]) != crc:
        raise InvalidPNG("the PNG header is corrupted (its checksum does not match)")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", header[8:21]
    )
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise InvalidPNG(f"the PNG header gives an impossible size {width}x{height}")
    if depth not in _DEPTHS.get(color, ()) or compression or filtering or interlace > 1:
        raise InvalidPNG("the PNG header uses an unknown colour type, bit depth or method")
    return width, height


# Allowed bit depths per colour type (PNG specification, table 11.1).
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def check_png(data: bytes) -> tuple[int, int]:
    """Like png_size, but walks every chunk so that a cut-off or damaged file is caught too."""
    size = png_size(data)
    color_type = data[25]
    position = len(PNG_SIGNATURE)
    seen: set[bytes] = set()
    while True:
        if position + 8 > len(data):
            raise InvalidPNG("the PNG file is truncated (it ends before its IEND chunk)")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 8 + length + 4
        if end > len(data):
            raise InvalidPNG(f"the PNG file is truncated inside its {_chunk_name(kind)} chunk")
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[position + 4 : end - 4]) != crc:
            raise InvalidPNG(f"the PNG {_chunk_name(kind)} chunk is corrupted (bad checksum)")
        seen.add(kind)
        position = end
        if kind == b"IEND":
            break
    if b"IDAT" not in seen:
        raise InvalidPNG("the PNG file has no image data (no IDAT chunk)")
    if color_type == 3 and b"PLTE" not in seen:
        raise InvalidPNG("the PNG file is indexed-colour but has no palette (PLTE chunk)")
    return size


def _chunk_name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isalpha() else repr(kind)


def _not_png_reason(data: bytes) -> str:
    if not data:
        return "the file is empty"
    for magic, kind in _OTHER_FORMATS:
        if data.startswith(magic):
            return f"the file is a {kind} image, not a PNG"
    if PNG_SIGNATURE.startswith(data):
        return "the file is truncated inside the PNG signature"
    return "the file does not start with the PNG signature"


_OTHER_FORMATS = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"RIFF", "WebP (or other RIFF)"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
)


def check_images(
    files: Mapping[str, bytes], style: str | None, posters: Collection[str] = ()
) -> list[Finding]:
    """Every image problem in a package: not a PNG, missing icon, style, sizes, scale pairs.

    `style` is the pass style key from pass.json, or None when it is unknown (then the checks
    that depend on it are skipped rather than guessed); `posters` the poster layouts newer
    devices show instead (posterEventTicket, posterGeneric), whose images are used too.
    """
    findings: list[Finding] = []
    sizes: dict[str, tuple[ImageRef, tuple[int, int]]] = {}
    refs = [ref for ref in map(parse_image_path, files) if ref is not None]
    for ref in refs:
        try:
            size = check_png(files[ref.path])
        except InvalidPNG as exc:
            findings.append(
                Finding(
                    "error",
                    ref.path,
                    f"{ref.path} is not a valid PNG: {exc}.",
                    "Export the image again as a standard PNG (not JPEG, not Xcode-optimised) "
                    "and keep the .png name.",
                )
            )
            continue
        sizes[ref.path] = (ref, size)
        findings.extend(_size_findings(ref, size, style, bool(posters)))

    if not any(ref.name == "icon" for ref in refs):
        findings.append(
            Finding(
                "error",
                "icon.png",
                "icon.png is missing, at every scale; Wallet refuses a pass without an icon.",
                "Add icon.png (29x29 pt, so 58x58 px as icon@2x.png and 87x87 px as "
                "icon@3x.png) at the top level of the package.",
            )
        )

    top_level = {(ref.name, ref.scale) for ref in refs if ref.lang is None}
    for ref in refs:
        if ref.lang is not None and (ref.name, ref.scale) in top_level:
            # "Don't include an image at the top level and inside a .lproj directory."
            findings.append(
                Finding(
                    "warning",
                    ref.path,
                    f"{ref.path} also exists at the top level of the package; Apple asks for "
                    "an image in one place only.",
                    f"Keep either the top-level {_file_name(ref)} or the localized copies, not "
                    "both.",
                )
            )

    findings.extend(_style_findings(refs, style, posters))
    findings.extend(_scale_findings(sizes.values()))
    return findings


def _file_name(ref: ImageRef) -> str:
    return f"{ref.name}{'' if ref.scale == 1 else f'@{ref.scale}x'}.png"


def _style_findings(
    refs: list[ImageRef], style: str | None, posters: Collection[str]
) -> list[Finding]:
    if style not in SUPPORTED_IMAGES:
        return []
    findings = []
    supported = SUPPORTED_IMAGES[style].union(*(SUPPORTED_IMAGES[p] for p in posters))
    layout = " or ".join((style, *(p for p in posters if p != style)))
    for ref in refs:
        if ref.name == "personalizationLogo" or ref.name in supported:
            continue
        findings.append(
            Finding(
                "warning",
                ref.path,
                f"A {layout} pass does not show a {ref.name} image; Wallet ignores {ref.path}.",
                f"Remove {ref.path}; a {layout} pass shows only {', '.join(sorted(supported))}.",
            )
        )
    names = {ref.name for ref in refs}
    if style == "eventTicket" and "strip" in names and names & {"background", "thumbnail"}:
        extra = " and ".join(sorted(names & {"background", "thumbnail"}))
        findings.append(
            Finding(
                "warning",
                "strip.png",
                f"An event ticket with a strip image should not also have a {extra} image.",
                f"Keep the strip image or the {extra} image, not both.",
            )
        )
    return findings


def _size_findings(
    ref: ImageRef, size: tuple[int, int], style: str | None, poster: bool
) -> list[Finding]:
    width, height = size
    scale = ref.scale
    points = f"{width / scale:g}x{height / scale:g} pt"
    if ref.name == "icon":
        low, high = (n * scale for n in ICON_POINTS)
        if width != height or not low <= width <= high:
            return [
                Finding(
                    "warning",
                    ref.path,
                    f"{ref.path} is {width}x{height} px ({points}); Wallet shows the icon as a "
                    f"square of {ICON_POINTS[0]} to {ICON_POINTS[1]} pt and scales anything "
                    "else.",
                    f"Make it a square of {low} to {high} px at @{scale}x.",
                )
            ]
        return []
    if ref.name == "strip":
        if style is None:
            return []
        expected = (STRIP_WIDTH * scale, STRIP_HEIGHTS.get(style, DEFAULT_STRIP_HEIGHT) * scale)
        if (width, height) != expected:
            return [
                Finding(
                    "warning",
                    ref.path,
                    f"{ref.path} is {width}x{height} px; a {style} strip fills "
                    f"{expected[0]}x{expected[1]} px at @{scale}x, so Wallet scales and crops it.",
                    f"Export the strip at exactly {expected[0]}x{expected[1]} px.",
                )
            ]
        return []
    allotted = POSTER_BACKGROUND_POINTS if poster and ref.name == "background" else None
    allotted = allotted or MAX_POINTS.get(ref.name)
    if allotted is None:
        return []
    max_width, max_height = (n * scale for n in allotted)
    findings = []
    if width > max_width or height > max_height:
        findings.append(
            Finding(
                "warning",
                ref.path,
                f"{ref.path} is {width}x{height} px, larger than the {max_width}x{max_height} px "
                f"Wallet allots to the {ref.name} at @{scale}x; it is scaled down and may be "
                "cropped.",
                f"Resize it to fit within {max_width}x{max_height} px.",
            )
        )
    if ref.name == "thumbnail" and not 2 / 3 <= width / height <= 3 / 2:
        findings.append(
            Finding(
                "warning",
                ref.path,
                f"{ref.path} has an aspect ratio of {width}:{height}; Wallet crops thumbnails "
                "outside 2:3 to 3:2.",
                "Crop the thumbnail to an aspect ratio between 2:3 and 3:2.",
            )
        )
    return findings


def _scale_findings(images: Iterable[tuple[ImageRef, tuple[int, int]]]) -> list[Finding]:
    groups: dict[tuple[str | None, str], dict[int, tuple[ImageRef, tuple[int, int]]]] = {}
    for ref, size in images:
        groups.setdefault((ref.lang, ref.name), {})[ref.scale] = (ref, size)
    findings = []
    for variants in groups.values():
        base_scale = min(variants)
        base_ref, (base_width, base_height) = variants[base_scale]
        for scale, (ref, (width, height)) in sorted(variants.items()):
            if scale == base_scale:
                continue
            factor = scale / base_scale
            expected = (round(base_width * factor), round(base_height * factor))
            # One pixel of rounding per scale step is normal when designs are exported.
            tolerance = scale
            if abs(width - expected[0]) > tolerance or abs(height - expected[1]) > tolerance:
                findings.append(
                    Finding(
                        "warning",
                        ref.path,
                        f"{ref.path} is {width}x{height} px but {base_ref.path} is "
                        f"{base_width}x{base_height} px; @{scale}x should be {factor:g} times "
                        f"the @{base_scale}x size, about {expected[0]}x{expected[1]} px.",
                        "Export all scales of the image from the same artwork.",
                    )
                )
    return findings
