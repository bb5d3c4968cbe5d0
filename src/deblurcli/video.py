"""Video files <-> frames, with PyAV (FFmpeg): deblur every frame of a video, keeping the rest.

:func:`deblur_video` decodes a video, hands its frames in small batches to a callable (a
:class:`deblurcli.inference.Deblurrer`'s ``deblur``, say) as (B, 3, H, W) float RGB in [0, 1], and
encodes what comes back. It is streamed: memory holds one batch (plus the codecs' own look-ahead),
whatever the video's length. What is kept from the input:

- **audio**: every audio stream is copied packet for packet (remuxed, never re-encoded);
- **timing**: each frame keeps its timestamp (pts, in the input stream's time base; a container
  with a coarser clock, Matroska's 1 ms, rounds to it), so variable frame rate stays variable;
- **rotation**: the display matrix (or an old-style ``rotate`` tag) is written back as a display
  matrix; the pixels are not turned;
- **colour**: range (tv/pc), matrix (colorspace), primaries and transfer tags, and the RGB <-> YUV
  conversions use that matrix and range (a BT.709 video is not converted as BT.601);
- **metadata**: container tags (``creation_time``, ``title``, ``location`` ...) and stream tags
  (``language``, ``handler_name``), less those that describe the old encoding.

Subtitle, data (e.g. GoPro telemetry) and attachment streams are not written.

This module imports neither torch nor OpenCV at import time (:func:`is_video` is what the CLI needs
to route inputs); :func:`deblur_video` imports torch when called.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deblurcli.errors import VideoError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: File extensions treated as videos (lower case).
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts"})

#: Extensions written, mapped to FFmpeg's muxer names. MPEG-TS (.mts/.m2ts) is read but not written:
#: FFmpeg cannot tell which codecs its muxer holds, so such inputs get the fallback container.
MUXERS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}

#: Container tags not copied: they describe the input file's muxing, not the footage.
_DROP_CONTAINER_TAGS = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands"})
#: Stream tags not copied to the re-encoded video stream: they describe the old encoding (Matroska's
#: statistics tags would be wrong), or are written in another form (``rotate``: the display matrix).
_DROP_STREAM_TAGS = frozenset({"encoder", "duration", "bps", "number_of_frames", "number_of_bytes", "rotate", "vendor_id"})

#: swscale flags of the two conversions, chosen by measuring round trips (a 4:2:0 clip -> RGB ->
#: 4:2:0, identity in between, planes compared). Swscale's default (its fast path) biased luma by ~1
#: level everywhere. Bicubic chroma upsampling with full horizontal interpolation and accurate
#: rounding on the way in, area-averaged chroma with accurate rounding on the way out: luma within
#: 0.04 levels (mean), chroma within ~0.5-1.3. Nearest-neighbour ("point") chroma in 16-bit RGB was
#: exact (0.04-0.07) but hands the model 2-pixel chroma steps, which it would "sharpen".
_SWS_TO_RGB = 4 | 8192 | 262144  # BICUBIC | FULL_CHR_H_INT | ACCURATE_RND
_SWS_TO_YUV = 32 | 262144  # AREA | ACCURATE_RND

#: swscale ranges: what "unspecified" means for YUV (tv range, as FFmpeg assumes) and RGB (full).
_RANGE_MPEG, _RANGE_JPEG = 1, 2

DeblurFrames = Callable[["torch.Tensor"], "torch.Tensor"]


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video by its extension (:data:`VIDEO_EXTENSIONS`); torch-free.

    Args:
        path: a file name or path; the file need not exist.

    Returns:
        True for ``.mp4 .m4v .mov .mkv .webm .avi .mts .m2ts`` (any case).
    """
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoProgress:
    """What :func:`deblur_video` reports to ``on_progress`` after each batch (and once at the end).

    Attributes:
        frames_done: frames of the range encoded so far.
        frames_total: frames in the range (from a packet count before decoding).
        fps: frames processed per second of wall time so far.
        eta_seconds: estimated seconds left, or ``None`` before the first batch.
        blur_before: median blur score of the sampled input frames so far (``None`` before one).
        blur_after: median blur score of the same frames after ``deblur_frames``.
    """

    frames_done: int
    frames_total: int
    fps: float
    eta_seconds: float | None
    blur_before: float | None
    blur_after: float | None


