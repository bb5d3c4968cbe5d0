"""Session 20 prototype (training/README.md, "What session 20 found"): the warp operator of a camera
path as a sparse matrix, a latent deconvolved along it (IRLS + conjugate gradients, hyper-Laplacian
prior), and random paths of the stills engine's family. Luma at 1/4 or 1/8 size; batched over C
candidate paths (block-diagonal matrices)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from path_bound import path_homographies  # noqa: E402

from deblurcli.pairs.stills import _grid, _streaks  # noqa: E402

SCALE_VEC = torch.tensor([1.0, 1, 0.6, 0.6, 0.8, 0.8, 0.35, 0.2, 0.25, 0.15, 0.15])


def mats_of_params(ps: torch.Tensor, h: int, w: int, n: int = 32) -> torch.Tensor:
    ts = torch.linspace(-0.5, 0.5, n)
    return torch.stack([path_homographies(p.float(), ts, w, h) for p in ps])


def random_params(rng: np.random.Generator) -> np.ndarray:
    """Unscaled random path like the engine's _random_path (centre at the frame's centre)."""
    d = rng.normal(size=2)
    d /= np.linalg.norm(d) + 1e-12
    p = np.zeros(11)
    p[0:2] = d * rng.uniform(0.3, 1.0)
    p[2:4] = rng.normal(scale=0.6, size=2)
    p[4:6] = rng.normal(scale=0.8, size=2)
    p[6:8] = rng.normal(scale=[0.35, 0.2]) * (rng.random() < 0.7)
    p[8] = rng.normal(scale=0.25) * (rng.random() < 0.5)
    p[9:11] = rng.normal(scale=0.15, size=2) * (rng.random() < 0.5)
    return p


def longest_streak(p: np.ndarray, h: int, w: int, n: int = 17) -> float:
    """The path's longest streak over the frame, px, measured as the stills engine measures it."""
    mats = path_homographies(torch.tensor(p, dtype=torch.float32), torch.linspace(-0.5, 0.5, n), w, h).double().numpy()
    return float(_streaks(mats, _grid(0, 0, w - 1, h - 1)).max())


def scaled_to(p: np.ndarray, target: float, h: int, w: int) -> np.ndarray:
    for _ in range(3):
        got = longest_streak(p, h, w)
        if got < 1e-9:
            break
        p = p * target / got
    return p


def subframes(streak: float) -> int:
    """Sub-frames to average for a longest streak of ``streak`` px: steps under 0.8 px (with 1.5x
    margin for curvature), 16-48."""
    return int(np.clip(np.ceil(1.5 * streak / 0.8), 16, 48))


def psnr_within(a: np.ndarray, ref: np.ndarray, m: int) -> np.ndarray:
    """PSNR (dB) of ``a`` (..., h, w) against ``ref`` (h, w), leaving out an ``m`` px border (where
    a long streak brings in what is outside the frame)."""
    d = (a - ref)[..., m:-m, m:-m]
    return -10 * np.log10((d**2).reshape(*a.shape[:-2], -1).mean(-1) + 1e-12)


def sparse_warp(mats: torch.Tensor, h: int, w: int) -> sp.csr_matrix:
    """mats (C,N,3,3) -> CSR (C*h*w, C*h*w): A x = mean over sub-frames of bilinear samples of x."""
    C, N = mats.shape[:2]
    gy, gx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    pix = np.stack([gx.ravel(), gy.ravel(), np.ones(h * w)], 0)
    inv = np.linalg.inv(mats.double().numpy().reshape(C * N, 3, 3))
    q = inv @ pix  # (C*N, 3, hw)
    qx = np.clip(q[:, 0] / q[:, 2], 0, w - 1)
    qy = np.clip(q[:, 1] / q[:, 2], 0, h - 1)
    x0 = np.minimum(np.floor(qx).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(qy).astype(np.int64), h - 2)
    fx, fy = qx - x0, qy - y0
    fx, fy = fx.astype(np.float32), fy.astype(np.float32)
    pos = (y0 * w + x0).astype(np.int32).reshape(C, N, h * w)
    fx, fy = fx.reshape(C, N, h * w), fy.reshape(C, N, h * w)
    # Entries laid out row by row (candidate, pixel), then (sub-frame, corner): CSR without a sort.
    cols = np.stack([pos, pos + 1, pos + w, pos + w + 1], -1)  # (C, N, hw, 4)
    vals = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], -1) / N
    cols = cols + (np.arange(C, dtype=np.int32) * h * w)[:, None, None, None]
    cols = np.ascontiguousarray(cols.transpose(0, 2, 1, 3)).ravel()
    vals = np.ascontiguousarray(vals.transpose(0, 2, 1, 3)).ravel()
    indptr = np.arange(C * h * w + 1, dtype=np.int64) * (4 * N)
    A = sp.csr_matrix((vals, cols, indptr), shape=(C * h * w, C * h * w))
    A.sum_duplicates()  # per row (short rows): halves the entries a matvec visits
    return A


def _grad_ops(h: int, w: int, C: int):
    ex = sp.diags([-np.ones(w), np.ones(w - 1)], [0, 1], shape=(w, w)).tolil()
    ex[w - 1, w - 1] = 0
    ey = sp.diags([-np.ones(h), np.ones(h - 1)], [0, 1], shape=(h, h)).tolil()
    ey[h - 1, h - 1] = 0
    Dx = sp.kron(sp.eye(h), ex.tocsr())
    Dy = sp.kron(ey.tocsr(), sp.eye(w))
    eye = sp.eye(C)
    return sp.kron(eye, Dx).tocsr().astype(np.float32), sp.kron(eye, Dy).tocsr().astype(np.float32)


_GRAD_CACHE: dict = {}


def latent_sparse(y: np.ndarray, A: sp.csr_matrix, C: int, lam: float = 3e-3, alpha: float = 0.8,
                  rounds: int = 3, iters: int = 20) -> np.ndarray:
    """y (h,w) -> latents (C,h,w): IRLS + CG on ||A x - y||^2 + lam sum |grad x|^alpha (per candidate)."""
    h, w = y.shape
    key = (h, w, C)
    if key not in _GRAD_CACHE:
        _GRAD_CACHE[key] = _grad_ops(h, w, C)
    Dx, Dy = _GRAD_CACHE[key]
    AT = A.T.tocsr()
    yb = np.tile(y.ravel().astype(np.float32), C)
    b = AT @ yb
    x = yb.copy()
    n = h * w
    wx = wy = np.ones_like(x)

    def dot(a, c):
        return (a * c).reshape(C, n).sum(1).repeat(n)

    for r in range(rounds):
        if r > 0:
            wx = (alpha / 2) * ((Dx @ x) ** 2 + 1e-4) ** ((alpha - 2) / 2)
            wy = (alpha / 2) * ((Dy @ x) ** 2 + 1e-4) ** ((alpha - 2) / 2)
        lr = lam if r > 0 else lam * 10

        def M(v, lr=lr, wx=wx, wy=wy):
            return AT @ (A @ v) + lr * (Dx.T @ (wx * (Dx @ v)) + Dy.T @ (wy * (Dy @ v)))

        res = b - M(x)
        p = res.copy()
        rs = dot(res, res)
        for _ in range(iters):
            Ap = M(p)
            a = rs / (dot(p, Ap) + 1e-20)
            x += a * p
            res -= a * Ap
            rn = dot(res, res)
            p = res + rn / (rs + 1e-20) * p
            rs = rn
    return x.reshape(C, h, w)
