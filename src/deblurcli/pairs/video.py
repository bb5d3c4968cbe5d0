"""Pairs from videos: decoding (PyAV, streaming, in constant memory), window sampling, and the
pairing pass (:class:`_VideoPass`, one decoding pass whose steps are its methods).

Windows of M consecutive frames are sampled over the video and rejected when they span a scene cut,
contain a flash or a fade, or are static (:mod:`deblurcli.pairs.detect`); the others are averaged
(:mod:`deblurcli.pairs.average`) and written (:mod:`deblurcli.pairs.store`).

Imports :mod:`~deblurcli.pairs.average`, :mod:`~deblurcli.pairs.detect`,
:mod:`~deblurcli.pairs.store` and :mod:`~deblurcli.pairs.config` of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from deblurcli.pairs.average import _Interpolator, average_frames, average_frames_interpolated, linear_table
from deblurcli.pairs.config import REJECT_REASONS, PairsConfig, PairsProgress, SourceResult
from deblurcli.pairs.detect import (
    _THUMB,
    _fit,
    _gray,
    _hsv_features,
    content_score,
    luma_verdict,
    motion_fraction,
    transition_kind,
)
from deblurcli.pairs.store import Manifest, _check_settings, _pair_exists, _PairWriter

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future
    from pathlib import Path


def _synthesize_window(
    frames: list[np.ndarray], target_index: int, gamma: float, lut: np.ndarray, interp: "_Interpolator | None"
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(blurred, target, target's blur score, blurred's blur score) of one window of RGB frames.
    Runs on the :class:`_PairWriter`'s window thread (OpenCV releases the GIL)."""
    from deblurcli.blur import blur_score

    if interp is not None:
        blurred = average_frames_interpolated(frames, interp.k, gamma, interpolator=interp)
    else:
        blurred = average_frames(frames, gamma, table=lut)
    target = frames[target_index]
    return blurred, target, blur_score(_gray(target)), blur_score(_gray(blurred))


class _Pending(NamedTuple):
    """A window whose averaging runs on the writer's window thread, waiting for its static verdict."""

    start: int
    times: list[float | None]
    luma_shift: float
    motion: float
    job: "Future[tuple[np.ndarray, np.ndarray, float, float]]"
    resolve_at: int  # frame index by which the verdict must be taken


def _open_video(path: "Path"):
    """Open a video with PyAV, or raise :class:`VideoError` with a one-line reason."""
    from deblurcli.video import open_video

    return open_video(path)


def _count_frames(path: "Path") -> int:
    """Exact frame count from a demux-only pass (packets are not decoded, so this costs ~1% of
    decoding): container headers' counts are missing or wrong for many files."""
    import av

    from deblurcli.errors import VideoError

    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)
    except av.FFmpegError as e:
        raise VideoError(f"{path}: corrupt video ({e})") from None
    finally:
        container.close()


def _declared_frames(path: "Path") -> int | None:
    """The frame count a video's header declares (its frame count, or its duration x frame rate),
    or ``None`` when it declares neither: a truncated file holds fewer frames than that."""
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration and stream.time_base and rate:
            return round(float(stream.duration * stream.time_base) * float(rate))
        if container.duration and rate:
            return round(container.duration / 1_000_000 * float(rate))
        return None
    finally:
        container.close()


@dataclass
class _Buffered:
    index: int
    hsv: np.ndarray
    gray: np.ndarray  # thumbnail luma, float32
    time: float | None
    frame: object | None  # the decoded av.VideoFrame, until converted to ``rgb``
    rgb: np.ndarray | None = None  # full-size (after --max-side) RGB, made when a window needs it