@dataclass
class VideoResult:
    """The outcome of one :func:`deblur_video` call; :meth:`row` is its ``--json`` line.

    Attributes:
        source: the input path.
        path: the output written.
        frames: frames written.
        frame_range: ``[first, end)`` of the input's frames that were processed (0-based).
        seconds: wall time of the whole call.
        fps: frames processed per second of wall time.
        duration: seconds of footage written (last frame's time + its duration - first frame's).
        width, height: frame size (before rotation for display).
        codec: the encoder used; container: the muxer used.
        rotation: counter-clockwise display rotation in degrees (0 when none).
        audio_streams: number of audio streams copied; audio_codecs: their codec names.
        sample_every: every how many frames the blur score was sampled.
        blur_before, blur_after: blur score (see :mod:`deblurcli.blur`) of each sampled frame, before
            and after ``deblur_frames`` (the frame handed to the encoder, before lossy encoding).
    """

    source: str
    path: str
    frames: int = 0
    frame_range: list[int] = field(default_factory=list)
    seconds: float = 0.0
    fps: float = 0.0
    duration: float = 0.0
    width: int = 0
    height: int = 0
    codec: str = ""
    container: str = ""
    rotation: float = 0.0
    audio_streams: int = 0
    audio_codecs: list[str] = field(default_factory=list)
    sample_every: int = 1
    blur_before: list[float] = field(default_factory=list)
    blur_after: list[float] = field(default_factory=list)

    @property
    def blur_before_median(self) -> float | None:
        return float(np.median(self.blur_before)) if self.blur_before else None

    @property
    def blur_after_median(self) -> float | None:
        return float(np.median(self.blur_after)) if self.blur_after else None

    def row(self) -> dict[str, Any]:
        """A JSON-ready dict: every field, scores rounded, plus the two medians."""
        d = asdict(self)
        d["blur_before"] = [round(v, 3) for v in self.blur_before]
        d["blur_after"] = [round(v, 3) for v in self.blur_after]
        d["blur_before_median"] = _round(self.blur_before_median)
        d["blur_after_median"] = _round(self.blur_after_median)
        d["seconds"], d["fps"], d["duration"] = round(self.seconds, 3), round(self.fps, 3), round(self.duration, 6)
        return d


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def encoder_for(codec: str) -> Any:
    """The FFmpeg video encoder named ``codec``.

    Raises:
        VideoError: FFmpeg has no encoder of that name, or it does not encode video.
    """
    import av

    try:
        enc = av.codec.Codec(codec, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise VideoError(f"cannot write codec {codec!r}: FFmpeg has no encoder of that name (try libx264)") from None
    if enc.type != "video":
        raise VideoError(f"cannot write codec {codec!r}: it encodes {enc.type}, not video (try libx264)")
    return enc


def container_holds(muxer: str, codecs: Sequence[str]) -> bool:
    """Whether FFmpeg's muxer ``muxer`` can hold streams of every codec in ``codecs`` (codec names
    such as ``h264``, ``aac``; an encoder's name is turned into its codec's)."""
    import av

    out = av.open(io.BytesIO(), "w", format=muxer)
    try:
        supported = out.supported_codecs
    finally:
        out.close()
    return all(_codec_name(c) in supported for c in codecs)


def _codec_name(name: str) -> str:
    import av

    try:
        return av.codec.Codec(name, "w").canonical_name
    except (av.codec.codec.UnknownCodecError, ValueError):
        return name


def output_suffix(src: str | Path, codec: str = "libx264") -> str:
    """The extension of the output of ``src``: the same container where it can hold the new video
    codec and every audio codec copied, else ``.mp4`` where that can, else ``.mkv``.

    The input's own extension is kept as written (``.MOV`` stays ``.MOV``). MPEG-TS inputs
    (``.mts``, ``.m2ts``) always take the fallback (see :data:`MUXERS`).

    Args:
        src: the input video (opened to read its audio codecs).
        codec: the video encoder that will be used.

    Returns:
        An extension with its dot.

    Raises:
        VideoError: ``src`` cannot be opened as a video, or the codec is not a video encoder.
    """
    enc = encoder_for(codec)
    container = open_video(Path(src))
    try:
        audio = [s.codec_context.name for s in container.streams.audio]
    finally:
        container.close()
    suffix = Path(src).suffix
    wanted = [enc.name, *audio]
    for ext in (suffix, ".mp4", ".mkv"):
        muxer = MUXERS.get(ext.lower())
        if muxer and container_holds(muxer, wanted):
            return ext
    return ".mkv"  # pragma: no cover - Matroska holds every codec FFmpeg encodes


def open_video(path: Path) -> Any:
    """Open a video with PyAV (an ``av`` input container), or raise :class:`VideoError` with a
    one-line reason: missing, not a regular file, empty, unreadable, or without a video stream.
    ``deblur make-pairs`` opens its videos with it too."""
    import av

    from deblurcli.images import file_problem

    if not path.exists():
        raise VideoError(f"{path}: no such file")
    problem = file_problem(path, "video")
    if problem:  # a FIFO or device: FFmpeg would block on it or read for ever
        raise VideoError(f"{path}: {problem}")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{path}: not a video FFmpeg can read, corrupt or truncated ({_reason(e)})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        what = "an audio-only file" if kinds == ["audio"] else f"streams: {', '.join(kinds)}" if kinds else "no streams"
        raise VideoError(f"{path}: no video stream ({what})")
    return container


def _reason(e: BaseException) -> str:
    """FFmpeg's reason, without the file name PyAV appends (the message already starts with it)."""
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).splitlines()[0] if msg else type(e).__name__


