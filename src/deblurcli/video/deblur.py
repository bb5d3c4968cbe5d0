"""Deblur every frame of a video: :func:`deblur_video`, its progress reports and its result."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deblurcli.errors import VideoError
from deblurcli.video.formats import (
    MUXERS,
    container_holds,
    encoder_for,
    ffmpeg_reason,
    open_video,
    output_suffix,
)
from deblurcli.video.frames import (
    RANGE_JPEG,
    SWS_TO_RGB,
    SWS_TO_YUV,
    Colour,
    display_matrix,
    matrix_rotation,
    probe_video,
)
from deblurcli.video.writer import Writer, mux_copied, setup_output

if TYPE_CHECKING:  # pragma: no cover
    import torch

DeblurFrames = Callable[["torch.Tensor"], "torch.Tensor"]


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
        subtitle_codecs: codec names of the subtitle streams copied (packet for packet).
        dropped_streams: the input's streams not written, as ``"#2 data (tmcd)"``: data streams
            (telemetry, timecode tracks: a timecode tag of the video stream is kept and the muxer
            writes its own), attachments, and subtitles the output container cannot hold.
        sample_every: every how many frames the blur score was sampled.
        compare: the side-by-side video written (``compare=`` of :func:`deblur_video`), or ``None``.
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
    subtitle_codecs: list[str] = field(default_factory=list)
    dropped_streams: list[str] = field(default_factory=list)
    sample_every: int = 1
    compare: str | None = None
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
    compare: str | Path | None = None,
) -> VideoResult:
    """Deblur every frame of a video, keeping audio, subtitles, timestamps, rotation, colour tags and metadata.

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
        compare: also write this file (same rules as ``dst``, written the same way): each frame's
            input and result side by side, input on the left as the video is displayed (for a
            rotated video the halves are stacked so that its rotation puts them side by side),
            with the same timestamps, audio, codec and tags.

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
    outputs = [dst] if compare is None else [dst, Path(compare)]
    for out in outputs:
        _check_output(out)
    probe = probe_video(src)
    n = len(probe.pts)
    first, end = _frame_range(frames, n, src)
    for out in outputs:
        muxer = MUXERS[out.suffix.lower()]
        if not container_holds(muxer, [enc.name, *probe.audio_codecs]):
            held = ", ".join([enc.canonical_name, *probe.audio_codecs])
            raise VideoError(f"{out}: the {muxer} container cannot hold {held} (use {output_suffix(src, codec)})")

    result = VideoResult(source=str(src), path=str(dst), frame_range=[first, end], codec=enc.name,
                         container=MUXERS[dst.suffix.lower()], compare=None if compare is None else str(compare))
    every = result.sample_every = max(1, math.ceil((end - first) / samples))
    tb = probe.time_base
    # A range starts at time 0: shift video and audio by the first frame's time (None: nothing shifted).
    t0 = float(probe.pts[first] * tb) if frames is not None else None
    t_end = float(probe.pts[end] * tb) if end < n else math.inf
    offset_pts = probe.pts[first] if frames is not None else 0

    container = open_video(src)
    writers: list[Writer] = []
    try:
        vin = container.streams.video[0]
        vin.thread_type = "AUTO"  # FFmpeg's frame/slice threads; frames still come out in order
        ain = list(container.streams.audio)
        subs = [s for s in container.streams.subtitles
                if all(container_holds(MUXERS[out.suffix.lower()], [s.codec_context.name]) for out in outputs)]
        copied = [*ain, *subs]
        result.subtitle_codecs = [s.codec_context.name for s in subs]
        result.dropped_streams = [_stream_label(s) for s in container.streams if s is not vin and s not in copied]
        colour = Colour.of(probe.first)
        matrix = display_matrix(probe.first, vin)
        result.rotation = matrix_rotation(matrix)
        w, h = result.width, result.height = probe.first.width, probe.first.height
        layout = _side_by_side(matrix)
        for k, out in enumerate(outputs):
            writers.append(Writer(out, MUXERS[out.suffix.lower()]))
            size = None if k == 0 else (2 * w, h) if layout in ("io", "oi") else (w, 2 * h)
            setup_output(writers[-1], container, vin, copied, enc, probe, colour, matrix, crf, encoder_options, src, out, size)
        result.audio_streams, result.audio_codecs = len(ain), list(probe.audio_codecs)

        pump = _Pump(
            src=src, writers=writers, layout=layout, deblur_frames=deblur_frames, colour=colour, result=result, first=first,
            end=end, batch=batch, every=every, time_base=tb, offset_pts=offset_pts,
            t0=t0, t_end=t_end, size=(w, h),
            on_progress=on_progress, t_start=t_start,
        )
        pump.run(container, vin, ain, subs)
        for writer in writers:
            try:
                writer.mux(writer.video.encode(None))
                writer.close()
            except av.FFmpegError as e:
                raise VideoError(f"{writer.dst}: encoding failed ({ffmpeg_reason(e)})") from None
            except OSError as e:
                raise VideoError(f"{writer.dst}: cannot write: {e.strerror or e}") from None
        # Renamed into place only once every file is complete: a failure leaves none of them.
        while writers:
            writers[-1].commit()
            writers.pop()
    except BaseException:
        for writer in writers:
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


