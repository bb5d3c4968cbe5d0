"""Blur/sharp training pairs: from videos (frame averaging) and from stills (a virtual camera path).

Both follow the paper's recipe (its section 4) of averaging consecutive sharp frames in *linear
light*: every frame goes through g⁻¹(x) = x^γ, the frames are averaged, and the mean goes back
through g(x) = x^(1/γ) (γ = 2.2 by default). All arithmetic is float; pixels are rounded once, at
the end.

* Videos (:func:`make_pairs`, :func:`pairs_from_video`): decoded with PyAV, streaming, in constant
  memory. Windows of M consecutive frames are sampled over the video and rejected when they span a
  scene cut (adaptive rolling-statistics detector), contain a flash or a fade (luma tests), or are
  static (the average is barely blurrier than the target). ``interpolate=K`` inserts K optical-flow
  frames between neighbours before averaging (the REDS approach) to avoid ghosting at low fps.
* Stills (:func:`synthesize_from_still`): a short virtual video rendered from one photo by a random,
  smooth, curved camera path (a homography per sub-frame: translation, in-plane rotation, zoom,
  perspective) plus optional independently moving foreground patches, then the same averaging. It
  is fast enough to run for every training crop.

The library never prints; progress goes through an ``on_progress`` callback.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Collection, NamedTuple, TypeVar

import numpy as np

from deblurcli import MAX_SEED

if TYPE_CHECKING:  # pragma: no cover
    from collections import deque
    from concurrent.futures import Future
    from pathlib import Path

    from deblurcli.inputs import InputItem

T = TypeVar("T")

#: Default gamma of g⁻¹(x) = x^γ (sRGB is close to 2.2).
DEFAULT_GAMMA = 2.2
#: Default longest blur streak of the stills engine, in pixels at the output size.
DEFAULT_MAX_BLUR = 60.0

# ---------------------------------------------------------------------------------------------
# Stills: a virtual camera path over one photo
# ---------------------------------------------------------------------------------------------

#: Largest distance (px) any point moves between two rendered sub-frames: small enough that the
#: bilinear-interpolated copies merge into a continuous streak instead of visible ghosts.
_MAX_STEP_PX = 1.5
_MIN_SUBFRAMES = 8
_MAX_SUBFRAMES = 64
#: Points (per axis) on which streak lengths are measured; the homographies are smooth, so the
#: longest streak over a 9x9 grid including the corners is the longest over the frame to <1%.
_GRID = 9


@dataclass(frozen=True)
class StillSample:
    """One synthetic pair rendered from a still photo.

    Attributes:
        blurred: (H, W, 3) float32 in [0, 1], the linear-light average of the virtual frames.
        sharp: (H, W, 3) float32 in [0, 1], the virtual frame at the middle of the path (the input
            itself, with any moving foreground patches pasted at their mid-path position).
        blur_px: the longest streak, in pixels: the largest path length of any point of the frame
            (camera motion, and foreground motion when present) over the exposure.
        subframes: how many virtual frames were averaged.
        objects: how many independently moving foreground patches were added.
    """

    blurred: np.ndarray
    sharp: np.ndarray
    blur_px: float
    subframes: int = 0
    objects: int = 0


def _translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class _Path:
    """A random smooth motion, as polynomial coefficients in time t ∈ [-1/2, 1/2] (all zero at t=0,
    so the homography at mid-exposure is exactly the identity and the sharp frame needs no
    resampling). ``scale`` multiplies every component; streak length is ~linear in it."""

    trans: np.ndarray  # (3, 2): coefficients of t, t², t³ for (x, y), px
    rot: np.ndarray  # (2,): coefficients of t, t² for the angle, px of arc at ``radius``
    zoom: float  # log-scale coefficient of t, px of radial motion at ``radius``
    persp: np.ndarray  # (2,): perspective coefficients of t, px of motion at ``radius``
    centre: tuple[float, float]
    radius: float
    scale: float = 1.0

    def matrices(self, ts: np.ndarray) -> np.ndarray:
        """(N, 3, 3) forward homographies (content moves from x to H x) at times ``ts``."""
        s, r = self.scale, self.radius
        cx, cy = self.centre
        powers = np.stack([ts, ts**2, ts**3], axis=1)  # (N, 3)
        txy = s * (powers @ self.trans)  # (N, 2)
        theta = s * (ts * self.rot[0] + ts**2 * self.rot[1]) / r
        zoom = np.exp(s * self.zoom * ts / r)
        persp = s * np.outer(ts, self.persp) / (r * r)
        out = np.empty((len(ts), 3, 3))
        to_c, from_c = _translate(cx, cy), _translate(-cx, -cy)
        for i in range(len(ts)):
            c, si = np.cos(theta[i]) * zoom[i], np.sin(theta[i]) * zoom[i]
            core = np.array([[c, -si, 0.0], [si, c, 0.0], [persp[i, 0], persp[i, 1], 1.0]])
            out[i] = _translate(*txy[i]) @ to_c @ core @ from_c
        return out


def _random_path(rng: np.random.Generator, w: float, h: float, *, rigid: bool = False) -> _Path:
    """A random curved path with unit-ish amplitudes: a dominant translation (handheld shake and
    pans), with curvature and jerk, plus rotation, zoom and perspective shares that make the blur
    vary across the frame. ``rigid``: translation and rotation only (foreground objects)."""
    radius = 0.5 * float(np.hypot(w, h))
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-12
    trans = np.stack(
        [direction * rng.uniform(0.3, 1.0), rng.normal(scale=0.6, size=2), rng.normal(scale=0.8, size=2)]
    )
    rot = rng.normal(scale=[0.35, 0.2]) * (rng.random() < 0.7)
    zoom = float(rng.normal(scale=0.25)) * (rng.random() < 0.5) * (not rigid)
    persp = rng.normal(scale=0.15, size=2) * (rng.random() < 0.5) * (not rigid)
    # Rotation centre: anywhere around the frame (a hand rotates about the wrist, off-frame).
    centre = (float(rng.uniform(-0.25, 1.25) * w), float(rng.uniform(-0.25, 1.25) * h))
    if rigid:
        centre = (w / 2, h / 2)
    return _Path(trans=trans, rot=rot, zoom=zoom, persp=persp, centre=centre, radius=radius)


def _streaks(mats: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Path length (px) of each point (P, 2) moved by the homographies (N, 3, 3)."""
    ph = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)  # (P, 3)
    q = np.einsum("nij,pj->npi", mats, ph)
    xy = q[..., :2] / q[..., 2:3]
    return np.linalg.norm(np.diff(xy, axis=0), axis=2).sum(axis=0)


