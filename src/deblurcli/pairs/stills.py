"""The stills engine: a virtual camera path over one photo.

:func:`synthesize_from_still` renders a short virtual video from one photo along a random, smooth,
curved camera path (a homography per sub-frame: translation, in-plane rotation, zoom, perspective)
plus optional independently moving foreground patches, then averages it in linear light. It is
fast enough to run for every training crop on a CPU (:mod:`deblurcli.data` calls it). It is two
steps, :func:`plan_from_still` (every random draw and matrix) and :func:`render_plan` (the warps, with
OpenCV), so that a GPU trainer can render the plans itself (:func:`deblurcli.data.render_batch`).

Imports only :mod:`deblurcli.pairs.average` (for :data:`DEFAULT_GAMMA`) of the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deblurcli.pairs.average import DEFAULT_GAMMA

#: Default longest blur streak of the stills engine, in pixels at the output size.
DEFAULT_MAX_BLUR = 60.0

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
        camera: (subframes, 3, 3) forward homographies of the camera path at the averaged
            sub-frames (a point p of the sharp frame is at ``camera[k] @ p`` in sub-frame k), from
            which :func:`camera_psf` gives the true blur kernel anywhere outside the moving patches;
            None when not recorded.
    """

    blurred: np.ndarray
    sharp: np.ndarray
    blur_px: float
    subframes: int = 0
    objects: int = 0
    camera: np.ndarray | None = None