@dataclass
class _Probe:
    """What a demux-only pass and the first decoded frame tell about a video."""

    pts: list[int]  # presentation timestamps of the video packets, sorted (frame i has pts[i])
    first: Any  # the first decoded av.VideoFrame
    time_base: Any  # fractions.Fraction of the video stream
    audio_codecs: list[str]


def _probe(path: Path) -> _Probe:
    """Count the video's frames from its packets (demux only, ~1% of decoding) and decode the first.

    Raises:
        VideoError: unreadable, zero frames, a file shorter than its header declares (truncated),
            or undecodable.
    """
    import av

    container = open_video(path)
    try:
        stream = container.streams.video[0]
        pts: list[int] = []
        first = None
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    pts.append(int(packet.pts))
                if first is None and (packet.size or pts):
                    # Decode until the first frame comes out (the decoder may hold a few packets).
                    for frame in packet.decode():
                        first = frame
                        break
        except av.FFmpegError as e:
            raise VideoError(f"{path}: corrupt video, demuxing failed after {len(pts)} packets ({_reason(e)})") from None
        if not pts:
            raise VideoError(f"{path}: zero-length video (no frames)")
        if first is None:
            raise VideoError(f"{path}: corrupt video, no frame could be decoded from {len(pts)} packets")
        declared = int(stream.frames or 0)
        # mp4/mov headers give an exact frame count: fewer packets means the file was cut short
        # (a mid-file cut keeps the moov atom only when it was written first, "faststart").
        if declared and len(pts) < declared:
            raise VideoError(f"{path}: truncated video: {len(pts)} frames of the {declared} its header declares")
        return _Probe(sorted(pts), first, stream.time_base, [s.codec_context.name for s in container.streams.audio])
    finally:
        container.close()


