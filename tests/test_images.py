"""Image I/O on generated files of every kind the loader promises to handle."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from conftest import textured_rgb
from deblurcli.errors import ImageError, ImageTooLargeError
from deblurcli.images import Image, atomic_write_bytes, encode_image, read_image, write_image

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 1, make: str = "TestCam") -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = make
    return exif


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# --- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_applied_like_pillow(tmp_path: Path, orientation: int) -> None:
    rgb = textured_rgb(40, 64)
    path = tmp_path / f"o{orientation}.jpg"
    PILImage.fromarray(rgb).save(path, quality=95, exif=_exif(orientation))
    img = read_image(path)
    with PILImage.open(path) as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
    np.testing.assert_array_equal(img.pixels, expected)
    assert (img.height, img.width) == ((64, 40) if orientation >= 5 else (40, 64))
    # Written back upright, so the orientation tag must say "as stored" or viewers rotate twice.
    exif = PILImage.Exif()
    exif.load(img.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "TestCam"
    assert img.format == "JPEG"


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_rgb_keeps_full_depth(tmp_path: Path, ext: str) -> None:
    rgb16 = (textured_rgb(24, 30).astype(np.uint16) * 257 + 7).astype(np.uint16)  # not multiples of 257
    path = tmp_path / f"deep.{ext}"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])
    img = read_image(path)
    assert img.pixels.dtype == np.uint16 and img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels, rgb16)


def test_16bit_png_orientation_and_roundtrip_with_metadata(tmp_path: Path) -> None:
    rgba16 = np.dstack([textured_rgb(20, 36).astype(np.uint16) * 257 + 3, np.full((20, 36), 40000, np.uint16)])
    ok, enc = cv2.imencode(".png", rgba16[:, :, [2, 1, 0, 3]])
    assert ok
    data = enc.tobytes()
    exif = _exif(6).tobytes()
    # eXIf must precede IDAT: splice it after IHDR as a camera would write it.
    data = data[:33] + _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif") else exif) + data[33:]
    src = tmp_path / "rot16.png"
    src.write_bytes(data)

    img = read_image(src)
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, np.rot90(rgba16[:, :, :3], k=-1))  # orientation 6 = 90° CW
    np.testing.assert_array_equal(img.alpha, np.rot90(rgba16[:, :, 3], k=-1))

    out = tmp_path / "out16.png"
    write_image(out, Image(pixels=img.pixels, alpha=img.alpha, exif=img.exif, icc_profile=SRGB_ICC))
    back = read_image(out)
    np.testing.assert_array_equal(back.pixels, img.pixels)
    np.testing.assert_array_equal(back.alpha, img.alpha)
    with PILImage.open(out) as pil:
        assert pil.info.get("icc_profile") == SRGB_ICC
        assert pil.getexif()[0x0112] == 1
        assert pil.getexif()[0x010F] == "TestCam"


def test_rgba_alpha_is_kept_aside_and_written_back(tmp_path: Path) -> None:
    rgb = textured_rgb(16, 16)
    alpha = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    path = tmp_path / "a.png"
    PILImage.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    img = read_image(path)
    assert img.pixels.shape == (16, 16, 3)
    np.testing.assert_array_equal(img.pixels, rgb)
    np.testing.assert_array_equal(img.alpha, alpha)
    out = tmp_path / "b.png"
    write_image(out, img)
    with PILImage.open(out) as pil:
        assert pil.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(pil)[:, :, 3], alpha)


def test_greyscale_stays_greyscale(tmp_path: Path) -> None:
    grey = textured_rgb(20, 20)[:, :, 0]
    path = tmp_path / "g.png"
    PILImage.fromarray(grey, "L").save(path)
    img = read_image(path)
    assert img.is_grey and img.pixels.shape == (20, 20, 1)
    assert img.rgb_float().shape == (20, 20, 3)
    out = tmp_path / "g_out.png"
    write_image(out, img.with_rgb_float(img.rgb_float()))
    with PILImage.open(out) as pil:
        assert pil.mode == "L"
        np.testing.assert_array_equal(np.asarray(pil), grey)


def test_16bit_greyscale_roundtrip(tmp_path: Path) -> None:
    grey16 = (np.arange(30 * 20, dtype=np.uint32).reshape(30, 20) * 101 % 65536).astype(np.uint16)
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), grey16)
    img = read_image(path)
    assert img.is_grey and img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels[:, :, 0], grey16)
    out = tmp_path / "g16_out.png"
    write_image(out, img)
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), grey16)


def test_palette_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    pal = PILImage.fromarray(textured_rgb(12, 12)).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=8)
    path = tmp_path / "p.png"
    pal.save(path, transparency=0)
    img = read_image(path)
    assert img.pixels.shape == (12, 12, 3) and img.alpha is not None
    with PILImage.open(path) as pil:
        expected = np.asarray(pil.convert("RGBA"))
    np.testing.assert_array_equal(img.pixels, expected[:, :, :3])
    np.testing.assert_array_equal(img.alpha, expected[:, :, 3])


def test_cmyk_jpeg_becomes_rgb_without_its_profile(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    PILImage.fromarray(textured_rgb(16, 16)).convert("CMYK").save(path, quality=95)
    img = read_image(path)
    assert img.pixels.shape == (16, 16, 3) and img.pixels.dtype == np.uint8
    assert img.icc_profile is None
    out = tmp_path / "cmyk_out.jpg"
    write_image(out, img)
    with PILImage.open(out) as pil:
        assert pil.mode == "RGB"


@pytest.mark.parametrize("fmt,ext", [("BMP", "bmp"), ("WEBP", "webp"), ("TIFF", "tiff"), ("PNG", "png")])
def test_other_formats_read(tmp_path: Path, fmt: str, ext: str) -> None:
    rgb = textured_rgb(10, 14)
    path = tmp_path / f"x.{ext}"
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    PILImage.fromarray(rgb).save(path, format=fmt, **kwargs)
    img = read_image(path)
    assert img.format == fmt
    np.testing.assert_array_equal(img.pixels, rgb)


# --- bad inputs ----------------------------------------------------------------------------------


def _good_jpeg(tmp_path: Path) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(textured_rgb(64, 64)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,make,reason",
    [
        ("missing.jpg", None, "no such file"),
        ("empty.jpg", lambda tp: b"", "empty file"),
        ("text.jpg", lambda tp: b"this is not an image\n" * 10, "not an image"),
        ("cut.jpg", lambda tp: _good_jpeg(tp)[: len(_good_jpeg(tp)) // 2], "truncated"),
        ("cut.png", lambda tp: encode_image(Image(pixels=textured_rgb(64, 64)), "PNG")[:300], "truncated"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, name: str, make, reason: str) -> None:
    path = tmp_path / name
    if make is not None:
        path.write_bytes(make(tmp_path))
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and reason in message


def test_folder_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    # A valid PNG header declaring 100000 x 100000 pixels (30 GB decoded) and no real data.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match="decompression-bomb") as info:
        read_image(path)
    assert "DEBLUR_MAX_PIXELS" in str(info.value)


def test_bomb_limit_override_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    PILImage.fromarray(textured_rgb(20, 20)).save(path)
    monkeypatch.setenv("DEBLUR_MAX_PIXELS", "100")
    with pytest.raises(ImageTooLargeError):
        read_image(path)
    monkeypatch.setenv("DEBLUR_MAX_PIXELS", "0")  # 0 disables the guard
    assert read_image(path).width == 20
    monkeypatch.setenv("DEBLUR_MAX_PIXELS", "lots")
    with pytest.raises(ImageError, match="whole number"):
        read_image(path)


# --- writing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["jpg", "png", "tiff", "webp"])
def test_exif_and_icc_are_written_back(tmp_path: Path, ext: str) -> None:
    src = tmp_path / "src.jpg"
    PILImage.fromarray(textured_rgb(32, 48)).save(src, quality=95, exif=_exif(6, "Kamera"), icc_profile=SRGB_ICC)
    img = read_image(src)
    out = tmp_path / f"out.{ext}"
    write_image(out, img)
    with PILImage.open(out) as pil:
        assert pil.size == (32, 48)  # upright: 48 high after the 90° turn
        assert pil.info.get("icc_profile") == SRGB_ICC
        exif = pil.getexif()
        assert exif[0x010F] == "Kamera" and exif[0x0112] == 1


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "keep.jpg"
    out.write_bytes(b"precious")
    too_wide = Image(pixels=np.zeros((1, 70_000, 3), np.uint8))  # JPEG cannot hold > 65535 px
    with pytest.raises(ImageError, match="cannot encode"):
        write_image(out, too_wide)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.jpg"]  # no temp file left


def test_written_files_get_the_permissions_open_would_give(tmp_path: Path) -> None:
    # The temp file behind an atomic write is 0o600; the file renamed into place must not be (an
    # output photo readable by its owner only). New: what open() gives here (0o666 less the umask);
    # replaced: the old file's bits.
    from deblurcli.models import create_model
    from deblurcli.weights import save_model

    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    expected = plain.stat().st_mode & 0o777
    img = Image(pixels=textured_rgb(8, 8))
    write_image(tmp_path / "new.png", img)
    assert (tmp_path / "new.png").stat().st_mode & 0o777 == expected
    old = tmp_path / "old.png"
    old.write_bytes(b"x")
    old.chmod(0o640)
    write_image(old, img)
    assert old.stat().st_mode & 0o777 == 0o640
    save_model(tmp_path / "m.safetensors", create_model("nafnet", width=8, enc_blocks=[1], middle_blocks=1, dec_blocks=[1]))
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == expected


def test_write_errors(tmp_path: Path) -> None:
    img = Image(pixels=textured_rgb(8, 8))
    with pytest.raises(ImageError, match="does not exist"):
        write_image(tmp_path / "nope" / "x.png", img)
    with pytest.raises(ImageError, match="unsupported extension"):
        write_image(tmp_path / "x.gif", img)
    # The low-level writer (make-pairs' PNGs and manifest, evaluate's reports) says the same for a
    # missing folder: an ImageError naming the path, not the temp file's FileNotFoundError.
    with pytest.raises(ImageError, match="cannot write"):
        atomic_write_bytes(tmp_path / "nope" / "x.bin", b"data")
    assert not (tmp_path / "nope").exists()


def test_16bit_written_to_8bit_format_is_rounded(tmp_path: Path) -> None:
    px = np.full((4, 4, 3), 257 * 200 + 100, np.uint16)  # 200.39 on the 8-bit scale
    out = tmp_path / "x.bmp"
    write_image(out, Image(pixels=px))
    assert (np.asarray(PILImage.open(out)) == 200).all()


def test_tensor_roundtrip_is_lossless_for_8_and_16_bit() -> None:
    for px in (textured_rgb(9, 11), textured_rgb(9, 11).astype(np.uint16) * 257 + 5):
        img = Image(pixels=px)
        t = img.to_tensor()
        assert tuple(t.shape) == (1, 3, 9, 11) and float(t.min()) >= 0 and float(t.max()) <= 1
        np.testing.assert_array_equal(img.with_tensor(t).pixels, px)