def _stream_label(s: Any) -> str:
    """``#2 data (tmcd)``: an input stream's index, type and codec (or handler) name."""
    cc = s.codec_context
    name = (cc.name if cc is not None else None) or s.metadata.get("handler_name") or "unknown"
    return f"#{s.index} {s.type} ({name})"


def _check_output(dst: Path) -> None:
    """Raise :class:`VideoError` if ``dst`` cannot be written: an extension without a muxer, or a
    missing folder. (``dst`` may be ``src``: it is replaced only at the end, from a temp file.)"""
    if dst.suffix.lower() not in MUXERS:
        raise VideoError(f"{dst}: cannot write a video with extension {dst.suffix!r} (use {', '.join(sorted(MUXERS))})")
    if not dst.parent.is_dir():
        raise VideoError(f"{dst}: output folder {dst.parent} does not exist")


def _side_by_side(matrix: list[int] | None) -> str:
    """How the compare video lays out input (i) and output (o) in the stored frame so that the input
    shows on the left once a player applies the display matrix: ``"io"``/``"oi"`` left to right,
    ``"i/o"``/``"o/i"`` top to bottom.

    FFmpeg's matrix maps a stored point (p, q) to (a*p + c*q, b*p + d*q) on screen (both with y
    down): the stored axis whose image is horizontal on screen is the one to lay the halves along,
    and the sign says which end lands on the left. A phone's portrait video (a 90 degree clockwise
    turn at playback) shows its stored bottom on the left, so the input goes at the bottom.
    """
    if not matrix:
        return "io"
    a, b, c = matrix[0], matrix[1], matrix[3]
    if abs(a) >= abs(b):  # stored rows stay horizontal on screen
        return "io" if a > 0 else "oi"
    return "i/o" if c > 0 else "o/i"