def _display_matrix(frame: Any, stream: Any) -> list[int] | None:
    """The input's display matrix (9 int32 in FFmpeg's layout), from the frame's side data (FFmpeg
    attaches the stream's to each decoded frame) or else the old ``rotate`` tag; ``None`` if none."""
    for sd in frame.side_data:
        if sd.type.name == "DISPLAYMATRIX":
            return [int(v) for v in np.frombuffer(bytes(sd), dtype=np.int32)[:9]]
    rotate = stream.metadata.get("rotate")
    if rotate:
        try:
            # The tag is clockwise degrees; a display matrix of -angle (counter-clockwise) is the same turn.
            return _rotation_matrix(-float(rotate))
        except ValueError:
            return None
    return None


def _rotation_matrix(degrees_ccw: float) -> list[int]:
    """FFmpeg's ``av_display_rotation_set``: 16.16 fixed point, last column 2.30."""
    r = math.radians(degrees_ccw)
    c, s = math.cos(r), math.sin(r)
    fx = lambda v: int(round(v * (1 << 16)))  # noqa: E731
    return [fx(c), fx(-s), 0, fx(s), fx(c), 0, 0, 0, 1 << 30]


def _matrix_rotation(m: list[int] | None) -> float:
    """Counter-clockwise rotation (degrees) of a display matrix, as ``av_display_rotation_get``."""
    if not m:
        return 0.0
    sx, sy = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if not sx or not sy:
        return 0.0
    deg = -math.degrees(math.atan2(m[1] / sy, m[0] / sx))
    return float(round(deg, 6)) + 0.0  # +0.0: no "-0.0" in --json


@dataclass
class _Colour:
    """Colour tags of the input, and what swscale needs to convert YUV <-> RGB as the input means it."""

    color_range: int
    colorspace: int
    color_primaries: int
    color_trc: int
    high_depth: bool  # more than 8 bits per sample: convert through 16-bit RGB

    @classmethod
    def of(cls, frame: Any) -> _Colour:
        name = frame.format.name
        rng = int(frame.color_range)
        if not rng:
            # yuvj* formats are full range by definition; other YUV is tv range unless tagged.
            rng = _RANGE_JPEG if name.startswith("yuvj") else _RANGE_MPEG
        bits = max((c.bits for c in frame.format.components), default=8)
        return cls(rng, int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc), bits > 8)

    @property
    def rgb_format(self) -> str:
        return "rgb48le" if self.high_depth else "rgb24"

    @property
    def scale(self) -> float:
        return 65535.0 if self.high_depth else 255.0

    def sws_colorspace(self) -> int | None:
        # Unspecified (2) or RGB/unknown matrices: swscale's default (BT.601) both ways, a round trip.
        return self.colorspace if self.colorspace in (1, 4, 5, 6, 7, 9, 10) else None


def _pix_fmt(enc: Any, src_fmt: str) -> str:
    """The encoder's pixel format: the input's where the encoder takes it, else yuv420p, else its first.
    ``yuvj*`` (deprecated) becomes ``yuv*`` tagged full range."""
    fmts = [f.name for f in (enc.video_formats or [])]
    want = src_fmt.replace("yuvj", "yuv")
    if not fmts or want in fmts:
        return want
    return "yuv420p" if "yuv420p" in fmts else fmts[0]


def _copy_tags(dst: Any, src: dict[str, str], drop: frozenset[str]) -> None:
    for k, v in src.items():
        lk = k.lower()
        if lk in drop or lk.startswith("_statistics"):
            continue
        dst[k] = v


