"""Image files <-> pixels, for every command.

:func:`read_image` decodes JPEG, PNG, TIFF, WebP and BMP into an :class:`Image`: pixels upright (EXIF
orientation applied), RGB or greyscale, 8 or 16 bits as stored, alpha kept aside, EXIF (orientation
reset to 1) and ICC profile kept for writing back. :func:`write_image` writes one atomically (temp
file + rename), so an interrupted run never leaves a half-written file or clobbers a good one.

Why two decoders: Pillow reads metadata and every mode, but reduces 16-bit RGB to 8 bits, so 16-bit
files are decoded with OpenCV (``IMREAD_UNCHANGED``) and their orientation is applied here.

Decompression-bomb guard: images with more than :data:`DEFAULT_MAX_PIXELS` pixels are refused
before decoding. Override with ``DEBLUR_MAX_PIXELS=<pixels>`` (``0`` disables the guard) or the
``max_pixels`` argument.

Torch is imported only by :meth:`Image.to_tensor` / :meth:`Image.with_tensor`.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from deblurcli.errors import ImageError, ImageTooLargeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: File extensions read and written, lower case, mapped to Pillow's format names.
EXTENSIONS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
FORMATS = frozenset(EXTENSIONS.values())
#: Formats that can hold 16-bit samples (others are written as 8-bit).
FORMATS_16BIT = frozenset({"PNG", "TIFF"})
#: Formats that can hold an alpha channel.
FORMATS_ALPHA = frozenset({"PNG", "TIFF", "WEBP"})

#: Default decompression-bomb limit: Pillow's own error threshold (2 x 89,478,485 pixels, about
#: 179 MP), far above any camera (a 100 MP medium-format frame passes) but below what a crafted
#: header can ask for.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
MAX_PIXELS_ENV = "DEBLUR_MAX_PIXELS"

_EXIF_ORIENTATION = 0x0112
#: TIFF tags that describe how the source file stores its pixels (size, sample layout, strips,
#: tiles, compression), not the picture. Pillow's getexif() of a TIFF returns them among the EXIF
#: tags; written back, they would describe the output wrongly (a rotated image keeps the source's
#: width and height, a float source its SampleFormat), which breaks the encoder or the file.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255,  # NewSubfileType, SubfileType
    256, 257, 258, 259,  # ImageWidth, ImageLength, BitsPerSample, Compression
    262, 263, 266,  # PhotometricInterpretation, Threshholding, FillOrder
    273, 277, 278, 279,  # StripOffsets, SamplesPerPixel, RowsPerStrip, StripByteCounts
    280, 281, 284,  # Min/MaxSampleValue, PlanarConfiguration
    317, 320,  # Predictor, ColorMap
    322, 323, 324, 325,  # TileWidth, TileLength, TileOffsets, TileByteCounts
    330, 338, 339, 340, 341,  # SubIFDs, ExtraSamples, SampleFormat, S/MaxSampleValue
    347,  # JPEGTables
    529, 530, 531, 532,  # YCbCr coefficients, subsampling, positioning, ReferenceBlackWhite
    34675,  # InterColorProfile (the ICC profile travels on its own)
})


@dataclass(frozen=True)
class Image:
    """A decoded image, upright, with what is needed to write it back faithfully.

    Attributes:
        pixels: (H, W, 3) RGB or (H, W, 1) greyscale array, ``uint8`` or ``uint16`` as stored.
        alpha: (H, W) array of the same dtype, or ``None``.
        format: the source format (``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"WEBP"``, ``"BMP"``).
        exif: EXIF block with orientation reset to 1, or ``None``.
        icc_profile: ICC profile bytes, or ``None`` (dropped for CMYK sources, whose profile no
            longer describes the RGB pixels).
        path: where it was read from, if anywhere.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    format: str = "PNG"
    exif: bytes | None = None
    icc_profile: bytes | None = None
    path: Path | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def is_grey(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def max_value(self) -> int:
        return 65535 if self.bit_depth == 16 else 255

    def gray8(self) -> np.ndarray:
        """8-bit luma (H, W): what the blur score is computed on (BT.601, as OpenCV)."""
        import cv2

        px = self.pixels
        if px.dtype == np.uint16:
            # Round to the nearest 8-bit level (65535 / 255 = 257).
            px = ((px.astype(np.uint32) + 128) // 257).astype(np.uint8)
        if px.shape[2] == 1:
            return np.ascontiguousarray(px[:, :, 0])
        return cv2.cvtColor(px, cv2.COLOR_RGB2GRAY)

    def rgb_float(self) -> np.ndarray:
        """(H, W, 3) float32 RGB in [0, 1]; greyscale is replicated to three channels."""
        f = self.pixels.astype(np.float32) / float(self.max_value)
        if f.shape[2] == 1:
            f = np.repeat(f, 3, axis=2)
        return f

    def with_rgb_float(self, rgb: np.ndarray) -> Image:
        """A copy holding new (H, W, 3) float RGB pixels in [0, 1], quantised to this image's
        depth; greyscale sources get the luma back as greyscale. Alpha and metadata are kept."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) RGB, got {rgb.shape}")
        if rgb.shape[:2] != self.pixels.shape[:2]:
            raise ValueError(f"size changed: {rgb.shape[:2]} != {self.pixels.shape[:2]}")
        rgb = np.clip(rgb, 0.0, 1.0)
        if self.is_grey:
            w = np.asarray((0.299, 0.587, 0.114), dtype=np.float32)
            rgb = (rgb @ w)[:, :, None]
        dtype = np.uint16 if self.bit_depth == 16 else np.uint8
        q = np.rint(rgb * float(self.max_value)).astype(dtype)
        return replace(self, pixels=q)

    def to_tensor(self) -> torch.Tensor:
        """The pixels as a float32 tensor (1, 3, H, W) in [0, 1]: the library's boundary format."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.rgb_float().transpose(2, 0, 1)))[None]

    def with_tensor(self, t: torch.Tensor) -> Image:
        """A copy holding the pixels of a (1, 3, H, W) tensor in [0, 1] (see :meth:`with_rgb_float`)."""
        if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 3:
            raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(t.shape)}")
        return self.with_rgb_float(t[0].detach().float().cpu().numpy().transpose(1, 2, 0))


def resize_max_side(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    """A copy of an (H, W[, C]) array shrunk (area averaging) so its longer side is ``max_side``;
    the array itself when it is already that small or ``max_side`` is ``None`` (never upscales)."""
    import cv2

    h, w = pixels.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return pixels
    s = max_side / max(h, w)
    return cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def max_pixels_from_env() -> int | None:
    """The decompression-bomb limit in force: ``DEBLUR_MAX_PIXELS`` if set (0 = no limit)."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:  # a negative value must not turn the guard off unnoticed
        raise ImageError(MAX_PIXELS_ENV, f"must be a whole number of pixels (0 = no limit), got {raw!r}")
    return None if value == 0 else value


def format_for_path(path: str | Path) -> str:
    """Pillow format name for a file extension, or :class:`ImageError` if not supported."""
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise ImageError(path, f"unsupported extension {Path(path).suffix!r} (known: {known})")
    return fmt


def read_image(path: str | Path, *, max_pixels: int | None | bool = True) -> Image:
    """Decode an image file.

    Args:
        path: a JPEG, PNG, TIFF, WebP or BMP file.
        max_pixels: refuse images with more pixels than this (``None`` = no limit; ``True`` = the
            limit from :func:`max_pixels_from_env`).

    Raises:
        ImageError: missing, unreadable, empty, truncated or not an image (one-line reason).
        ImageTooLargeError: the header declares more pixels than allowed.
    """
    path = Path(path)
    limit = max_pixels_from_env() if max_pixels is True else max_pixels
    problem = file_problem(path, "image")
    if problem:
        raise ImageError(path, problem)
    # The header first, from the file: junk or a bomb is refused before the whole file is read.
    _probe_header(path, limit)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(path, f"cannot read: {e.strerror or e}") from None
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        pil = _open_with_limit(data, limit)
    except UnidentifiedImageError:
        raise ImageError(path, "not an image Pillow or deblurcli can read") from None
    except PILImage.DecompressionBombError:
        raise ImageTooLargeError(path, _too_large_message("the declared image size", limit)) from None
    except (struct.error, EOFError):
        raise ImageError(path, "truncated or corrupt image header") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(path, f"corrupt image header: {e}") from None
    fmt = pil.format or "?"
    if fmt == "MPO":  # multi-picture JPEG (some cameras): the first frame is the photo
        fmt = "JPEG"
    if fmt not in FORMATS:
        raise ImageError(path, f"{fmt} images are not supported (use JPEG, PNG, TIFF, WebP or BMP)")
    w, h = pil.size
    if w <= 0 or h <= 0:
        raise ImageError(path, f"invalid size {w}x{h}")
    if limit is not None and w * h > limit:
        raise ImageTooLargeError(path, _too_large_message(f"{w}x{h} = {w * h / 1e6:.0f} MP", limit))
    try:
        # Inside the try: for PNG, getexif() reads to the end of the file (eXIf may follow IDAT).
        exif_obj = pil.getexif()
        orientation = int(exif_obj.get(_EXIF_ORIENTATION, 1) or 1)
        icc = pil.info.get("icc_profile") or None
        if _is_16bit_colour(pil, data):
            pixels, alpha = _decode_16bit_cv2(path, data)
            pixels = _orient(pixels, orientation)
            alpha = _orient(alpha, orientation) if alpha is not None else None
        else:
            pixels, alpha, icc = _decode_pil(pil, icc)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
        msg = str(e)
        if "truncated" in msg.lower() or isinstance(e, (EOFError, struct.error)):
            msg = "truncated image file (the end of the file is missing)"
        raise ImageError(path, f"cannot decode: {msg}") from None
    finally:
        pil.close()
    exif_bytes: bytes | None = None
    if len(exif_obj):
        # Only now: the decoder above reads the orientation from this same (cached) object.
        exif_obj[_EXIF_ORIENTATION] = 1
        for tag in _TIFF_LAYOUT_TAGS.intersection(exif_obj):
            del exif_obj[tag]
        try:
            exif_bytes = exif_obj.tobytes()
        except Exception:  # malformed maker notes: drop EXIF rather than fail the image
            exif_bytes = None
    return Image(pixels=pixels, alpha=alpha, format=fmt, exif=exif_bytes, icc_profile=icc, path=path)


def file_problem(path: str | Path, kind: str = "") -> str | None:
    """Why ``path`` cannot be read as an input file, or ``None`` when it is a regular file.

    Devices (``/dev/zero``), FIFOs and sockets are refused without being opened: reading one can
    block for ever or never end. ``kind`` names what was expected ("image", "video", "model").
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    what = f"{kind} file" if kind else "file"
    if stat.S_ISDIR(st.st_mode):
        return f"is a folder, not a{'n' if what[0] in 'aeiou' else ''} {what}"
    if not stat.S_ISREG(st.st_mode):
        sort = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        return f"not a regular file ({sort}); give a regular {what}"
    return None


def probe_image(path: str | Path, *, max_pixels: int | None | bool = True) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding its pixels.

    Raises:
        ImageError: not a regular file, empty, not an image, or larger than the bomb limit (as
            :func:`read_image`, which may still find the pixel data truncated or corrupt).
    """
    path = Path(path)
    limit = max_pixels_from_env() if max_pixels is True else max_pixels
    problem = file_problem(path, "image")
    if problem:
        raise ImageError(path, problem)
    return _probe_header(path, limit)


def _probe_header(path: Path, limit: int | None) -> tuple[int, int]:
    """Open ``path`` with Pillow, which reads only the header; check format and size against ``limit``."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ImageError(path, "empty file (0 bytes)")
            with _open_with_limit(f, limit) as pil:
                fmt, (w, h) = pil.format or "?", pil.size
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(path, "not an image Pillow or deblurcli can read") from None
    except PILImage.DecompressionBombError:
        raise ImageTooLargeError(path, _too_large_message("the declared image size", limit)) from None
    except (struct.error, EOFError):
        raise ImageError(path, "truncated or corrupt image header") from None
    except OSError as e:
        if e.filename is not None or e.strerror:
            raise ImageError(path, f"cannot read: {e.strerror or e}") from None
        raise ImageError(path, f"corrupt image header: {e}") from None
    except (ValueError, SyntaxError) as e:
        raise ImageError(path, f"corrupt image header: {e}") from None
    if fmt == "MPO":
        fmt = "JPEG"
    if fmt not in FORMATS:
        raise ImageError(path, f"{fmt} images are not supported (use JPEG, PNG, TIFF, WebP or BMP)")
    if w <= 0 or h <= 0:
        raise ImageError(path, f"invalid size {w}x{h}")
    if limit is not None and w * h > limit:
        raise ImageTooLargeError(path, _too_large_message(f"{w}x{h} = {w * h / 1e6:.0f} MP", limit))
    return w, h


def _too_large_message(what: str, limit: int | None) -> str:
    size = f"{(limit or 0) / 1e6:.0f} MP" if (limit or 0) >= 10**6 else f"{limit or 0:,} pixel"
    return (
        f"{what} exceeds the {size} decompression-bomb limit "
        f"(set {MAX_PIXELS_ENV}=0 to disable it, or a larger pixel count, if you trust the file)"
    )


def _open_with_limit(data: bytes | io.BufferedReader, limit: int | None) -> PILImage.Image:
    """PIL.Image.open with Pillow's own bomb check aligned to ours.

    Pillow errors above 2 x ``MAX_IMAGE_PIXELS`` during ``open`` (before we can look at the size),
    so the global is set to half our limit for the call (not thread-safe, like Pillow's setting).
    """
    saved = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = None if limit is None else max(1, limit // 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            return PILImage.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved


def _is_16bit_colour(pil: PILImage.Image, data: bytes) -> bool:
    """True for 16-bit RGB(A) files, which Pillow would reduce to 8 bits."""
    if pil.format == "PNG":
        # IHDR is the first chunk: 8-byte signature, 4 length, 4 type, 4 w, 4 h, 1 bit depth, 1 colour type.
        depth, colour_type = data[24], data[25]
        return depth == 16 and colour_type in (2, 6)  # truecolour, truecolour + alpha
    if pil.format == "TIFF":
        bits = pil.tag_v2.get(258)  # BitsPerSample
        bits = bits if isinstance(bits, tuple) else (bits,)
        spp = int(pil.tag_v2.get(277, 1))  # SamplesPerPixel
        return spp >= 3 and any(b is not None and int(b) > 8 for b in bits)
    return False


def _decode_16bit_cv2(path: Path, data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(path, "cannot decode (corrupt or truncated 16-bit image)")
    if arr.dtype != np.uint16:
        arr = arr.astype(np.uint16) * 257 if arr.dtype == np.uint8 else np.clip(arr, 0, 65535).astype(np.uint16)
    if arr.ndim == 2:
        return arr[:, :, None], None
    if arr.shape[2] == 4:
        return np.ascontiguousarray(arr[:, :, 2::-1]), np.ascontiguousarray(arr[:, :, 3])
    return np.ascontiguousarray(arr[:, :, 2::-1]), None


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W[, C]) array, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, k=-1),
        7: lambda x: np.rot90(x, k=1)[::-1],
        8: lambda x: np.rot90(x, k=1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(a)) if op else a


def _decode_pil(pil: PILImage.Image, icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    pil.load()  # raises OSError on truncated files (Pillow's LOAD_TRUNCATED_IMAGES stays False)
    pil = ImageOps.exif_transpose(pil)
    mode = pil.mode
    alpha: np.ndarray | None = None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        pixels = np.asarray(pil, dtype=np.uint16)[:, :, None]
        return np.ascontiguousarray(pixels), None, icc
    if mode == "I":  # 32-bit integer greyscale (16-bit PNG greyscale opens like this)
        pixels = np.clip(np.asarray(pil, dtype=np.int64), 0, 65535).astype(np.uint16)[:, :, None]
        return pixels, None, icc
    if mode == "F":
        f = np.asarray(pil, dtype=np.float32)
        scale = 1.0 if f.max(initial=0.0) <= 1.0 else 65535.0
        pixels = np.rint(np.clip(f / scale, 0, 1) * 65535).astype(np.uint16)[:, :, None]
        return pixels, None, icc
    if mode == "CMYK":
        # The CMYK profile does not describe the converted RGB pixels: drop it (sRGB assumed).
        pil, icc = pil.convert("RGB"), None
        mode = "RGB"
    elif mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in pil.info
        pil = pil.convert("RGBA" if has_alpha else "RGB")
        mode = pil.mode
    elif mode == "1":
        pil, mode = pil.convert("L"), "L"
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        pil = pil.convert("RGBA" if "A" in mode else "RGB")
        mode = pil.mode
    arr = np.asarray(pil, dtype=np.uint8)
    if mode == "L":
        return np.ascontiguousarray(arr[:, :, None]), None, icc
    if mode == "LA":
        return np.ascontiguousarray(arr[:, :, :1]), np.ascontiguousarray(arr[:, :, 1]), icc
    if mode == "RGBA":
        alpha = np.ascontiguousarray(arr[:, :, 3])
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr), alpha, icc


def write_image(
    path: str | Path,
    image: Image,
    *,
    format: str | None = None,
    quality: int = 95,
    png_level: int = 6,
) -> Path:
    """Write an image atomically: to a temp file beside ``path``, then renamed over it.

    Args:
        path: destination; its folder must exist.
        image: what to write. Greyscale stays greyscale, alpha is written where the format can hold
            it, 16-bit stays 16-bit in PNG and TIFF (other formats get 8 bits).
        format: force a format (``"JPEG"``, ``"PNG"``, ...); default from the extension.
        quality: JPEG/WebP quality.
        png_level: zlib level of 8-bit PNGs (1 is ~3x faster to write than 6, files ~17% larger;
            make-pairs uses 1 for training folders, which are written once and read many times).

    Returns:
        The path written.

    Raises:
        ImageError: unsupported format, or the file cannot be written.
    """
    path = Path(path)
    fmt = format.upper() if format else format_for_path(path)
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt == "TIF":
        fmt = "TIFF"
    if fmt not in FORMATS:
        raise ImageError(path, f"cannot write format {fmt!r} (use JPEG, PNG, TIFF, WebP or BMP)")
    if not path.parent.is_dir():
        raise ImageError(path, f"output folder {path.parent} does not exist")
    payload = encode_image(image, fmt, quality=quality, png_level=png_level, path=path)
    atomic_write_bytes(path, payload)
    return path


def _read_umask() -> int:
    """The process umask. Linux reports it in /proc; elsewhere os.umask can only read it by setting
    it, which is done once, at import, and put back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def new_file_mode(path: str | Path) -> int:
    """The permission bits a file written to ``path`` should get: those of the file it replaces, or
    for a new file 0o666 less the umask, as ``open()`` would give. Temp files from
    :func:`tempfile.mkstemp` are 0o600, and renaming one into place would keep that."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def _temp_prefix(path: Path) -> str:
    """``.NAME.`` for the temp file beside ``path``, with NAME cut short enough that the temp name
    (prefix, 8 random characters, ``.tmp``) fits the folder's name limit whenever ``path`` does."""
    try:
        name_max = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    room = max(1, name_max - len(".") - len(".") - 8 - len(".tmp"))
    # Cut in bytes (the limit's unit); a multi-byte character cut in two is dropped.
    name = os.fsencode(path.name)[:room].decode("utf-8", errors="ignore") or "x"
    return f".{name}."


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temp file in the same folder, fsync'd, then renamed over it:
    readers see the old file or the new one, never half of one, and a failure leaves no temp file.
    The file gets :func:`new_file_mode`'s permissions (not the temp file's 0o600).

    Raises:
        ImageError: the file cannot be written (message names the path and the OS reason).
    """
    path = Path(path)
    tmp: str | None = None
    try:
        # Inside the try: a missing or read-only folder fails here, and must be an ImageError too.
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.fchmod(fd, new_file_mode(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ImageError(path, f"cannot write: {e.strerror or e}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def encode_image(
    image: Image, fmt: str, *, quality: int = 95, png_level: int = 6, path: str | Path = "<memory>"
) -> bytes:
    """Encode an image to the bytes of a file of format ``fmt`` (see :func:`write_image`)."""
    pixels, alpha = image.pixels, image.alpha
    if alpha is not None and fmt not in FORMATS_ALPHA:
        alpha = None  # JPEG/BMP cannot hold alpha: flatten by dropping it (pixels are unpremultiplied)
    if image.bit_depth == 16 and fmt in FORMATS_16BIT:
        if image.is_grey and alpha is None:
            return _encode_grey16_pil(pixels, fmt, image)
        return _encode_16bit_cv2(pixels, alpha, fmt, image, path)
    if image.bit_depth == 16:
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
        alpha = ((alpha.astype(np.uint32) + 128) // 257).astype(np.uint8) if alpha is not None else None
    if image.is_grey:
        pil = PILImage.fromarray(pixels[:, :, 0], "L")
        if alpha is not None:
            pil = PILImage.merge("LA", (pil, PILImage.fromarray(alpha, "L")))
    else:
        pil = PILImage.fromarray(pixels, "RGB")
        if alpha is not None:
            pil.putalpha(PILImage.fromarray(alpha, "L"))
    if fmt == "WEBP" and pil.mode.startswith("L"):
        pil = pil.convert("RGBA" if pil.mode == "LA" else "RGB")
    kwargs: dict[str, object] = {}
    if fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        if image.exif:
            kwargs["exif"] = image.exif
        if image.icc_profile:
            kwargs["icc_profile"] = image.icc_profile
    if fmt == "JPEG":
        kwargs.update(quality=quality, subsampling=0 if quality >= 90 else 2, optimize=True)
    elif fmt == "WEBP":
        kwargs.update(quality=quality, method=4)
    elif fmt == "TIFF":
        kwargs.update(compression="tiff_deflate")
    elif fmt == "PNG":
        kwargs.update(compress_level=png_level)
    buf = io.BytesIO()
    try:
        pil.save(buf, format=fmt, **kwargs)
    except (OSError, ValueError) as e:
        raise ImageError(path, f"cannot encode as {fmt}: {e}") from None
    return buf.getvalue()


def _encode_grey16_pil(pixels: np.ndarray, fmt: str, image: Image) -> bytes:
    pil = PILImage.fromarray(np.ascontiguousarray(pixels[:, :, 0]))  # uint16 -> mode I;16
    kwargs: dict[str, object] = {}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if image.exif:
        kwargs["exif"] = image.exif
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _encode_16bit_cv2(pixels: np.ndarray, alpha: np.ndarray | None, fmt: str, image: Image, path: str | Path) -> bytes:
    import cv2

    bgr = pixels[:, :, ::-1] if pixels.shape[2] == 3 else pixels
    if alpha is not None:
        bgr = np.dstack([bgr if bgr.ndim == 3 else bgr[:, :, None].repeat(3, 2), alpha])
    ok, enc = cv2.imencode(".png" if fmt == "PNG" else ".tiff", np.ascontiguousarray(bgr))
    if not ok:
        raise ImageError(path, f"cannot encode 16-bit {fmt}")
    data = enc.tobytes()
    if fmt == "PNG":
        # OpenCV writes no metadata: splice the ICC profile and EXIF in as iCCP / eXIf chunks.
        data = _png_add_chunks(data, image.icc_profile, image.exif)
    # 16-bit TIFF: OpenCV cannot write EXIF/ICC tags; the pixels are kept exact (documented limit).
    return data


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_add_chunks(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (both must precede IDAT)."""
    ihdr_end = 8 + 4 + 4 + 13 + 4
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += _png_chunk(b"eXIf", body)
    return png[:ihdr_end] + extra + png[ihdr_end:]
