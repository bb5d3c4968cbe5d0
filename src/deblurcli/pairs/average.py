"""Linear-light averaging of real frames, and optical-flow interpolation between them.

The paper's recipe (its section 4): every frame goes through g⁻¹(x) = x^γ, the frames are averaged,
and the mean goes back through g(x) = x^(1/γ) (γ = 2.2 by default). All arithmetic is float; pixels
are rounded once, at the end. ``interpolate=K`` inserts K optical-flow frames between neighbours
before averaging (the REDS approach) to avoid ghosting at low fps.

Imports nothing of :mod:`deblurcli.pairs`: the other modules of the package build on this one.
"""

from __future__ import annotations

import threading

import numpy as np

#: Default gamma of g⁻¹(x) = x^γ (sRGB is close to 2.2).
DEFAULT_GAMMA = 2.2


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