class _Writer:
    """One output file: a temp file beside ``dst`` renamed over it by :meth:`commit`, so an
    interrupted run leaves no half-written output (:meth:`abort` removes the temp file)."""

    def __init__(self, dst: Path, muxer: str) -> None:
        import av

        self.dst = dst
        prefix = f".{dst.name[:200]}."
        try:
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=dst.parent)
        except OSError as e:
            raise VideoError(f"{dst}: cannot write: {e.strerror or e}") from None
        os.close(fd)
        self.tmp = Path(tmp)
        try:
            # The temp name ends in .tmp: the muxer is named, not guessed from it.
            self.container = av.open(str(self.tmp), "w", format=muxer)
        except (av.FFmpegError, OSError) as e:
            self.tmp.unlink(missing_ok=True)
            raise VideoError(f"{dst}: cannot write: {_reason(e)}") from None
        self.video: Any = None
        self.audio: dict[int, Any] = {}  # input stream index -> output stream

    def mux(self, packets: Any) -> None:
        for p in packets:
            self.container.mux(p)

    def commit(self) -> None:
        from deblurcli.images import new_file_mode

        self.container.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(self.tmp, new_file_mode(self.dst))
        os.replace(self.tmp, self.dst)

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a half-written file may fail; it is removed anyway
            pass
        self.tmp.unlink(missing_ok=True)


def deblur_video(
    src: str | Path,
    dst: str | Path,
    deblur_frames: DeblurFrames,
    *,
    codec: str = "libx264",
    crf: int | None = 18,
    frames: tuple[int, int | None] | None = None,
    batch: int = 4,
    samples: int = 16,
    encoder_options: dict[str, str] | None = None,
    on_progress: Callable[[VideoProgress], None] | None = None,
) -> VideoResult:
    """Deblur every frame of a video, keeping audio, timestamps, rotation, colour tags and metadata.

    Output container: taken from ``dst``'s extension (:data:`MUXERS`); it must hold ``codec`` and
    every audio codec of the input. :func:`output_suffix` gives the extension that follows the rule
    "the input's container where it can hold them, else .mp4 where that can, else .mkv".

    Args:
        src: the input video.
        dst: the output file; its folder must exist. An existing file is replaced, only at the end
            (the video is written to a hidden temp file beside it, then renamed).
        deblur_frames: takes a (B, 3, H, W) float32 RGB tensor in [0, 1] on the CPU and returns one
            of the same shape (any device; values are clamped to [0, 1]).
        codec: a video encoder FFmpeg offers (``libx264``, ``libx265``, ``libvpx-vp9``, ``mpeg4``...).
        crf: constant rate factor, for encoders that have one (x264/x265/VP9/AV1; lower is better,
            18 is visually lossless for x264); ignored by others. ``None``: the encoder's default.
        frames: ``(first, end)``, 0-based, end exclusive (``None``: to the end): only those frames
            are written, shifted to start at time 0, with the audio of the same span (cut at packet
            boundaries, ~20 ms for AAC). Default: every frame, timestamps unchanged.
        batch: frames per call to ``deblur_frames``.
        samples: about how many frames (spread evenly over the range) get a blur score.
        encoder_options: extra FFmpeg encoder options (e.g. ``{"preset": "slow"}``).
        on_progress: called with a :class:`VideoProgress` after each batch and at the end.

    Returns:
        A :class:`VideoResult`.

    Raises:
        VideoError: with a one-line message for: a missing, empty, corrupt or truncated file; no
            video stream (an audio-only file); zero frames; a resolution change mid-stream; a codec
            FFmpeg cannot encode video with, or an output container that cannot hold the streams;
            a frame range outside the video; ``deblur_frames`` returning another shape; a write failure.
        ValueError: ``batch`` or ``samples`` below 1, or a malformed ``frames``.
    """
    import av

    src, dst = Path(src), Path(dst)
    if batch < 1 or samples < 1:
        raise ValueError(f"batch and samples must be at least 1, got {batch} and {samples}")
    t_start = time.perf_counter()
    enc = encoder_for(codec)
    muxer = MUXERS.get(dst.suffix.lower())
    if muxer is None:
        raise VideoError(f"{dst}: cannot write a video with extension {dst.suffix!r} (use {', '.join(sorted(MUXERS))})")
    if not dst.parent.is_dir():
        raise VideoError(f"{dst}: output folder {dst.parent} does not exist")
    probe = _probe(src)
    n = len(probe.pts)
    first, end = _frame_range(frames, n, src)
    if not container_holds(muxer, [enc.name, *probe.audio_codecs]):
        held = ", ".join([enc.canonical_name, *probe.audio_codecs])
        raise VideoError(f"{dst}: the {muxer} container cannot hold {held} (use {output_suffix(src, codec)})")

    result = VideoResult(source=str(src), path=str(dst), frame_range=[first, end], codec=enc.name, container=muxer)
    every = result.sample_every = max(1, math.ceil((end - first) / samples))
    tb = probe.time_base
    # A range starts at time 0: shift video and audio by the first frame's time.
    t0 = float(probe.pts[first] * tb) if frames is not None else 0.0
    t_end = float(probe.pts[end] * tb) if end < n else math.inf
    offset_pts = probe.pts[first] if frames is not None else 0

    container = open_video(src)
    writer: _Writer | None = None
    try:
        vin = container.streams.video[0]
        vin.thread_type = "AUTO"  # FFmpeg's frame/slice threads; frames still come out in order
        ain = list(container.streams.audio)
        writer = _Writer(dst, muxer)
        colour = _Colour.of(probe.first)
        matrix = _display_matrix(probe.first, vin)
        result.rotation = _matrix_rotation(matrix)
        result.width, result.height = probe.first.width, probe.first.height
        _setup_output(writer, container, vin, ain, enc, probe, colour, matrix, crf, encoder_options, src, dst)
        result.audio_streams, result.audio_codecs = len(ain), list(probe.audio_codecs)

        pump = _Pump(
            src=src, writer=writer, deblur_frames=deblur_frames, colour=colour, result=result, first=first,
            end=end, batch=batch, every=every, time_base=tb, offset_pts=offset_pts,
            t0=t0 if frames is not None else None, t_end=t_end, size=(probe.first.width, probe.first.height),
            on_progress=on_progress, t_start=t_start,
        )
        pump.run(container, vin, ain)
        try:
            writer.mux(writer.video.encode(None))
            writer.commit()
        except av.FFmpegError as e:
            raise VideoError(f"{dst}: encoding failed ({_reason(e)})") from None
        except OSError as e:
            raise VideoError(f"{dst}: cannot write: {e.strerror or e}") from None
        writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        container.close()
    result.seconds = time.perf_counter() - t_start
    result.fps = result.frames / result.seconds if result.seconds > 0 else 0.0
    total = end - first
    if on_progress is not None:
        on_progress(VideoProgress(result.frames, total, result.fps, 0.0, result.blur_before_median, result.blur_after_median))
    return result