def camera_psf(camera: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    """The blur kernel (PSF) of a camera path at pixel (x, y) of the sharp frame.

    Entry ``[size // 2 + dy, size // 2 + dx]`` is the share of the exposure the point spent at offset
    (dx, dy) from (x, y), bilinearly split between pixels; near (x, y) the blurred image is the sharp
    one convolved with it, in the linear light the sub-frames were averaged in. Supervision for
    models that estimate the blur (``bench/kernel_bound.py`` measures what knowing it is worth).

    Args:
        camera: (N, 3, 3) homographies, :attr:`StillSample.camera`.
        x, y: the pixel, in the sharp frame's coordinates.
        size: odd kernel side; parts of the streak farther than ``size // 2`` px are dropped (the
            kernel is renormalised), so take it above the sample's ``blur_px``.

    Returns:
        (size, size) float32 summing to 1.

    Raises:
        ValueError: ``size`` is not a positive odd number, or ``camera`` is not (N, 3, 3).
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number, got {size}")
    if camera.ndim != 3 or camera.shape[1:] != (3, 3) or len(camera) == 0:
        raise ValueError(f"expected (N, 3, 3) homographies, got shape {camera.shape}")
    q = camera @ np.array([x, y, 1.0])
    dx, dy = q[:, 0] / q[:, 2] - x + size // 2, q[:, 1] / q[:, 2] - y + size // 2
    x0, y0 = np.floor(dx).astype(int), np.floor(dy).astype(int)
    fx, fy = dx - x0, dy - y0
    k = np.zeros((size, size), np.float64)
    for ox, oy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xs, ys = x0 + ox, y0 + oy
        inside = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
        np.add.at(k, (ys[inside], xs[inside]), wgt[inside])
    total = k.sum()
    if total <= 0:
        raise ValueError(f"the streak at ({x:g}, {y:g}) lies wholly outside a {size}x{size} kernel")
    return (k / total).astype(np.float32)


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


@dataclass(frozen=True)
class StillPlan:
    """A stills-engine sample before its sub-frames are rendered (:func:`plan_from_still`).

    Everything random is drawn and every matrix is fixed; what is left is the costly part, warping
    and averaging the sub-frames: :func:`render_plan` does it with OpenCV, and
    :func:`deblurcli.data.render_batch` on a torch device (a GPU, where a training step is faster
    than one CPU core can render crops). Both give the same image up to interpolation rounding.

    Attributes:
        lin: (H, W, 3) float32, the photo in linear light (x^γ), highlights already boosted.
        cams: (n, 3, 3) forward homographies of the camera path at the n sub-frames.
        objects: the moving foreground patches (:class:`_Object`: premultiplied linear RGBA).
        object_mats: per object, (n, 3, 3) patch-to-frame homographies at the sub-frames.
        object_rois: per object, the frame region its sub-frames touch (x0, y0, x1, y1), or None
            when it leaves the frame (then it is not drawn).
        gamma: γ of the linear-light conversion.
        sharp: (H, W, 3) float32 in [0, 1], the sample's sharp image.
        blur_px: the longest streak, px (see :class:`StillSample`).
    """

    lin: np.ndarray
    cams: np.ndarray
    objects: tuple[_Object, ...]
    object_mats: tuple[np.ndarray, ...]
    object_rois: tuple[tuple[int, int, int, int] | None, ...]
    gamma: float
    sharp: np.ndarray
    blur_px: float


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
    highlights: float = 0.0,
) -> StillSample:
    """Render a motion-blurred / sharp pair from one still photo.

    A short virtual video is rendered: every sub-frame is the photo warped by the homography of a
    random smooth, curved camera path at that instant (translation with curvature and jerk,
    in-plane rotation about a random centre, zoom, slight perspective), so streaks are curved and
    vary across the frame. With ``moving_objects`` (about half of the samples), 1-3 soft-edged
    foreground patches cut from the picture move on their own paths on top. The sub-frames are
    averaged in linear light (x^γ), and the mean goes back with x^(1/γ).

    Highlights: a photo stores light sources and glare as white, clipped, though they were many
    times brighter; blurred by a real exposure, such a lamp leaves a long saturated streak, not the
    faint one its stored white would make. With probability ``highlights`` the near-white pixels
    (stored maximum channel 0.9 -> 1.0, ramped) are made brighter than white in linear light, by a
    factor drawn log-uniformly from [2, 20], before the sub-frames are averaged; both images are
    then clipped to white, as a sensor clips (the sharp one stays white where it was).

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
        highlights: probability of brighter-than-white highlights (0: none, and no random draw,
            so samples stay those of earlier versions).

    Returns:
        A :class:`StillSample`; ``sharp`` is the virtual frame at the middle of the path.

    Raises:
        ValueError: wrong shape/dtype, image smaller than 16 px, or a non-positive ``max_blur``.
    """
    return render_plan(plan_from_still(rgb, rng, max_blur=max_blur, moving_objects=moving_objects, min_blur=min_blur,
                                       gamma=gamma, highlights=highlights))


def plan_from_still(
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    max_blur: float = DEFAULT_MAX_BLUR,
    moving_objects: bool = True,
    min_blur: float = 2.0,
    gamma: float = DEFAULT_GAMMA,
    highlights: float = 0.0,
) -> StillPlan:
    """Draw a stills-engine sample without rendering it: :func:`synthesize_from_still` is
    ``render_plan(plan_from_still(...))``, with the same arguments, random draws and errors.

    Raises:
        ValueError: as :func:`synthesize_from_still`.
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
    if not 0.0 <= highlights <= 1.0:
        raise ValueError(f"highlights must be a probability in [0, 1], got {highlights}")

    target = float(rng.uniform(min(min_blur, max_blur), max_blur))
    lin = cv2.pow(np.clip(rgb, 0.0, 1.0), gamma)
    boosted = highlights > 0 and rng.random() < highlights
    if boosted:
        lin = _boost_highlights(rgb, lin, rng)

    # Camera path scaled to the target streak, measured on a grid over the frame.
    probe = np.linspace(-0.5, 0.5, 17)
    frame_pts = _grid(0, 0, w - 1, h - 1)
    cam_path = _fit_scale(_random_path(rng, w, h), target, lambda p: _streaks(p.matrices(probe), frame_pts).max())

    objects: list[_Object] = []
    if moving_objects and rng.random() < 0.5:
        objects = _moving_objects(rng, lin, cam_path, probe, max_blur)

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

    sharp = _sharp_frame(rgb, lin, objects, gamma, from_linear=boosted)
    return StillPlan(lin=lin, cams=cams, objects=tuple(objects), object_mats=tuple(obj_mats), object_rois=tuple(rois),
                     gamma=gamma, sharp=np.ascontiguousarray(sharp, dtype=np.float32), blur_px=blur_px)


def render_plan(plan: StillPlan) -> StillSample:
    """Render a :class:`StillPlan` with OpenCV on this CPU: its sub-frames warped and averaged in
    linear light, the mean back through x^(1/γ)."""
    import cv2

    lin, cams = plan.lin, plan.cams
    h, w = lin.shape[:2]
    n = len(cams)
    acc = np.zeros_like(lin)
    for k in range(n):
        frame = cv2.warpPerspective(
            lin, cams[k], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        for obj, mats, roi in zip(plan.objects, plan.object_mats, plan.object_rois, strict=True):
            if roi is not None:
                _composite(frame, obj, mats[k], roi)
        acc += frame
    acc *= 1.0 / n
    blurred = cv2.pow(np.clip(acc, 0.0, 1.0), 1.0 / plan.gamma)
    return StillSample(
        blurred=np.ascontiguousarray(blurred, dtype=np.float32),
        sharp=plan.sharp,
        blur_px=plan.blur_px,
        subframes=n,
        objects=len(plan.objects),
        camera=cams,
    )


def _moving_objects(rng: np.random.Generator, lin: np.ndarray, cam_path: _Path, probe: np.ndarray, max_blur: float) -> list[_Object]:
    """1-3 foreground patches cut from the picture, each on its own path, scaled so that its
    streak (own motion plus the camera's) stays within ``max_blur``."""
    objects: list[_Object] = []
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
    return objects


def _boost_highlights(rgb: np.ndarray, lin: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``lin`` with its near-white pixels brighter than white: times 1 at a stored maximum channel
    of 0.9, ramping to times f at 1.0, f log-uniform in [2, 20] (see :func:`synthesize_from_still`)."""
    factor = float(np.exp(rng.uniform(np.log(2.0), np.log(20.0))))
    ramp = np.clip((np.clip(rgb, 0.0, 1.0).max(axis=2) - 0.9) / 0.1, 0.0, 1.0)
    return (lin * (1.0 + (factor - 1.0) * ramp)[..., None]).astype(np.float32)


def _sharp_frame(rgb: np.ndarray, lin: np.ndarray, objects: list[_Object], gamma: float, from_linear: bool = False) -> np.ndarray:
    """The virtual frame at the middle of the path: the input, with the moving patches pasted at
    their mid-path position; made from ``lin`` (clipped) when there are patches or ``from_linear``
    (brighter-than-white highlights)."""
    import cv2

    h, w = rgb.shape[:2]
    if objects or from_linear:
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
    return sharp