def _grid(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    gx, gy = np.meshgrid(np.linspace(x0, x1, _GRID), np.linspace(y0, y1, _GRID))
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _fit_scale(path: _Path, target: float, measure) -> _Path:
    """Rescale ``path`` so that ``measure(path)`` (a longest streak) equals ``target``.
    Streak length is linear in the translation part and nearly so in the rest: three
    fixed-point steps land within a fraction of a pixel."""
    for _ in range(3):
        got = measure(path)
        if got <= 1e-9:
            break
        path = _Path(**{**path.__dict__, "scale": path.scale * target / got})
    return path


@dataclass(frozen=True)
class _Object:
    """A foreground patch in patch coordinates, placed at ``dest``: (ph, pw, 4) float32 holding
    linear-light RGB premultiplied by alpha, then alpha. Premultiplied, so that one bilinear warp
    with zero borders resamples colour and coverage together without dark fringes."""

    rgba: np.ndarray
    dest: tuple[float, float]
    path: _Path

    @property
    def alpha(self) -> np.ndarray:
        return self.rgba[:, :, 3]

    def matrices(self, ts: np.ndarray, cam: np.ndarray) -> np.ndarray:
        """Patch coordinates -> frame coordinates at each time: camera ∘ own motion ∘ placement."""
        ph, pw = self.alpha.shape
        place = _translate(self.dest[0] - pw / 2, self.dest[1] - ph / 2)
        return cam @ place[None] @ self.path.matrices(ts)


def _make_object(rng: np.random.Generator, lin: np.ndarray) -> _Object:
    """Cut a soft-edged elliptical patch out of the picture (elsewhere than where it will move):
    its texture is real image content, so the moving layer looks like part of the scene."""
    import cv2

    h, w = lin.shape[:2]
    side = min(h, w)
    rx, ry = (rng.uniform(0.08, 0.25, size=2) * side).astype(float)
    pw, ph = int(2 * rx + 6), int(2 * ry + 6)
    sx, sy = rng.uniform(0, w), rng.uniform(0, h)
    src = _translate(-(sx - pw / 2), -(sy - ph / 2))
    content = cv2.warpAffine(
        lin, src[:2], (pw, ph), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101
    )
    if rng.random() < 0.5:
        content = content[:, ::-1].copy()
    alpha = np.zeros((ph, pw), np.float32)
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(alpha, (pw // 2, ph // 2), (int(rx), int(ry)), angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)  # a feathered edge, as a defocused boundary
    dest = (float(rng.uniform(0.1, 0.9) * w), float(rng.uniform(0.1, 0.9) * h))
    path = _random_path(rng, pw, ph, rigid=True)
    rgba = np.dstack([content * alpha[:, :, None], alpha]).astype(np.float32)
    return _Object(rgba=rgba, dest=dest, path=path)


def _composite(frame: np.ndarray, obj: _Object, mat: np.ndarray, roi: tuple[int, int, int, int]) -> None:
    """Blend the object (warped by ``mat``) into ``frame`` in place, inside ``roi`` only."""
    import cv2

    x0, y0, x1, y1 = roi
    m = _translate(-x0, -y0) @ mat
    size = (x1 - x0, y1 - y0)
    layer = cv2.warpPerspective(obj.rgba, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    region = frame[y0:y1, x0:x1]
    region *= 1.0 - layer[:, :, 3:4]
    region += layer[:, :, :3]


def _roi(mats: np.ndarray, ph: int, pw: int, w: int, h: int) -> tuple[int, int, int, int] | None:
    corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], dtype=float)
    q = np.einsum("nij,pj->npi", mats, corners)
    xy = (q[..., :2] / q[..., 2:3]).reshape(-1, 2)
    x0, y0 = np.floor(xy.min(axis=0)) - 2
    x1, y1 = np.ceil(xy.max(axis=0)) + 2
    x0, y0, x1, y1 = int(max(x0, 0)), int(max(y0, 0)), int(min(x1, w)), int(min(y1, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def synthesize_from_still(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    max_blur: float = DEFAULT_MAX_BLUR,
    moving_objects: bool = True,
    min_blur: float = 2.0,
    gamma: float = DEFAULT_GAMMA,
) -> StillSample:
    """Render a motion-blurred / sharp pair from one still photo.

    A short virtual video is rendered: every sub-frame is the photo warped by the homography of a
    random smooth, curved camera path at that instant (translation with curvature and jerk,
    in-plane rotation about a random centre, zoom, slight perspective), so streaks are curved and
    vary across the frame. With ``moving_objects`` (about half of the samples), 1-3 soft-edged
    foreground patches cut from the picture move on their own paths on top. The sub-frames are
    averaged in linear light (x^γ), and the mean goes back with x^(1/γ).

    The longest streak is drawn uniformly from ``[min_blur, max_blur]`` px; the path is scaled so
    that the longest streak of the camera motion equals it, and foreground motion never makes
    the longest streak exceed ``max_blur``. Enough sub-frames are rendered that no point moves more
    than 1.5 px between two of them (8-64), so blur is continuous, not ghosted.

    Borders: sub-frames sample outside the photo from its mirror image (OpenCV
    BORDER_REFLECT_101), so neither image has black edges; both keep the input's size.

    Args:
        rgb: (H, W, 3) float32 RGB in [0, 1], H and W at least 16.
        rng: the random generator; the same generator state gives the same sample.
        max_blur: longest streak, in px at this image's size (the train crop, or the output size).
        moving_objects: allow independently moving foreground patches.
        min_blur: shortest longest-streak drawn, px (clamped to ``max_blur``).
        gamma: γ of the linear-light conversion.

    Returns:
        A :class:`StillSample`; ``sharp`` is the virtual frame at the middle of the path.

    Raises:
        ValueError: wrong shape/dtype, image smaller than 16 px, or a non-positive ``max_blur``.
    """
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.float32:
        raise ValueError(f"expected float32 pixels in [0, 1], got {rgb.dtype}")
    h, w = rgb.shape[:2]
    if min(h, w) < 16:
        raise ValueError(f"image too small for synthetic blur: {w}x{h} (need at least 16x16)")
    if not max_blur > 0:
        raise ValueError(f"max_blur must be positive, got {max_blur}")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")

    target = float(rng.uniform(min(min_blur, max_blur), max_blur))
    lin = cv2.pow(np.clip(rgb, 0.0, 1.0), gamma)

    # Camera path scaled to the target streak, measured on a grid over the frame.
    probe = np.linspace(-0.5, 0.5, 17)
    frame_pts = _grid(0, 0, w - 1, h - 1)
    cam_path = _fit_scale(_random_path(rng, w, h), target, lambda p: _streaks(p.matrices(probe), frame_pts).max())

    objects: list[_Object] = []
    if moving_objects and rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):
            obj = _make_object(rng, lin)
            ph, pw = obj.alpha.shape
            opts = _grid(0.25 * pw, 0.25 * ph, 0.75 * pw, 0.75 * ph)  # inside the ellipse
            cam = cam_path.matrices(probe)
            own = float(rng.uniform(0.3, 1.0) * max_blur)

            def measure(p: _Path, obj: _Object = obj, opts: np.ndarray = opts, cam: np.ndarray = cam) -> float:
                moved = _Object(obj.rgba, obj.dest, p)
                return float(_streaks(moved.matrices(probe, cam), opts).max())

            fitted = _fit_scale(obj.path, own, measure)
            # Own motion plus the camera's may add up past max_blur: shrink the own motion.
            for _ in range(4):
                got = measure(fitted)
                if got <= max_blur * 1.001:
                    break
                fitted = _Path(**{**fitted.__dict__, "scale": fitted.scale * 0.8})
            if measure(fitted) > max_blur * 1.001:
                fitted = _Path(**{**fitted.__dict__, "scale": 0.0})
            objects.append(_Object(obj.rgba, obj.dest, fitted))

    # Sub-frame count from the longest streak so that steps stay under _MAX_STEP_PX.
    longest = float(_streaks(cam_path.matrices(probe), frame_pts).max())
    for obj in objects:
        ph, pw = obj.alpha.shape
        opts = _grid(0.25 * pw, 0.25 * ph, 0.75 * pw, 0.75 * ph)
        longest = max(longest, float(_streaks(obj.matrices(probe, cam_path.matrices(probe)), opts).max()))
    n = int(np.clip(np.ceil(longest / _MAX_STEP_PX) + 1, _MIN_SUBFRAMES, _MAX_SUBFRAMES))
    ts = np.linspace(-0.5, 0.5, n)
    cams = cam_path.matrices(ts)
    blur_px = float(_streaks(cams, frame_pts).max())
    obj_mats, rois = [], []
    for obj in objects:
        ph, pw = obj.alpha.shape
        mats = obj.matrices(ts, cams)
        obj_mats.append(mats)
        rois.append(_roi(mats, ph, pw, w, h))
        opts = _grid(0.25 * pw, 0.25 * ph, 0.75 * pw, 0.75 * ph)
        blur_px = max(blur_px, float(_streaks(mats, opts).max()))

    acc = np.zeros_like(lin)
    for k in range(n):
        frame = cv2.warpPerspective(
            lin, cams[k], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        for obj, mats, roi in zip(objects, obj_mats, rois):
            if roi is not None:
                _composite(frame, obj, mats[k], roi)
        acc += frame
    acc *= 1.0 / n
    blurred = cv2.pow(np.clip(acc, 0.0, 1.0), 1.0 / gamma)

    if objects:
        mid = lin.copy()
        eye = np.eye(3)[None]
        for obj in objects:
            ph, pw = obj.alpha.shape
            mat = obj.matrices(np.zeros(1), eye)
            roi = _roi(mat, ph, pw, w, h)
            if roi is not None:
                _composite(mid, obj, mat[0], roi)
        sharp = cv2.pow(np.clip(mid, 0.0, 1.0), 1.0 / gamma)
    else:
        sharp = np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=True)
    return StillSample(
        blurred=np.ascontiguousarray(blurred, dtype=np.float32),
        sharp=np.ascontiguousarray(sharp, dtype=np.float32),
        blur_px=blur_px,
        subframes=n,
        objects=len(objects),
    )


# ---------------------------------------------------------------------------------------------
# Linear-light averaging of real frames
# ---------------------------------------------------------------------------------------------


def linear_table(gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """g⁻¹ for 8-bit values: a 256-entry float32 table of (v/255)^γ, computed in float64."""
    return ((np.arange(256, dtype=np.float64) / 255.0) ** gamma).astype(np.float32)


def average_frames(frames: list[np.ndarray], gamma: float = DEFAULT_GAMMA, *, table: np.ndarray | None = None) -> np.ndarray:
    """g(mean(g⁻¹(frames))) of 8-bit RGB frames, rounded once to uint8.

    The frames go to linear light through a 256-entry table (exact to float32), are summed in
    float32 (8-64 terms: the error stays under 1e-5 of full scale), and the mean goes back through
    x^(1/γ); rounding to 8 bits happens once, at the end.
    """
    import cv2

    if not frames:
        raise ValueError("average_frames needs at least one frame")
    lut = linear_table(gamma) if table is None else table
    lut = np.ascontiguousarray(lut, dtype=np.float32).reshape(1, 256)
    # Two float32 scratch images per thread, reused from window to window: allocating ten fresh
    # 2.7 MB arrays per 640x360 window made the kernel map and zero pages for each of them
    # (a fifth of make-pairs' CPU time was system time).
    acc, lin = _scratch(frames[0].shape)
    cv2.LUT(np.ascontiguousarray(frames[0]), lut, dst=acc)
    for f in frames[1:]:
        if f.shape != acc.shape:
            raise ValueError(f"frames differ in shape: {frames[0].shape} and {f.shape}")
        cv2.LUT(np.ascontiguousarray(f), lut, dst=lin)
        cv2.add(acc, lin, dst=acc)
    np.multiply(acc, np.float32(1.0 / len(frames)), out=acc)
    # The mean of table values lies in [0, 1] and so does its power: no clipping pass is needed
    # (it was a third of this function's cost); convertScaleAbs rounds half to even and saturates.
    cv2.pow(acc, 1.0 / gamma, dst=acc)
    return cv2.convertScaleAbs(acc, alpha=255.0)


_SCRATCH = threading.local()


def _scratch(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """This thread's two float32 work images of ``shape`` (made again when the shape changes)."""
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None or bufs[0].shape != shape:
        bufs = (np.empty(shape, np.float32), np.empty(shape, np.float32))
        _SCRATCH.bufs = bufs
    return bufs


def _linear(rgb8: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[rgb8]`` as float32, through OpenCV's LUT: the same values as NumPy's fancy indexing at
    a third of the cost (averaging a window was mostly this table look-up)."""
    import cv2

    return cv2.LUT(np.ascontiguousarray(rgb8), np.ascontiguousarray(lut, dtype=np.float32).reshape(1, 256))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """round(clip(x, 0, 1) * 255) as uint8, rounding half to even (as ``np.rint``)."""
    import cv2

    if x.dtype == np.float32 and x.flags.c_contiguous and x.ndim in (2, 3):
        # OpenCV: clipped to [0, 1] (two cheap passes), then x*255 rounded (half to even); the
        # same bytes as the NumPy expression below (checked on ±inf, boundaries) at under half its
        # cost: np.clip alone took 40% of it. Viewed as one 2-D channel, so that the scalar bounds
        # apply to every colour (OpenCV would read a number as a Scalar of the first channel only).
        flat = x.reshape(x.shape[0], -1)
        return cv2.convertScaleAbs(cv2.min(cv2.max(flat, 0.0), 1.0), alpha=255.0).reshape(x.shape)
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


class _Interpolator:
    """K optical-flow frames between two neighbours (the REDS recipe for low frame rates).

    Flow: OpenCV's DIS (dense inverse search, preset MEDIUM) on 8-bit luma, both directions.
    Intermediate flows at time t use the Super SloMo linear approximation
    F_t→0 = -(1-t)t F_0→1 + t² F_1→0 and F_t→1 = (1-t)² F_0→1 - t(1-t) F_1→0; each neighbour
    is backward-warped and the two are blended with weights (1-t, t), in linear light.
    """

    def __init__(self, k: int) -> None:
        import cv2

        self.k = k
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._grid_cache: np.ndarray | None = None

    def between(self, a8: np.ndarray, b8: np.ndarray, a_lin: np.ndarray, b_lin: np.ndarray) -> list[np.ndarray]:
        return [f.copy() for f in self.frames(a8, b8, a_lin, b_lin)]

    def frames(self, a8: np.ndarray, b8: np.ndarray, a_lin: np.ndarray, b_lin: np.ndarray):
        """:meth:`between` as a generator that reuses its buffers: each frame yielded is valid only
        until the next one is asked for (add it to an accumulator, don't keep it)."""
        import cv2

        ga = cv2.cvtColor(a8, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b8, cv2.COLOR_RGB2GRAY)
        f01 = self.dis.calc(ga, gb, None)
        f10 = self.dis.calc(gb, ga, None)
        grid = self._grid(*ga.shape)
        # Preallocated buffers: the per-frame arithmetic is the same float32 operations, in the same
        # order, as the plain expressions -(1-t)t·F01 + t²·F10 etc.; fresh temporaries of these sizes
        # cost more in allocation and page faults than the arithmetic itself.
        tmp, map0, map1 = np.empty_like(f01), np.empty_like(f01), np.empty_like(f01)
        w0, w1 = np.empty_like(a_lin), np.empty_like(b_lin)
        for j in range(1, self.k + 1):
            t = j / (self.k + 1)
            np.multiply(f01, -(1 - t) * t, out=map0)
            np.multiply(f10, t * t, out=tmp)
            np.add(map0, tmp, out=map0)  # F_t→0
            np.add(grid, map0, out=map0)
            np.multiply(f01, (1 - t) * (1 - t), out=map1)
            np.multiply(f10, t * (1 - t), out=tmp)
            np.subtract(map1, tmp, out=map1)  # F_t→1
            np.add(grid, map1, out=map1)
            # One two-channel map per warp (x, y interleaved): the same coordinates as two planes.
            cv2.remap(a_lin, map0, None, cv2.INTER_LINEAR, dst=w0, borderMode=cv2.BORDER_REPLICATE)
            cv2.remap(b_lin, map1, None, cv2.INTER_LINEAR, dst=w1, borderMode=cv2.BORDER_REPLICATE)
            np.multiply(w0, 1 - t, out=w0)
            np.multiply(w1, t, out=w1)
            np.add(w0, w1, out=w0)
            yield w0

    def _grid(self, h: int, w: int) -> np.ndarray:
        """(h, w, 2) float32 pixel coordinates (x, y), kept between calls."""
        g = self._grid_cache
        if g is None or g.shape[:2] != (h, w):
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            g = self._grid_cache = np.dstack([gx, gy])
        return g


def average_frames_interpolated(
    frames: list[np.ndarray], k: int, gamma: float = DEFAULT_GAMMA, *, interpolator: _Interpolator | None = None
) -> np.ndarray:
    """Like :func:`average_frames`, with ``k`` flow-interpolated frames inserted between each pair
    of neighbours (M + (M-1)·K frames averaged with equal weights)."""
    import cv2

    if k <= 0:
        return average_frames(frames, gamma)
    interp = interpolator or _Interpolator(k)
    lut = linear_table(gamma)
    lins = [_linear(f, lut) for f in frames]
    acc = lins[0].copy()
    count = 1
    for i in range(1, len(frames)):
        for mid in interp.frames(frames[i - 1], frames[i], lins[i - 1], lins[i]):
            acc += mid
            count += 1
        acc += lins[i]
        count += 1
    return _to_uint8(cv2.pow(acc * np.float32(1.0 / count), 1.0 / gamma))


# ---------------------------------------------------------------------------------------------
# Scene cuts, flashes, fades
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# The make-pairs pipeline
# ---------------------------------------------------------------------------------------------

#: Video container extensions picked up from folders and quoted globs (a file named explicitly is
#: always tried, whatever its extension: the decoder decides).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp"}
)

REJECT_REASONS = ("cut", "flash", "fade", "static")
MANIFEST = "pairs.jsonl"


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


def expand_video_inputs(
    args: "list[str]", *, recursive: bool = False, exclude: "Collection[str | Path]" = ()
) -> "list[InputItem]":
    """:func:`deblurcli.inputs.expand_inputs` for video files (folders and quoted globs give the
    files with a :data:`VIDEO_EXTENSIONS` extension; a file named explicitly is always kept;
    nothing is taken from inside an ``exclude`` folder)."""
    from deblurcli.inputs import expand_inputs

    return expand_inputs(args, recursive=recursive, extensions=VIDEO_EXTENSIONS, kind="video", exclude=exclude)


def _prefixes(paths: "list[Path]") -> dict["Path", str]:
    """Output name prefix per input: the file stem, plus a short hash of the path when two inputs
    share a stem (deterministic for the same set of inputs)."""
    import hashlib
    import re
    from collections import Counter

    # Cut to 200 characters (ASCII after the substitution): with the pair suffix and ".png" the
    # names stay under the usual 255-byte limit; a cut stem gets the hash too, to stay unique.
    full = {p: re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem) or "input" for p in paths}
    stems = {p: s[:200] for p, s in full.items()}
    counts = Counter(stems.values())
    return {
        p: s if counts[s] == 1 and s == full[p] else f"{s}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:6]}"
        for p, s in stems.items()
    }


def _gray(rgb8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY)


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


def _open_video(path: "Path"):
    """Open a video with PyAV, or raise :class:`VideoError` with a one-line reason."""
    import av

    from deblurcli.errors import VideoError

    from deblurcli.images import file_problem

    problem = file_problem(path, "video")
    if problem:  # a FIFO or device: FFmpeg would block on it or read for ever
        raise VideoError(f"{path}: {problem}")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{path}: not a video FFmpeg can read ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    return container


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
    import zlib
    from collections import deque

    import av

    from deblurcli.errors import VideoError

    m, ti, k = cfg.frames, cfg.target_index, cfg.interpolate
    settings = cfg.settings("video")
    source = str(path)
    _check_settings(manifest, source, settings)
    n_est = _count_frames(path)
    if n_est == 0:
        raise VideoError(f"{path}: zero-length video (no frames)")
    if n_est < m:
        from deblurcli.images import EXTENSIONS

        hint = "; for photos, use --from-stills" if n_est == 1 or path.suffix.lower() in EXTENSIONS else ""
        raise VideoError(f"{path}: only {n_est} frame{'s' if n_est != 1 else ''}, fewer than --frames {m}{hint}")
    declared = _declared_frames(path)
    if declared is not None and n_est < declared - max(2, declared // 50):
        result.warning = (
            f"{path}: the file ends early: {n_est} frames of the {declared} its header declares "
            "(truncated or damaged?); pairs were made from the frames present"
        )
    if progress is not None:
        progress.frames_total = n_est
    n_windows = n_est - m + 1
    n_samples = cfg.samples or 100
    rng = np.random.default_rng([cfg.seed, zlib.crc32(prefix.encode())])
    if n_samples >= n_windows:
        strata = [(s, s + 1) for s in range(n_windows)]
    else:
        bounds = [j * n_windows // n_samples for j in range(n_samples + 1)]
        strata = [(bounds[j], bounds[j + 1]) for j in range(n_samples)]
    firsts = [int(rng.integers(a, b)) for a, b in strata]

    look = max(cfg.cut_window, 3)  # frames decoded past a frame before its cut/flash verdict
    buf: deque[_Buffered] = deque(maxlen=m + look + 1)
    scores: list[float] = []
    luma: list[float] = []
    kinds: dict[int, str] = {}  # frame index -> "cut" | "flash" (transition from index-1)
    rejected = result.rejected = {r: 0 for r in REJECT_REASONS}
    result.cuts, result.flashes, result.blur_ratio = [], [], []
    lut = linear_table(cfg.gamma)
    interp = _Interpolator(k) if k else None
    conv = _Frames(cfg.max_side)

    # j: stratum, cand: next window start, static_tries: in this stratum; "pending": a _Pending.
    state: dict[str, Any] = {"j": 0, "cand": firsts[0] if firsts else 0, "static_tries": 0}

    def by_index(i: int) -> _Buffered:
        return buf[i - buf[0].index]

    def classify(i: int, last: int) -> None:
        """Cut/flash verdict on the transition (i-1 -> i), once frames up to i+look are known."""
        r = adaptive_ratio(scores, i, cfg.cut_window)
        if not (r >= cfg.cut_threshold and scores[i] >= cfg.cut_min_score):
            return
        # A flash is a short interruption: the picture from before it is back within 3 frames
        # (compare frames on both sides of the transition, skipping the transition itself).
        first = buf[0].index
        for a in range(max(i - 4, first), i):
            for b in range(i, min(i + 3, last) + 1):
                if b - a >= 2 and content_score(by_index(a).hsv, by_index(b).hsv) < cfg.cut_min_score:
                    kinds[i] = "flash"
                    result.flashes.append(i)  # type: ignore[union-attr]
                    return
        kinds[i] = "cut"
        result.cuts.append(i)  # type: ignore[union-attr]

    def next_stratum(after: int) -> None:
        state["j"] += 1
        state["static_tries"] = 0
        if state["j"] < len(strata):
            state["cand"] = max(firsts[state["j"]], after)

    def move(to: int) -> None:
        j = state["j"]
        if to >= strata[j][1]:
            next_stratum(to)
        else:
            state["cand"] = to

    def evaluate(s: int) -> None:
        result.windows_examined += 1
        e = s + m - 1
        flagged = [(i, kinds[i]) for i in range(s + 1, e + 1) if i in kinds]
        if flagged:
            reason = "cut" if any(kd == "cut" for _, kd in flagged) else "flash"
            rejected[reason] += 1
            move(max(i for i, _ in flagged))
            return
        ys = np.asarray(luma[s : e + 1])
        shift = float(np.abs(ys - ys[ti]).max())
        if shift > cfg.max_luma_shift:
            d = np.diff(ys)
            monotone = bool(np.all(d >= -0.25) or np.all(d <= 0.25))
            rejected["fade" if monotone else "flash"] += 1
            move(s + 1)
            return
        name = f"{prefix}_{s:06d}-{e:06d}"
        if _pair_exists(out, name, manifest):
            result.pairs_kept += 1
            ratio = manifest.rows[name].get("blur_ratio")
            if isinstance(ratio, (int, float)):
                result.blur_ratio.append(float(ratio))  # type: ignore[union-attr]
            next_stratum(s + 1)
            return
        window = [by_index(i) for i in range(s, e + 1)]
        motion = float((np.abs(window[0].gray - window[-1].gray) > 10.0).mean())
        if motion < cfg.min_motion:  # static on the thumbnails already: no need to average
            reject_static(s)
            return
        # Full-size RGB on this thread (PyAV 18 crashed converting one frame from two threads; and
        # converting on the window thread instead made that thread the bottleneck, with no gain).
        # Averaging and scoring go to the writer's window thread, and the verdict is taken in
        # resolve(), once decoding has reached the next window that could depend on it.
        frames = [conv.rgb(f) for f in window]
        job = writer.run(_synthesize_window, frames, ti, cfg.gamma, lut, interp)
        state["pending"] = _Pending(s, [window[0].time, window[-1].time], shift, motion, job, resolve_at(s))

    def resolve_at(s: int) -> int:
        """The frame index by which the pending verdict on window ``s`` must be known: when the
        earliest window that could come next (a static retry, or the next stratum's start) is ready
        to be examined."""
        j = state["j"]
        nxt = [max(firsts[j + 1], s + 1)] if j + 1 < len(strata) else []
        retry = s + max(1, m // 2)
        if state["static_tries"] + 1 < 3 and retry < strata[j][1]:
            nxt.append(retry)
        return min(nxt) + m - 1 + look if nxt else n_est + look  # nothing after it: at the end

    def reject_static(s: int) -> None:
        rejected["static"] += 1
        state["static_tries"] += 1
        if state["static_tries"] >= 3:
            next_stratum(s + 1)
        else:
            move(s + max(1, m // 2))

    def resolve() -> None:
        p: _Pending = state.pop("pending")
        s, e = p.start, p.start + m - 1
        blurred, target, t_score, b_score = p.job.result()
        ratio = b_score / t_score if t_score > 0 else 1.0
        if ratio > cfg.static_ratio:
            reject_static(s)
            return
        name = f"{prefix}_{s:06d}-{e:06d}"
        row = {
            "name": name,
            "source": source,
            "kind": "video",
            "frames": [s, e],
            "target_frame": s + ti,
            "time": p.times,
            "fps": result.fps,
            "size": [int(target.shape[1]), int(target.shape[0])],
            "target_score": round(t_score, 3),
            "blurred_score": round(b_score, 3),
            "blur_ratio": round(ratio, 4),
            "motion": round(p.motion, 4),
            "luma_shift": round(p.luma_shift, 3),
            "verdict": "ok",
            "settings": settings,
        }

        def done(ratio: float = ratio) -> None:
            result.pairs_written += 1
            result.blur_ratio.append(ratio)  # type: ignore[union-attr]
            report()

        writer.submit(name, blurred, target, row, done)
        next_stratum(s + 1)

    def advance(idx: int, final: bool = False) -> None:
        """Examine every window whose frames (and the detectors' look-ahead) are decoded up to
        ``idx``; at most one verdict is pending at a time, and it is taken before the next window
        is examined, so the choice of windows is exactly that of a sequential pass."""
        ahead = 0 if final else look
        while True:
            if "pending" in state:
                if not final and idx < state["pending"].resolve_at:
                    return
                resolve()
            if state["j"] >= len(strata) or state["cand"] + m - 1 + ahead > idx:
                return
            evaluate(state["cand"])

    container = _open_video(path)
    try:
        with _PairWriter(out, manifest) as writer:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg; frames still come in order
            rate = stream.average_rate or stream.guessed_rate
            result.fps = round(float(rate), 4) if rate else None
            size0: tuple[int, int] | None = None
            prev_hsv: np.ndarray | None = None
            idx = -1
            try:
                for frame in container.decode(stream):
                    idx += 1
                    if size0 is None:
                        size0 = (frame.width, frame.height)
                    elif (frame.width, frame.height) != size0:
                        raise VideoError(
                            f"{path}: resolution changes mid-stream at frame {idx} "
                            f"({size0[0]}x{size0[1]} -> {frame.width}x{frame.height})"
                        )
                    th, rgb = conv.thumb(frame)
                    hsv = _hsv_features(th)
                    g = _gray(th).astype(np.float32)
                    scores.append(content_score(prev_hsv, hsv) if prev_hsv is not None else 0.0)
                    luma.append(float(g.mean()))
                    prev_hsv = hsv
                    buf.append(_Buffered(idx, hsv, g, frame.time, None if rgb is not None else frame, rgb))
                    result.frames = idx + 1
                    result.size = conv.size(frame)
                    if idx - look >= 1:
                        classify(idx - look, idx)
                    advance(idx)
                    if progress is not None and idx % 10 == 0:
                        progress.frames_decoded = idx + 1
                        report()
            except av.FFmpegError as e:
                raise VideoError(f"{path}: corrupt video, decoding failed after frame {idx}: {e}") from None
            last = idx
            if last + 1 < m:
                raise VideoError(f"{path}: only {last + 1} frames could be decoded, fewer than --frames {m}")
            for i in range(max(1, last - look + 1), last + 1):
                classify(i, last)
            advance(last, final=True)
            if progress is not None:
                progress.frames_decoded = last + 1
    finally:
        container.close()


def pairs_from_still(
    path: "Path", out: "Path", cfg: PairsConfig, manifest: Manifest, prefix: str, result: SourceResult,
    report: "Callable[[], None]" = lambda: None,
) -> None:
    """Make ``samples`` (default 1) pairs from one still photo with :func:`synthesize_from_still`.
    Each sample's generator is seeded from (seed, name, sample number): a resumed run makes the
    same pairs."""
    import zlib

    from deblurcli.blur import blur_score
    from deblurcli.images import read_image, resize_max_side

    settings = cfg.settings("still")
    source = str(path)
    _check_settings(manifest, source, settings)
    image = read_image(path)
    rgb = resize_max_side(image.rgb_float(), cfg.max_side)
    result.size = (int(rgb.shape[1]), int(rgb.shape[0]))
    result.blur_px, result.blur_ratio = [], []
    with _PairWriter(out, manifest) as writer:
        for n in range(cfg.samples or 1):
            name = f"{prefix}_s{n:03d}"
            if _pair_exists(out, name, manifest):
                result.pairs_kept += 1
                row = manifest.rows[name]
                for key, dest in (("blur_px", result.blur_px), ("blur_ratio", result.blur_ratio)):
                    if isinstance(row.get(key), (int, float)):
                        dest.append(float(row[key]))  # type: ignore[arg-type]
                continue
            rng = np.random.default_rng([cfg.seed, zlib.crc32(prefix.encode()), n])
            try:
                smp = synthesize_from_still(rgb, rng, max_blur=cfg.max_blur, moving_objects=cfg.moving_objects, gamma=cfg.gamma)
            except ValueError as e:
                from deblurcli.errors import ImageError

                raise ImageError(path, str(e)) from None
            blurred, target = _to_uint8(smp.blurred), _to_uint8(smp.sharp)
            t_score, b_score = blur_score(_gray(target)), blur_score(_gray(blurred))
            ratio = b_score / t_score if t_score > 0 else 1.0
            row = {
                "name": name,
                "source": source,
                "kind": "still",
                "sample": n,
                "size": [int(target.shape[1]), int(target.shape[0])],
                "blur_px": round(smp.blur_px, 3),
                "subframes": smp.subframes,
                "objects": smp.objects,
                "target_score": round(t_score, 3),
                "blurred_score": round(b_score, 3),
                "blur_ratio": round(ratio, 4),
                "verdict": "ok",
                "settings": settings,
            }

            def done(px: float = smp.blur_px, ratio: float = ratio) -> None:
                result.pairs_written += 1
                result.blur_px.append(px)  # type: ignore[union-attr]
                result.blur_ratio.append(ratio)  # type: ignore[union-attr]
                report()

            writer.submit(name, blurred, target, row, done)


def make_pairs(
    inputs: "list[InputItem]",
    out: "Path",
    cfg: PairsConfig | None = None,
    *,
    from_stills: bool = False,
    on_progress: "Callable[[PairsProgress], None] | None" = None,
) -> PairsReport:
    """Make blur/sharp pairs from videos (or, with ``from_stills``, from still photos).

    Writes ``out/blurred/NAME.png``, ``out/targets/NAME.png`` and appends a row per pair to
    ``out/pairs.jsonl`` (source, frame range and times, fps, blur scores of both images and their
    ratio, motion, luma shift, verdict, settings). Resumable: pairs already listed in the manifest
    with both images present are kept, not remade, and get no second row. One input's error
    (unreadable, corrupt, too short, resolution change) is recorded in its result; the others go on.

    Args:
        inputs: from :func:`expand_video_inputs` (or :func:`deblurcli.inputs.expand_inputs` for
            stills); items carrying an ``error`` are reported as failed.
        out: output folder (created).
        cfg: settings; defaults as the CLI.
        from_stills: inputs are photos, rendered by :func:`synthesize_from_still`.
        on_progress: called with a :class:`PairsProgress` as frames are decoded and pairs written.
    """
    from pathlib import Path

    from deblurcli.errors import DatasetError, DeblurError

    from deblurcli.inputs import output_folder_problem

    cfg = cfg or PairsConfig()
    out = Path(out)
    problem = output_folder_problem(out)
    for sub in ("blurred", "targets"):
        if problem is None and (out / sub).exists() and not (out / sub).is_dir():
            problem = f"{out / sub} exists and is not a folder"
    if problem:
        raise DatasetError(f"cannot write pairs: {problem}")
    manifest = Manifest.open(out / MANIFEST)
    prefixes = _prefixes([it.path for it in inputs if not it.error])
    results: list[SourceResult] = []
    for n, item in enumerate(inputs):
        result = SourceResult(source=str(item.path), kind="still" if from_stills else "video")
        results.append(result)
        prog = PairsProgress(source=str(item.path), index=n, inputs=len(inputs))

        def report(prog: PairsProgress = prog, result: SourceResult = result) -> None:
            prog.pairs_written, prog.pairs_kept = result.pairs_written, result.pairs_kept
            prog.rejected = sum((result.rejected or {}).values())
            if on_progress is not None:
                on_progress(prog)

        try:
            if item.error:
                raise DeblurError(f"{item.path}: {item.error}")
            if from_stills:
                pairs_from_still(item.path, out, cfg, manifest, prefixes[item.path], result, report)
            else:
                prog.frames_total = None
                pairs_from_video(item.path, out, cfg, manifest, prefixes[item.path], result, report, prog)
        except DeblurError as e:
            result.error = str(e)
        prog.done, prog.error, prog.warning = True, result.error, result.warning
        report()
    return PairsReport(results)