@dataclass
class _Pump:
    """The decoding loop of :func:`deblur_video`: demux, decode the range's frames into batches,
    deblur and encode each batch, copy audio packets; fills ``result.frames`` and ``duration``."""

    src: Path
    writer: _Writer
    deblur_frames: DeblurFrames
    colour: _Colour
    result: VideoResult
    first: int
    end: int
    batch: int
    every: int
    time_base: Any
    offset_pts: int
    t0: float | None  # start of a range, in seconds (None: the whole video, nothing shifted)
    t_end: float
    size: tuple[int, int]
    on_progress: Callable[[VideoProgress], None] | None
    t_start: float
    index: int = -1
    last_pts: int | None = None
    first_pts: int | None = None
    pending: list[tuple[int, int, Any]] = field(default_factory=list)  # (index in range, pts, RGB)

    def run(self, container: Any, vin: Any, ain: list[Any]) -> None:
        import av

        audio_left = {s.index for s in ain}
        try:
            for packet in container.demux(vin, *ain):
                if packet.stream.type == "audio":
                    _mux_audio(packet, self.writer, tb_offset=self.t0, t_end=self.t_end, left=audio_left)
                elif self.index < self.end - 1:
                    for frame in packet.decode():
                        self.frame(frame)
                if self.index >= self.end - 1 and not audio_left:
                    break  # past the range, and the audio of the span is copied
        except av.FFmpegError as e:
            raise VideoError(f"{self.src}: corrupt video, decoding failed after frame {self.index} ({_reason(e)})") from None
        if self.pending:
            self.flush()
        if self.result.frames == 0:
            raise VideoError(f"{self.src}: no frame in range {self.first}:{self.end} could be decoded")

    def frame(self, frame: Any) -> None:
        self.index += 1
        i = self.index
        if (frame.width, frame.height) != self.size:
            w, h = self.size
            raise VideoError(f"{self.src}: resolution changes mid-stream at frame {i} ({w}x{h} -> {frame.width}x{frame.height})")
        if i < self.first or i >= self.end:
            return
        pts = frame.pts
        if pts is None:  # rare (old AVI): the previous one + 1 tick
            pts = 0 if self.last_pts is None else self.last_pts + 1
        self.last_pts = pts = int(pts)
        if self.first_pts is None:
            self.first_pts = pts
        self.result.duration = float((pts - self.first_pts + (frame.duration or 0)) * self.time_base)
        c = self.colour
        rgb = frame.reformat(
            format=c.rgb_format, src_colorspace=c.sws_colorspace(), src_color_range=c.color_range,
            dst_color_range=_RANGE_JPEG, interpolation=_SWS_TO_RGB, threads=1,
        ).to_ndarray()
        self.pending.append((i - self.first, pts - self.offset_pts, rgb))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        _encode_batch(self.pending, self.deblur_frames, self.writer, self.colour, self.every, self.result, self.src)
        self.result.frames += len(self.pending)
        self.pending.clear()
        total = self.end - self.first
        if self.on_progress is not None and self.result.frames < total:  # the last report: once the file is complete
            el = time.perf_counter() - self.t_start
            done = self.result.frames
            fps = done / el if el > 0 else 0.0
            eta = (total - done) / fps if fps > 0 else None
            self.on_progress(VideoProgress(done, total, fps, eta, self.result.blur_before_median, self.result.blur_after_median))


