"""Scene cuts, flashes, fades: the tests that reject a video window.

A cut is found with PySceneDetect's adaptive recipe on HSV thumbnails (:func:`content_score`,
:func:`adaptive_ratio`); a cut whose picture comes back within 3 frames is a flash
(:func:`transition_kind`). Brightness changes are judged on mean luma (:func:`luma_verdict`: a
monotone change is a fade, any other a flash); a window whose frames barely differ
(:func:`motion_fraction`) is static.

Imports nothing of :mod:`deblurcli.pairs`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

#: Longest side of the thumbnails the detectors work on (PySceneDetect also downscales, to ~256 px):
#: their statistics are frame-wide means, which a small thumbnail keeps.
_THUMB = 192


def _fit(w: int, h: int, side: int | None) -> tuple[int, int]:
    """(w, h) scaled so that the longer side is at most ``side`` (unchanged when it already is)."""
    if side is None or max(w, h) <= side:
        return w, h
    s = side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _hsv_features(thumb: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 hue/saturation/value with the value's mean removed: a global brightness
    change (a flash, a fade, auto-exposure) then barely moves the content score, and is judged by
    the luma tests instead of being taken for a cut."""
    import cv2

    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 2] -= hsv[..., 2].mean()
    return hsv


def content_score(a: np.ndarray, b: np.ndarray) -> float:
    """PySceneDetect's ContentDetector score between two frames' :func:`_hsv_features`: the mean of
    the mean absolute differences of hue, saturation and (mean-removed) value, 0-255 scale; hue
    differences wrap around OpenCV's 180-step circle."""
    import cv2

    # OpenCV instead of NumPy's strided channel views: a seventh of the cost (0.04 ms against
    # 0.3 ms per 192 px thumbnail; every decoded frame is scored on make-pairs' decoding thread).
    # The wrapped hue difference min(d, 180 - d) is d less max(0, 2d - 180), and that correction
    # is non-zero only where d > 90: twice those d's sum, less 180 for each of them.
    d = cv2.absdiff(a, b)
    mh, ms, mv, _ = cv2.mean(d)
    _, over = cv2.threshold(cv2.extractChannel(d, 0), 90.0, 0.0, cv2.THRESH_TOZERO)
    wrap = (2.0 * cv2.sumElems(over)[0] - 180.0 * cv2.countNonZero(over)) / over.size
    return float((mh - wrap + ms + mv) / 3.0)


def adaptive_ratio(scores: list[float] | np.ndarray, i: int, window: int = 2) -> float:
    """AdaptiveDetector's ratio for frame ``i``: its score over the mean score of up to ``window``
    neighbours on each side (those that exist; frame 0 has no score and is never a neighbour)."""
    neigh = [scores[j] for j in range(i - window, i + window + 1) if j != i and 1 <= j < len(scores)]
    if not neigh:
        return 0.0
    m = float(np.mean(neigh))
    return float("inf") if m < 1e-6 else float(scores[i]) / m


def transition_kind(
    scores: Sequence[float],
    i: int,
    hsv_at: Callable[[int], np.ndarray],
    first: int,
    last: int,
    *,
    threshold: float,
    min_score: float,
    window: int,
) -> str | None:
    """Cut/flash verdict on the transition (i-1 -> i): "cut", "flash" or ``None``.

    ``hsv_at(j)`` gives frame j's :func:`_hsv_features` for ``first <= j <= last`` (the frames
    still buffered); frames up to i + 3 should be known.
    """
    r = adaptive_ratio(scores, i, window)
    if not (r >= threshold and scores[i] >= min_score):
        return None
    # A flash is a short interruption: the picture from before it is back within 3 frames
    # (compare frames on both sides of the transition, skipping the transition itself).
    for a in range(max(i - 4, first), i):
        for b in range(i, min(i + 3, last) + 1):
            if b - a >= 2 and content_score(hsv_at(a), hsv_at(b)) < min_score:
                return "flash"
    return "cut"


def luma_verdict(luma: Sequence[float], target: int, max_shift: float) -> tuple[float, str | None]:
    """(largest |mean luma - target's|, "fade" / "flash" / ``None``) of one window's frames.

    Over ``max_shift``, a monotone luma curve (steps within ±0.25) is a fade, any other a flash.
    """
    ys = np.asarray(luma)
    shift = float(np.abs(ys - ys[target]).max())
    if shift > max_shift:
        d = np.diff(ys)
        monotone = bool(np.all(d >= -0.25) or np.all(d <= 0.25))
        return shift, "fade" if monotone else "flash"
    return shift, None


def motion_fraction(first_gray: np.ndarray, last_gray: np.ndarray) -> float:
    """Fraction of thumbnail pixels whose luma changes by more than 10 levels between two frames."""
    return float((np.abs(first_gray - last_gray) > 10.0).mean())


def _gray(rgb8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY)