def _compose(layout: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Input ``a`` and output ``b`` (H, W, 3) in one frame, laid out as :func:`_side_by_side` says."""
    first, second = (a, b) if layout in ("io", "i/o") else (b, a)
    return np.concatenate([first, second], axis=1 if layout in ("io", "oi") else 0)


@dataclass
class _Pump:
    """The decoding loop of :func:`deblur_video`: demux, decode the range's frames into batches,
    deblur and encode each batch, copy audio and subtitle packets; fills ``result.frames`` and ``duration``."""

    src: Path
    writers: list[Writer]  # the output, and the side-by-side video if one is written
    layout: str  # of the side-by-side video, see _side_by_side
    deblur_frames: DeblurFrames
    colour: Colour
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

    def run(self, container: Any, vin: Any, ain: list[Any], subs: list[Any]) -> None:
        import av

        # Only audio holds the loop past the range: subtitles are sparse, and may never reach t_end.
        audio_left = {s.index for s in ain}
        try:
            for packet in container.demux(vin, *ain, *subs):
                if packet.stream.type in ("audio", "subtitle"):
                    mux_copied(packet, self.writers, tb_offset=self.t0, t_end=self.t_end, left=audio_left)
                elif self.index < self.end - 1:
                    for frame in packet.decode():
                        self.frame(frame)
                if self.index >= self.end - 1 and not audio_left:
                    break  # past the range, and the audio of the span is copied
        except av.FFmpegError as e:
            raise VideoError(f"{self.src}: corrupt video, decoding failed after frame {self.index} ({ffmpeg_reason(e)})") from None
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
            dst_color_range=RANGE_JPEG, interpolation=SWS_TO_RGB, threads=1,
        ).to_ndarray()
        self.pending.append((i - self.first, pts - self.offset_pts, rgb))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        _encode_batch(self.pending, self.deblur_frames, self.writers, self.layout, self.colour, self.every, self.result, self.src)
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


def _encode_batch(
    pending: list[tuple[int, int, Any]], deblur_frames: DeblurFrames, writers: list[Writer], layout: str,
    colour: Colour, every: int, result: VideoResult, src: Path,
) -> None:
    """Run ``deblur_frames`` on a batch of (index in range, pts, RGB) frames, score the sampled ones,
    encode and mux the results (and, into a second writer, input and result side by side)."""
    import torch

    scale = colour.scale
    arr = np.stack([rgb for _, _, rgb in pending])
    x = torch.from_numpy(arr.astype(np.float32) / scale).permute(0, 3, 1, 2).contiguous()
    y = deblur_frames(x)
    if not torch.is_tensor(y) or tuple(y.shape) != tuple(x.shape):
        raise VideoError(f"{src}: the deblur function returned {getattr(y, 'shape', type(y))}, expected {tuple(x.shape)}")
    dtype = np.uint16 if colour.high_depth else np.uint8
    out = (y.detach().float().cpu().clamp(0.0, 1.0) * scale).round().permute(0, 2, 3, 1).numpy().astype(dtype)
    for k, (rel, pts, rgb) in enumerate(pending):
        if rel % every == 0:
            result.blur_before.append(_score(rgb))
            result.blur_after.append(_score(out[k]))
        _encode_frame(writers[0], out[k], pts, colour)
        if len(writers) > 1:
            _encode_frame(writers[1], _compose(layout, rgb, out[k]), pts, colour)


def _encode_frame(writer: Writer, rgb: np.ndarray, pts: int, colour: Colour) -> None:
    """Convert one RGB frame to the writer's pixel format (the input's matrix and range), encode and mux it."""
    import av

    v = writer.video
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=colour.rgb_format)
    yuv = frame.reformat(
        format=v.pix_fmt, dst_colorspace=colour.sws_colorspace(), src_color_range=RANGE_JPEG,
        dst_color_range=colour.color_range, interpolation=SWS_TO_YUV, threads=1,
    )
    # Tags travel with the frame too: some encoders take them from frames, not the context.
    yuv.color_range = colour.color_range
    yuv.colorspace, yuv.color_primaries, yuv.color_trc = colour.colorspace, colour.color_primaries, colour.color_trc
    yuv.pts = pts
    yuv.time_base = v.codec_context.time_base
    try:
        writer.mux(v.encode(yuv))
    except av.FFmpegError as e:
        raise VideoError(f"{writer.dst}: encoding with {v.codec_context.name} failed ({ffmpeg_reason(e)})") from None


def _score(rgb: np.ndarray) -> float:
    """Blur score (:func:`deblurcli.blur.blur_score`) of an 8- or 16-bit RGB frame."""
    import cv2

    from deblurcli.blur import blur_score

    if rgb.dtype == np.uint16:
        rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)  # nearest 8-bit level
    return blur_score(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
