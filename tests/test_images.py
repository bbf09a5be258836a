"""PNG header parsing and the image rules of a pass package."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from passes.images import (
    Finding,
    InvalidPNG,
    check_images,
    check_png,
    parse_image_path,
    png_size,
)

# A 1x1 PNG as published widely (not made by our helper), so the parser is not only checked
# against bytes it was written alongside.
REAL_WORLD_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int) -> bytes:
    """A real, decodable RGB PNG of the given size (black pixels)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00" * 3 * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def _messages(findings: list[Finding], severity: str) -> list[str]:
    return [f"{f.path}: {f.message}" for f in findings if f.severity == severity]


def test_png_size_reads_a_real_world_png() -> None:
    assert png_size(REAL_WORLD_PNG) == (1, 1)
    assert check_png(REAL_WORLD_PNG) == (1, 1)


def test_png_size_reads_width_and_height_from_the_header() -> None:
    assert png_size(make_png(58, 29)) == (58, 29)


def test_png_size_names_a_jpeg_as_a_jpeg() -> None:
    with pytest.raises(InvalidPNG, match="JPEG"):
        png_size(b"\xff\xd8\xff\xe0" + b"\x00" * 40)


def test_png_size_rejects_data_cut_off_inside_the_header() -> None:
    with pytest.raises(InvalidPNG, match="truncated"):
        png_size(make_png(10, 10)[:20])


def test_png_size_rejects_empty_data() -> None:
    with pytest.raises(InvalidPNG, match="empty"):
        png_size(b"")


def test_png_size_rejects_a_header_with_a_wrong_checksum() -> None:
    data = bytearray(make_png(10, 10))
    data[19] ^= 0xFF  # a byte of the width
    with pytest.raises(InvalidPNG, match="checksum"):
        png_size(bytes(data))


def test_png_size_explains_an_xcode_optimised_png() -> None:
    cgbi = b"\x89PNG\r\n\x1a\n" + _chunk(b"CgBI", b"\x50\x00\x20\x06") + make_png(1, 1)[8:]
    with pytest.raises(InvalidPNG, match="CgBI"):
        png_size(cgbi)


def test_check_png_rejects_a_file_cut_off_before_its_end() -> None:
    data = make_png(10, 10)
    assert png_size(data[:-12]) == (10, 10)  # the header alone looks fine
    with pytest.raises(InvalidPNG, match="truncated"):
        check_png(data[:-12])


def test_check_png_rejects_a_png_without_image_data() -> None:
    data = make_png(10, 10)
    no_idat = data[:33] + _chunk(b"IEND", b"")
    with pytest.raises(InvalidPNG, match="IDAT"):
        check_png(no_idat)


def test_parse_image_path_reads_name_scale_and_language() -> None:
    ref = parse_image_path("zh-Hans.lproj/logo@3x.png")
    assert ref is not None
    assert (ref.name, ref.scale, ref.lang) == ("logo", 3, "zh-Hans")
    top = parse_image_path("personalizationLogo.png")
    assert top is not None and (top.name, top.scale, top.lang) == ("personalizationLogo", 1, None)


@pytest.mark.parametrize(
    "path", ["Icon.png", "logo@4x.png", "logo.jpg", "art/logo.png", "pass.json"]
)
def test_parse_image_path_ignores_names_wallet_does_not_load(path: str) -> None:
    assert parse_image_path(path) is None


def test_package_without_icon_is_an_error() -> None:
    findings = check_images({"logo.png": make_png(160, 50)}, "storeCard")
    assert any(f.path == "icon.png" for f in findings if f.severity == "error")


def test_icon_at_any_scale_satisfies_the_icon_requirement() -> None:
    findings = check_images({"icon@3x.png": make_png(87, 87)}, "storeCard")
    assert findings == []


def test_image_that_is_not_a_png_is_an_error() -> None:
    files = {"icon.png": make_png(29, 29), "fr.lproj/logo.png": b"\xff\xd8\xff\xe0JFIF"}
    errors = _messages(check_images(files, "generic"), "error")
    assert errors == [
        "fr.lproj/logo.png: fr.lproj/logo.png is not a valid PNG: the file is a "
        "JPEG image, not a PNG."
    ]