def _frame_range(frames: tuple[int, int | None] | None, n: int, src: Path) -> tuple[int, int]:
    """``(first, end)`` clipped to the video's ``n`` frames."""
    if frames is None:
        return 0, n
    if len(frames) != 2:
        raise ValueError(f"frames must be (first, end), got {frames!r}")
    a, b = frames
    if a < 0 or (b is not None and b <= a):
        raise ValueError(f"frames must be (first, end) with 0 <= first < end, got {frames!r}")
    if a >= n:
        raise VideoError(f"{src}: frame range starts at {a}, but the video has {n} frames")
    return a, n if b is None else min(b, n)


def _setup_output(
    writer: _Writer, container: Any, vin: Any, ain: list[Any], enc: Any, probe: _Probe, colour: _Colour,
    matrix: list[int] | None, crf: int | None, encoder_options: dict[str, str] | None, src: Path, dst: Path,
) -> None:
    """Add the output's video stream (same size, time base, colour tags, display matrix) and one
    copied stream per input audio stream; copy container and stream tags."""
    import av

    out = writer.container
    _copy_tags(out.metadata, dict(container.metadata), _DROP_CONTAINER_TAGS)
    rate = vin.average_rate or vin.guessed_rate
    options = dict(encoder_options or {})
    if crf is not None and enc.name in ("libx264", "libx265", "libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"):
        options.setdefault("crf", str(crf))
        if enc.name in ("libvpx-vp9", "libvpx"):
            options.setdefault("b", "0")  # constant quality, not capped by a default bit rate
    try:
        v = out.add_stream(enc.name, rate=rate, options=options)
    except (av.FFmpegError, ValueError) as e:
        raise VideoError(f"{dst}: cannot set up encoder {enc.name} ({_reason(e)})") from None
    v.width, v.height = probe.first.width, probe.first.height
    v.pix_fmt = _pix_fmt(enc, probe.first.format.name)
    # The encoder and the stream count in the input's time base, so every pts is carried over as is.
    v.time_base = probe.time_base
    v.codec_context.time_base = probe.time_base
    cc = v.codec_context
    cc.color_range = colour.color_range
    cc.colorspace, cc.color_primaries, cc.color_trc = colour.colorspace, colour.color_primaries, colour.color_trc
    if vin.sample_aspect_ratio:
        cc.sample_aspect_ratio = vin.sample_aspect_ratio
    if matrix is not None:
        v.set_display_matrix(matrix)
    _copy_tags(v.metadata, dict(vin.metadata), _DROP_STREAM_TAGS)
    writer.video = v
    for s in ain:
        a = out.add_stream_from_template(s)
        a.time_base = s.time_base
        _copy_tags(a.metadata, dict(s.metadata), frozenset({"encoder"}))
        writer.audio[s.index] = a


