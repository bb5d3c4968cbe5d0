"""Where pairs go: PNG encoding, the manifest (``pairs.jsonl``) and the writer pool.

Imports :mod:`deblurcli.pairs.average` (the per-thread scratch buffers) of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from deblurcli.pairs.average import _SCRATCH

if TYPE_CHECKING:  # pragma: no cover
    from collections import deque
    from concurrent.futures import Future
    from pathlib import Path

T = TypeVar("T")

MANIFEST = "pairs.jsonl"


class Manifest:
    """``OUT/pairs.jsonl``: one JSON object per pair, appended as pairs are written.

    Safety: each row is appended with one ``write`` of the complete line and fsync'd, after both
    images are in place (written atomically). A crash can therefore leave at most a torn last line,
    which :meth:`open` drops (rewriting the file atomically) before anything is appended; pairs
    whose row is missing are simply made again.
    """

    def __init__(self, path: "Path") -> None:
        self.path = path
        self.rows: dict[str, dict[str, object]] = {}

    @classmethod
    def open(cls, path: "Path") -> "Manifest":
        import json

        from deblurcli.errors import DatasetError
        from deblurcli.images import atomic_write_bytes

        m = cls(path)
        if not path.exists():
            return m
        try:
            raw = path.read_bytes()
        except OSError as e:  # a folder, or unreadable: one line, not a traceback
            raise DatasetError(f"{path}: cannot read the manifest: {e.strerror or e}") from None
        good: list[bytes] = []
        dropped = False
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                name = row["name"]
            except (ValueError, KeyError, TypeError):
                dropped = True
                continue
            if name in m.rows:  # never expected; keep the first
                dropped = True
                continue
            m.rows[name] = row
            good.append(line)
        if dropped or (raw and not raw.endswith(b"\n")):
            atomic_write_bytes(path, b"".join(g + b"\n" for g in good))  # ImageError names the path
        return m

    def append(self, row: dict[str, object]) -> None:
        import json
        import os

        name = str(row["name"])
        if name in self.rows:
            return
        from deblurcli.errors import DatasetError

        line = (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        try:
            # 0o666: the umask decides, as for open() and the images (images.new_file_mode).
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise DatasetError(f"{self.path}: cannot append to the manifest: {e.strerror or e}") from None
        self.rows[name] = row


#: ISA-L (igzip) level of the pair PNGs, 0-3. Level 2: 2.6 ms for a 640x360 frame and files
#: within 2% of libdeflate's level 1 (5.0 ms); level 1 is 10% faster but 6% larger, level 3 slower.
PNG_LEVEL = 2

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    import struct

    from isal import isal_zlib

    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", isal_zlib.crc32(data, isal_zlib.crc32(tag)))


def _encode_png(rgb8: np.ndarray) -> bytes:
    """An 8-bit RGB PNG: every row with the "up" filter, compressed by ISA-L at :data:`PNG_LEVEL`.

    Why not a PNG library: all of the maintained ones (Pillow, OpenCV's libpng, libspng) compress
    with zlib, which at level 1 takes 10 of the 13 ms that the best of them (OpenCV) needs for a
    640x360 frame. ISA-L (the ``isal`` package, Intel's igzip) makes the same zlib stream format in
    2.6 ms (libdeflate: 5.0 ms) for files of about the same size, and releases the GIL, so the
    :class:`_PairWriter` threads really run beside the decoder. (fpng, 1.4 ms, makes files 30%
    larger and holds the GIL.) What is written here is only the container: signature, IHDR, one
    IDAT, IEND (PNG spec, sections 5 and 11.2), each chunk with its CRC-32.
    """
    import struct

    from isal import isal_zlib

    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
        raise ValueError(f"expected an 8-bit RGB image (H, W, 3), got {rgb8.dtype} {rgb8.shape}")
    h, w = rgb8.shape[:2]
    flat = np.ascontiguousarray(rgb8).reshape(h, 3 * w)
    # Filter type 2 ("up"): each byte minus the one above it, mod 256 (the row above the first is
    # zero). One fixed filter instead of libpng's per-row search: the same size on video frames.
    rows = getattr(_SCRATCH, "png_rows", None)  # reused, as the scratch images of average_frames
    if rows is None or rows.shape != (h, 1 + 3 * w):
        rows = _SCRATCH.png_rows = np.empty((h, 1 + 3 * w), np.uint8)
    rows[:, 0] = 2
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, truecolour, deflate, no interlace
    return b"".join((
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", ihdr),
        _png_chunk(b"IDAT", isal_zlib.compress(rows, PNG_LEVEL)),
        _png_chunk(b"IEND", b""),
    ))


def _write_png(path: "Path", rgb8: np.ndarray) -> None:
    """Write an 8-bit RGB PNG atomically (temp file, fsync, rename)."""
    from deblurcli.images import atomic_write_bytes

    atomic_write_bytes(path, _encode_png(rgb8))


class _PairWriter:
    """Writes pairs on a small thread pool while the caller goes on decoding.

    Encoding the two PNGs of a pair costs about as much as decoding its whole window, so it runs in
    worker threads (ISA-L and the file writes release the GIL). The averaging of a window runs on a
    thread of its own (:meth:`run`; OpenCV releases the GIL too), so that the decoder, which waits
    for a window's verdict, never waits behind queued PNGs. Completion is handled in the
    caller's thread, in submission order: a pair's manifest row is appended, and its ``on_done``
    called, only after both of its images are in place, as when writing inline. At most
    ``workers + 1`` pairs wait (two images each, enough to keep every worker busy), which bounds
    memory. On an error or an interrupt, queued writes are cancelled and running ones finish (each
    file is atomic) without a manifest row, so a rerun simply makes those pairs again.
    """

    def __init__(self, out: "Path", manifest: "Manifest", workers: int | None = None) -> None:
        import os
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self.out, self.manifest = out, manifest
        self.made = False
        # One core is left to the decoding thread: on 2 cores one PNG worker did as well as two
        # (measured with and without the window thread), with less CPU, since both compete with it.
        self.workers = workers or max(1, min(4, (os.cpu_count() or 1) - 1))
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="deblur-pairs")
        self.synth = ThreadPoolExecutor(1, thread_name_prefix="deblur-windows")
        self.pending: "deque[tuple[list[Future[None]], dict[str, object], Callable[[], None]]]" = deque()

    def submit(
        self, name: str, blurred8: np.ndarray, target8: np.ndarray, row: dict[str, object],
        on_done: "Callable[[], None]",
    ) -> None:
        """Queue a pair. May first complete older pairs (appending their rows, calling their
        ``on_done``), and so raise an older pair's write error."""
        if not self.made:
            # The output folders are made with the first pair: a run whose inputs all fail leaves
            # no empty blurred/ and targets/ behind.
            from deblurcli.errors import DatasetError

            try:
                (self.out / "blurred").mkdir(parents=True, exist_ok=True)
                (self.out / "targets").mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DatasetError(f"{self.out}: cannot create the output folders: {e.strerror or e}") from None
            self.made = True
        futures = [
            self.pool.submit(_write_png, self.out / "blurred" / f"{name}.png", blurred8),
            self.pool.submit(_write_png, self.out / "targets" / f"{name}.png", target8),
        ]
        self.pending.append((futures, row, on_done))
        while len(self.pending) > self.workers + 1:
            self._complete_oldest()

    def run(self, fn: "Callable[..., T]", *args: object) -> "Future[T]":
        """Run ``fn(*args)`` on the window thread (work that feeds a later :meth:`submit`)."""
        return self.synth.submit(fn, *args)

    def _complete_oldest(self) -> None:
        futures, row, on_done = self.pending.popleft()
        for f in futures:
            f.result()  # re-raises the worker's ImageError (e.g. disk full) in the caller's thread
        self.manifest.append(row)
        on_done()

    def __enter__(self) -> "_PairWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                while self.pending:
                    self._complete_oldest()
        finally:
            self.synth.shutdown(wait=True, cancel_futures=True)
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pending.clear()


def _pair_exists(out: "Path", name: str, manifest: Manifest) -> bool:
    return name in manifest.rows and (out / "blurred" / f"{name}.png").is_file() and (out / "targets" / f"{name}.png").is_file()


def _check_settings(manifest: Manifest, source: str, settings: dict[str, object]) -> None:
    from deblurcli.errors import DatasetError

    for row in manifest.rows.values():
        if row.get("source") == source and row.get("settings") != settings:
            raise DatasetError(
                f"{source}: the output folder already holds pairs of this input made with other settings "
                f"({row.get('settings')}); use another output folder or the same settings"
            )