def test_image_the_style_does_not_show_is_a_warning() -> None:
    files = {"icon.png": make_png(29, 29), "strip.png": make_png(375, 123)}
    findings = check_images(files, "boardingPass")
    assert _messages(findings, "error") == []
    assert any("strip.png" in w and "ignores" in w for w in _messages(findings, "warning"))


def test_same_image_is_fine_for_a_style_that_shows_it() -> None:
    files = {"icon.png": make_png(29, 29), "thumbnail.png": make_png(90, 90)}
    assert check_images(files, "generic") == []


def test_event_ticket_with_strip_and_background_is_warned() -> None:
    files = {
        "icon.png": make_png(29, 29),
        "strip.png": make_png(375, 98),
        "background.png": make_png(180, 220),
    }
    warnings = _messages(check_images(files, "eventTicket"), "warning")
    assert any("strip" in w and "background" in w for w in warnings)


def test_logo_larger_than_its_space_is_warned() -> None:
    files = {"icon.png": make_png(29, 29), "logo@2x.png": make_png(400, 100)}
    warnings = _messages(check_images(files, "coupon"), "warning")
    assert len(warnings) == 1 and "320x100" in warnings[0]


def test_logo_within_its_space_is_not_warned() -> None:
    files = {"icon.png": make_png(29, 29), "logo@2x.png": make_png(200, 100)}
    assert check_images(files, "coupon") == []


@pytest.mark.parametrize(
    ("style", "height", "warned"),
    [
        ("coupon", 144, False),
        ("storeCard", 144, False),
        ("eventTicket", 98, False),
        ("coupon", 98, True),
        ("eventTicket", 144, True),
    ],
)
def test_strip_must_fill_the_slot_of_its_style(style: str, height: int, warned: bool) -> None:
    files = {"icon.png": make_png(29, 29), "strip@2x.png": make_png(750, height * 2)}
    warnings = _messages(check_images(files, style), "warning")
    assert bool(warnings) is warned


def test_retina_variant_that_is_not_double_is_warned() -> None:
    files = {"icon.png": make_png(29, 29), "icon@2x.png": make_png(60, 40)}
    warnings = _messages(check_images(files, "generic"), "warning")
    assert any("icon@2x.png" in w and "about 58x58" in w for w in warnings)


def test_retina_variants_from_the_same_artwork_are_quiet() -> None:
    files = {
        "icon.png": make_png(29, 29),
        "icon@2x.png": make_png(58, 58),
        "icon@3x.png": make_png(87, 87),
        "logo.png": make_png(100, 40),
        "logo@2x.png": make_png(201, 80),  # a pixel of rounding is normal
    }
    assert check_images(files, "generic") == []


def test_icon_that_is_not_square_is_warned() -> None:
    warnings = _messages(check_images({"icon.png": make_png(40, 29)}, "generic"), "warning")
    assert warnings and "square" in warnings[0]


def test_thumbnail_with_extreme_aspect_ratio_is_warned() -> None:
    files = {"icon.png": make_png(29, 29), "thumbnail.png": make_png(90, 30)}
    warnings = _messages(check_images(files, "generic"), "warning")
    assert any("aspect ratio" in w for w in warnings)


def test_image_both_top_level_and_localized_is_warned() -> None:
    files = {"icon.png": make_png(29, 29), "en.lproj/icon.png": make_png(29, 29)}
    warnings = _messages(check_images(files, "generic"), "warning")
    assert warnings == [
        "en.lproj/icon.png: en.lproj/icon.png also exists at the top level of the package; "
        "Apple asks for an image in one place only."
    ]


def test_unknown_style_skips_style_checks_instead_of_guessing() -> None:
    files = {"icon.png": make_png(29, 29), "strip.png": make_png(10, 10)}
    assert check_images(files, None) == []