class _Frames:
    """Turns decoded frames into what the pipeline needs, converting as little as possible.

    Most frames of a long video are never part of a pair (100 pairs of 8 frames use 800 frames
    whatever the video's length, and rejected windows stop before averaging), so the full-size RGB
    conversion (YUV -> RGB in swscale, ~0.25 ms per 640x360 frame, half the cost of decoding it) is
    done only when a window is averaged (:meth:`rgb`). The detectors' thumbnails come straight
    from the decoded frame: swscale scales and converts to a :data:`_THUMB`-px RGB image in one
    cheap step (bilinear; the detectors only use frame-wide means). Frames no larger than a
    thumbnail are converted at once and serve as their own thumbnail.
    """

    def __init__(self, max_side: int | None) -> None:
        from av.video.reformatter import VideoReformatter

        self.max_side = max_side
        # One reformatter per output size: each keeps its swscale context from frame to frame
        # (one shared by both sizes set its context up again at every switch: 0.74-1.3 ms against
        # 0.61 ms per frame for both conversions). Every conversion asks for threads=1: PyAV's
        # default (0, one swscale slice thread per core) gives the same pixels but cost ~0.5 ms
        # more per 640x360 frame on 2 cores (thread hand-offs that compete with FFmpeg's decoding
        # threads and ours): make-pairs' scan of a 30 s clip went from 0.94-1.04 s to 0.73-0.83 s.
        self.full = VideoReformatter()
        self.small = VideoReformatter()

    def size(self, frame) -> tuple[int, int]:
        """(width, height) of the RGB images (after ``max_side``)."""
        return _fit(frame.width, frame.height, self.max_side)

    def convert(self, frame) -> np.ndarray:
        """Full-size 8-bit RGB of a decoded frame, downscaled to ``max_side`` (area averaging)."""
        from deblurcli.images import resize_max_side

        rgb = self.full.reformat(frame, format="rgb24", threads=1).to_ndarray()
        return resize_max_side(rgb, self.max_side)

    def thumb(self, frame) -> tuple[np.ndarray, np.ndarray | None]:
        """(thumbnail, full RGB or None) of a decoded frame."""
        w, h = self.size(frame)
        if max(w, h) <= _THUMB:
            rgb = self.convert(frame)
            return rgb, rgb
        tw, th = _fit(w, h, _THUMB)
        small = self.small.reformat(frame, width=tw, height=th, format="rgb24", threads=1)
        return small.to_ndarray(), None

    def rgb(self, b: _Buffered) -> np.ndarray:
        """The full RGB of a buffered frame (converted on first use, then kept)."""
        if b.rgb is None:
            b.rgb = self.convert(b.frame)
            b.frame = None  # the decoded picture is no longer needed
        return b.rgb


def pairs_from_video(
    path: "Path",
    out: "Path",
    cfg: PairsConfig,
    manifest: Manifest,
    prefix: str,
    result: SourceResult,
    report: "Callable[[], None]" = lambda: None,
    progress: PairsProgress | None = None,
) -> None:
    """Make the pairs of one video (see :func:`make_pairs`); fills ``result`` as it goes, so that
    counts survive an error raised mid-stream.

    Sampling, in one decoding pass: the windows' start frames ``0..N-M`` are cut into ``samples``
    equal strata; in each, a seeded random start is tried, and while the window is rejected the
    start moves forward (past the cut or flash that rejected it; M/2 frames after a static window,
    at most 3 static tries) until a window passes or the stratum ends. Windows are examined as soon
    as their frames and the detector's look-ahead have been decoded, so memory holds only
    M + 3 frames (plus the pairs being averaged and written) whatever the video's length.
    Averaging and scoring a window runs on the writer's window thread while decoding goes on; its
    verdict is taken before the next window is examined, so the windows chosen are exactly those
    of a sequential pass.

    Raises:
        VideoError: unreadable/corrupt video, fewer than M frames, a resolution change mid-stream.
    """
    _VideoPass(path, out, cfg, manifest, prefix, result, report, progress).run()