def _mux_audio(packet: Any, writer: _Writer, *, tb_offset: float | None, t_end: float, left: set[int]) -> None:
    """Copy one audio packet if it starts before ``t_end``; with a range (``tb_offset`` seconds, the
    range's start), only packets from there on, shifted to start at 0."""
    if packet.dts is None or packet.pts is None:
        left.discard(packet.stream.index)  # the end-of-stream flush packet
        return
    tb = packet.time_base
    t = float(packet.pts * tb)
    if t >= t_end:
        left.discard(packet.stream.index)
        return
    if tb_offset is None:
        pass  # the whole video: every packet, timestamps as they are (AAC priming packets included)
    elif t < tb_offset:
        return
    else:
        shift = round(tb_offset / tb)
        packet.pts -= shift
        packet.dts -= shift
    packet.stream = writer.audio[packet.stream.index]
    writer.container.mux(packet)


def _encode_batch(
    pending: list[tuple[int, int, Any]], deblur_frames: DeblurFrames, writer: _Writer | None, colour: _Colour,
    every: int, result: VideoResult, src: Path,
) -> None:
    """Run ``deblur_frames`` on a batch of (index in range, pts, RGB) frames, score the sampled ones,
    encode and mux the results."""
    import av
    import torch

    assert writer is not None
    scale = colour.scale
    arr = np.stack([rgb for _, _, rgb in pending])
    x = torch.from_numpy(arr.astype(np.float32) / scale).permute(0, 3, 1, 2).contiguous()
    y = deblur_frames(x)
    if not torch.is_tensor(y) or tuple(y.shape) != tuple(x.shape):
        raise VideoError(f"{src}: the deblur function returned {getattr(y, 'shape', type(y))}, expected {tuple(x.shape)}")
    dtype = np.uint16 if colour.high_depth else np.uint8
    out = (y.detach().float().cpu().clamp(0.0, 1.0) * scale).round().permute(0, 2, 3, 1).numpy().astype(dtype)
    v = writer.video
    sws_cs = colour.sws_colorspace()
    for k, (rel, pts, rgb) in enumerate(pending):
        if rel % every == 0:
            result.blur_before.append(_score(rgb))
            result.blur_after.append(_score(out[k]))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(out[k]), format=colour.rgb_format)
        yuv = frame.reformat(
            format=v.pix_fmt, dst_colorspace=sws_cs, src_color_range=_RANGE_JPEG,
            dst_color_range=colour.color_range, interpolation=_SWS_TO_YUV, threads=1,
        )
        # Tags travel with the frame too: some encoders take them from frames, not the context.
        yuv.color_range = colour.color_range
        yuv.colorspace, yuv.color_primaries, yuv.color_trc = colour.colorspace, colour.color_primaries, colour.color_trc
        yuv.pts = pts
        yuv.time_base = v.codec_context.time_base
        try:
            writer.mux(v.encode(yuv))
        except av.FFmpegError as e:
            raise VideoError(f"{writer.dst}: encoding with {v.codec_context.name} failed ({_reason(e)})") from None


def _score(rgb: np.ndarray) -> float:
    """Blur score (:func:`deblurcli.blur.blur_score`) of an 8- or 16-bit RGB frame."""
    import cv2

    from deblurcli.blur import blur_score

    if rgb.dtype == np.uint16:
        rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)  # nearest 8-bit level
    return blur_score(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
