"""What make-pairs is asked to do and what it reports: settings, progress, per-input results.

Plain dataclasses (:class:`PairsConfig`, :class:`PairsProgress`, :class:`SourceResult`,
:class:`PairsReport`); imports :mod:`deblurcli.pairs.average` and :mod:`deblurcli.pairs.stills` for
their defaults only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deblurcli import MAX_SEED
from deblurcli.pairs.average import DEFAULT_GAMMA
from deblurcli.pairs.stills import DEFAULT_MAX_BLUR

REJECT_REASONS = ("cut", "flash", "fade", "static")


@dataclass(frozen=True)
class PairsConfig:
    """Settings of :func:`make_pairs` (the CLI options of ``deblur make-pairs``).

    Attributes:
        frames: M, frames averaged per pair (video). The target is frame index M//2 of the window
            (0-based): the middle frame for odd M, the later of the two middle frames for even M.
        gamma: γ of g⁻¹(x) = x^γ.
        samples: pairs per video (spread over the usable windows) or per still; ``None`` = 100 per
            video (as the paper), 1 per still.
        seed: seed of the window choice (video) and of the virtual paths (stills).
        max_side: downscale frames/stills so the longer side is at most this (area averaging).
        interpolate: K flow-interpolated frames inserted between neighbours (0 = off).
        cut_threshold: adaptive cut test: a frame's content score over the mean of its neighbours'.
        cut_min_score: ... and the score itself must reach this floor (PySceneDetect's defaults 3, 15).
        cut_window: neighbours on each side in the adaptive test.
        max_luma_shift: flash/fade test: largest allowed difference between the mean luma (0-255)
            of any frame of the window and that of the target frame.
        static_ratio: static test: reject when blur score(blurred) > static_ratio x score(target).
        min_motion: static test: reject when fewer than this fraction of pixels (256-px thumbnails)
            change luma by more than 10 levels between the window's first and last frames.
        max_blur: stills: longest blur streak, px at the output size.
        moving_objects: stills: allow independently moving foreground patches.
    """

    frames: int = 8
    gamma: float = DEFAULT_GAMMA
    samples: int | None = None
    seed: int = 0
    max_side: int | None = None
    interpolate: int = 0
    cut_threshold: float = 3.0
    cut_min_score: float = 15.0
    cut_window: int = 2
    max_luma_shift: float = 12.0
    static_ratio: float = 0.9
    min_motion: float = 0.01
    max_blur: float = DEFAULT_MAX_BLUR
    moving_objects: bool = True

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be at least 2, got {self.frames}")
        if not self.gamma > 0:
            raise ValueError(f"gamma must be positive, got {self.gamma}")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        if self.interpolate < 0:
            raise ValueError(f"interpolate must be >= 0, got {self.interpolate}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side must be at least 16, got {self.max_side}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in [0, {MAX_SEED}], got {self.seed}")

    @property
    def target_index(self) -> int:
        """Index of the target frame inside a window (0-based)."""
        return self.frames // 2

    def settings(self, kind: str) -> dict[str, object]:
        """The settings that decide pixel content, recorded in every manifest row; a resumed run
        with different ones would mix incompatible pairs under the same names."""
        if kind == "still":
            return {"gamma": self.gamma, "max_side": self.max_side, "max_blur": self.max_blur,
                    "moving_objects": self.moving_objects, "seed": self.seed}
        return {"window": self.frames, "gamma": self.gamma, "max_side": self.max_side,
                "interpolate": self.interpolate, "seed": self.seed}


@dataclass
class PairsProgress:
    """What :func:`make_pairs` reports to ``on_progress`` (about every 10 frames and per pair)."""

    source: str
    index: int  # which input (0-based)
    inputs: int
    frames_decoded: int = 0
    frames_total: int | None = None
    pairs_written: int = 0
    pairs_kept: int = 0
    rejected: int = 0
    done: bool = False
    error: str | None = None  # set on the final (done) report of a failed input
    warning: str | None = None  # set on the final report of an input that gave pairs with a caveat


@dataclass
class SourceResult:
    """The outcome for one input (video or still)."""

    source: str
    kind: str
    pairs_written: int = 0
    pairs_kept: int = 0
    windows_examined: int = 0
    rejected: dict[str, int] | None = None
    frames: int = 0
    fps: float | None = None
    size: tuple[int, int] | None = None
    cuts: list[int] | None = None
    flashes: list[int] | None = None
    blur_px: list[float] | None = None
    blur_ratio: list[float] | None = None
    error: str | None = None
    #: Something the user should know about a source that still gave pairs (a truncated video).
    warning: str | None = None

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {"source": self.source, "kind": self.kind}
        if self.error is not None:
            d["error"] = self.error
        if self.warning is not None:
            d["warning"] = self.warning
        d.update(pairs_written=self.pairs_written, pairs_kept=self.pairs_kept)
        if self.kind == "video":
            d.update(frames=self.frames, fps=self.fps, windows_examined=self.windows_examined,
                     rejected=dict(self.rejected or {}), cuts=self.cuts or [], flashes=self.flashes or [])
        if self.size:
            d["size"] = list(self.size)
        if self.blur_ratio:
            d["blur_ratio"] = _stats(self.blur_ratio)
        if self.blur_px:
            d["blur_px"] = _stats(self.blur_px)
        return d


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    p = np.percentile(a, [0, 10, 50, 90, 100])
    return {"n": int(a.size), "min": round(float(p[0]), 3), "p10": round(float(p[1]), 3),
            "median": round(float(p[2]), 3), "p90": round(float(p[3]), 3), "max": round(float(p[4]), 3)}


@dataclass
class PairsReport:
    """Everything :func:`make_pairs` did: one :class:`SourceResult` per input, in order."""

    results: list[SourceResult]

    @property
    def failed(self) -> int:
        return sum(r.error is not None for r in self.results)

    def totals(self) -> dict[str, object]:
        rejected = {k: 0 for k in REJECT_REASONS}
        for r in self.results:
            for k, v in (r.rejected or {}).items():
                rejected[k] += v
        blur_px = [v for r in self.results for v in (r.blur_px or [])]
        ratio = [v for r in self.results for v in (r.blur_ratio or [])]
        out: dict[str, object] = {
            "inputs": len(self.results),
            "failed": self.failed,
            "pairs_written": sum(r.pairs_written for r in self.results),
            "pairs_kept": sum(r.pairs_kept for r in self.results),
            "windows_examined": sum(r.windows_examined for r in self.results),
            "rejected": rejected,
        }
        if ratio:
            out["blur_ratio"] = _stats(ratio)
        if blur_px:
            out["blur_px"] = _stats(blur_px)
        return out