class _VideoPass:
    """The pairing pass over one video (:func:`pairs_from_video`), one step per method.

    Set up (:meth:`__init__`): the frame count, the strata and their seeded first starts. Then
    :meth:`run` decodes; every frame is scored (:meth:`take`), transitions are judged once their
    look-ahead is decoded (:meth:`classify`), and :meth:`advance` examines each window that is
    ready (:meth:`evaluate`), whose static verdict (:meth:`resolve`) comes back from the writer's
    window thread. The sampling state is ``j`` (stratum), ``cand`` (next window start),
    ``static_tries`` (in this stratum) and ``pending`` (a :class:`_Pending` or ``None``).
    """

    def __init__(
        self,
        path: "Path",
        out: "Path",
        cfg: PairsConfig,
        manifest: Manifest,
        prefix: str,
        result: SourceResult,
        report: "Callable[[], None]",
        progress: PairsProgress | None,
    ) -> None:
        from collections import deque

        self.path, self.out, self.cfg, self.manifest, self.prefix = path, out, cfg, manifest, prefix
        self.result, self.report, self.progress = result, report, progress
        self.m, self.ti, self.k = cfg.frames, cfg.target_index, cfg.interpolate
        self.settings = cfg.settings("video")
        self.source = str(path)
        _check_settings(manifest, self.source, self.settings)
        self.n_est = self._check_length()
        if progress is not None:
            progress.frames_total = self.n_est
        self.strata, self.firsts = self._sample_starts()

        self.look = max(cfg.cut_window, 3)  # frames decoded past a frame before its cut/flash verdict
        self.buf: deque[_Buffered] = deque(maxlen=self.m + self.look + 1)
        self.scores: list[float] = []
        self.luma: list[float] = []
        self.kinds: dict[int, str] = {}  # frame index -> "cut" | "flash" (transition from index-1)
        self.rejected = result.rejected = {r: 0 for r in REJECT_REASONS}
        result.cuts, result.flashes, result.blur_ratio = [], [], []
        self.lut = linear_table(cfg.gamma)
        self.interp = _Interpolator(self.k) if self.k else None
        self.conv = _Frames(cfg.max_side)

        self.j = 0
        self.cand = self.firsts[0] if self.firsts else 0
        self.static_tries = 0
        self.pending: _Pending | None = None
        self.writer: _PairWriter | None = None
        self.size0: tuple[int, int] | None = None
        self.prev_hsv: np.ndarray | None = None

    # ---- set-up

    def _check_length(self) -> int:
        """The exact frame count; a one-line error when it is below M, a warning on ``result`` when
        the file holds fewer frames than its header declares."""
        from deblurcli.errors import VideoError

        path, m = self.path, self.m
        n_est = _count_frames(path)
        if n_est == 0:
            raise VideoError(f"{path}: zero-length video (no frames)")
        if n_est < m:
            from deblurcli.images import EXTENSIONS

            hint = "; for photos, use --from-stills" if n_est == 1 or path.suffix.lower() in EXTENSIONS else ""
            raise VideoError(f"{path}: only {n_est} frame{'s' if n_est != 1 else ''}, fewer than --frames {m}{hint}")
        declared = _declared_frames(path)
        if declared is not None and n_est < declared - max(2, declared // 50):
            self.result.warning = (
                f"{path}: the file ends early: {n_est} frames of the {declared} its header declares "
                "(truncated or damaged?); pairs were made from the frames present"
            )
        return n_est

    def _sample_starts(self) -> tuple[list[tuple[int, int]], list[int]]:
        """The strata of window starts and a seeded random first start in each."""
        import zlib

        n_windows = self.n_est - self.m + 1
        n_samples = self.cfg.samples or 100
        rng = np.random.default_rng([self.cfg.seed, zlib.crc32(self.prefix.encode())])
        if n_samples >= n_windows:
            strata = [(s, s + 1) for s in range(n_windows)]
        else:
            bounds = [j * n_windows // n_samples for j in range(n_samples + 1)]
            strata = [(bounds[j], bounds[j + 1]) for j in range(n_samples)]
        firsts = [int(rng.integers(a, b)) for a, b in strata]
        return strata, firsts

    # ---- decoding

    def run(self) -> None:
        """Decode the video once, examining windows as they become ready, and write the pairs."""
        from deblurcli.errors import VideoError

        container = _open_video(self.path)
        try:
            with _PairWriter(self.out, self.manifest) as writer:
                self.writer = writer
                last = self._decode(container)
                if last + 1 < self.m:
                    raise VideoError(f"{self.path}: only {last + 1} frames could be decoded, fewer than --frames {self.m}")
                for i in range(max(1, last - self.look + 1), last + 1):
                    self.classify(i, last)
                self.advance(last, final=True)
                if self.progress is not None:
                    self.progress.frames_decoded = last + 1
        finally:
            container.close()

    def _decode(self, container) -> int:  # type: ignore[no-untyped-def]
        """Feed every decoded frame to :meth:`take`; returns the last frame's index."""
        import av

        from deblurcli.errors import VideoError

        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg; frames still come in order
        rate = stream.average_rate or stream.guessed_rate
        self.result.fps = round(float(rate), 4) if rate else None
        idx = -1
        try:
            for frame in container.decode(stream):
                idx += 1
                self.take(idx, frame)
        except av.FFmpegError as e:
            raise VideoError(f"{self.path}: corrupt video, decoding failed after frame {idx}: {e}") from None
        return idx

    def take(self, idx: int, frame) -> None:  # type: ignore[no-untyped-def]
        """Score one decoded frame (content score, luma), buffer it, and examine what is ready."""
        from deblurcli.errors import VideoError

        result, conv = self.result, self.conv
        if self.size0 is None:
            self.size0 = (frame.width, frame.height)
        elif (frame.width, frame.height) != self.size0:
            raise VideoError(
                f"{self.path}: resolution changes mid-stream at frame {idx} "
                f"({self.size0[0]}x{self.size0[1]} -> {frame.width}x{frame.height})"
            )
        th, rgb = conv.thumb(frame)
        hsv = _hsv_features(th)
        g = _gray(th).astype(np.float32)
        self.scores.append(content_score(self.prev_hsv, hsv) if self.prev_hsv is not None else 0.0)
        self.luma.append(float(g.mean()))
        self.prev_hsv = hsv
        self.buf.append(_Buffered(idx, hsv, g, frame.time, None if rgb is not None else frame, rgb))
        result.frames = idx + 1
        result.size = conv.size(frame)
        if idx - self.look >= 1:
            self.classify(idx - self.look, idx)
        self.advance(idx)
        if self.progress is not None and idx % 10 == 0:
            self.progress.frames_decoded = idx + 1
            self.report()

    def by_index(self, i: int) -> _Buffered:
        return self.buf[i - self.buf[0].index]

    def classify(self, i: int, last: int) -> None:
        """Cut/flash verdict on the transition (i-1 -> i), once frames up to i+look are known."""
        cfg = self.cfg
        kind = transition_kind(
            self.scores, i, lambda a: self.by_index(a).hsv, self.buf[0].index, last,
            threshold=cfg.cut_threshold, min_score=cfg.cut_min_score, window=cfg.cut_window,
        )
        if kind is None:
            return
        self.kinds[i] = kind
        if kind == "flash":
            self.result.flashes.append(i)  # type: ignore[union-attr]
        else:
            self.result.cuts.append(i)  # type: ignore[union-attr]

    # ---- sampling

    def next_stratum(self, after: int) -> None:
        self.j += 1
        self.static_tries = 0
        if self.j < len(self.strata):
            self.cand = max(self.firsts[self.j], after)

    def move(self, to: int) -> None:
        if to >= self.strata[self.j][1]:
            self.next_stratum(to)
        else:
            self.cand = to

    def advance(self, idx: int, final: bool = False) -> None:
        """Examine every window whose frames (and the detectors' look-ahead) are decoded up to
        ``idx``; at most one verdict is pending at a time, and it is taken before the next window
        is examined, so the choice of windows is exactly that of a sequential pass."""
        ahead = 0 if final else self.look
        while True:
            if self.pending is not None:
                if not final and idx < self.pending.resolve_at:
                    return
                self.resolve()
            if self.j >= len(self.strata) or self.cand + self.m - 1 + ahead > idx:
                return
            self.evaluate(self.cand)

    def evaluate(self, s: int) -> None:
        """Examine the window starting at frame ``s``: reject it (cut, flash, fade, static on the
        thumbnails), keep an existing pair, or send it to be averaged (verdict in :meth:`resolve`)."""
        cfg, m, result, rejected = self.cfg, self.m, self.result, self.rejected
        result.windows_examined += 1
        e = s + m - 1
        flagged = [(i, self.kinds[i]) for i in range(s + 1, e + 1) if i in self.kinds]
        if flagged:
            reason = "cut" if any(kd == "cut" for _, kd in flagged) else "flash"
            rejected[reason] += 1
            self.move(max(i for i, _ in flagged))
            return
        shift, luma_reason = luma_verdict(self.luma[s : e + 1], self.ti, cfg.max_luma_shift)
        if luma_reason is not None:
            rejected[luma_reason] += 1
            self.move(s + 1)
            return
        name = f"{self.prefix}_{s:06d}-{e:06d}"
        if _pair_exists(self.out, name, self.manifest):
            result.pairs_kept += 1
            ratio = self.manifest.rows[name].get("blur_ratio")
            if isinstance(ratio, (int, float)):
                result.blur_ratio.append(float(ratio))  # type: ignore[union-attr]
            self.next_stratum(s + 1)
            return
        window = [self.by_index(i) for i in range(s, e + 1)]
        motion = motion_fraction(window[0].gray, window[-1].gray)
        if motion < cfg.min_motion:  # static on the thumbnails already: no need to average
            self.reject_static(s)
            return
        # Full-size RGB on this thread (PyAV 18 crashed converting one frame from two threads; and
        # converting on the window thread instead made that thread the bottleneck, with no gain).
        # Averaging and scoring go to the writer's window thread, and the verdict is taken in
        # resolve(), once decoding has reached the next window that could depend on it.
        frames = [self.conv.rgb(f) for f in window]
        job = self.writer.run(_synthesize_window, frames, self.ti, cfg.gamma, self.lut, self.interp)  # type: ignore[union-attr]
        self.pending = _Pending(s, [window[0].time, window[-1].time], shift, motion, job, self.resolve_at(s))

    def resolve_at(self, s: int) -> int:
        """The frame index by which the pending verdict on window ``s`` must be known: when the
        earliest window that could come next (a static retry, or the next stratum's start) is ready
        to be examined."""
        j, m = self.j, self.m
        nxt = [max(self.firsts[j + 1], s + 1)] if j + 1 < len(self.strata) else []
        retry = s + max(1, m // 2)
        if self.static_tries + 1 < 3 and retry < self.strata[j][1]:
            nxt.append(retry)
        return min(nxt) + m - 1 + self.look if nxt else self.n_est + self.look  # nothing after it: at the end

    def reject_static(self, s: int) -> None:
        self.rejected["static"] += 1
        self.static_tries += 1
        if self.static_tries >= 3:
            self.next_stratum(s + 1)
        else:
            self.move(s + max(1, self.m // 2))

    def resolve(self) -> None:
        """Take the pending window's static verdict; queue its pair for writing when it passes."""
        import functools

        p, self.pending = self.pending, None
        assert p is not None
        s, e = p.start, p.start + self.m - 1
        blurred, target, t_score, b_score = p.job.result()
        ratio = b_score / t_score if t_score > 0 else 1.0
        if ratio > self.cfg.static_ratio:
            self.reject_static(s)
            return
        name = f"{self.prefix}_{s:06d}-{e:06d}"
        row = {
            "name": name,
            "source": self.source,
            "kind": "video",
            "frames": [s, e],
            "target_frame": s + self.ti,
            "time": p.times,
            "fps": self.result.fps,
            "size": [int(target.shape[1]), int(target.shape[0])],
            "target_score": round(t_score, 3),
            "blurred_score": round(b_score, 3),
            "blur_ratio": round(ratio, 4),
            "motion": round(p.motion, 4),
            "luma_shift": round(p.luma_shift, 3),
            "verdict": "ok",
            "settings": self.settings,
        }
        self.writer.submit(name, blurred, target, row, functools.partial(self._written, ratio))  # type: ignore[union-attr]
        self.next_stratum(s + 1)

    def _written(self, ratio: float) -> None:
        """A pair's images and manifest row are in place (called by the writer, in order)."""
        self.result.pairs_written += 1
        self.result.blur_ratio.append(ratio)  # type: ignore[union-attr]
        self.report()
