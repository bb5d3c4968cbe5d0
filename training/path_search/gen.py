"""Critic data: blurred frames at 1/4 or 1/8 from training photos, latents deconvolved with the true
path and with wrong ones, each with its PSNR against the sharp frame (stored values).

    python gen.py SEED SECONDS OUT.npy
"""
import glob
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pathops import SCALE_VEC, latent_sparse, mats_of_params, psnr_within, random_params, scaled_to, sparse_warp, subframes  # noqa: E402

from deblurcli.images import read_image, resize_max_side  # noqa: E402

torch.set_num_threads(1)
SHARP = str(Path(os.environ.get("DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) / "sharp")
seed, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(seed)

# Training photos only: the Debian photos not held out / check / fresh (crc32 order: first 24 are
# those), Sun-Hays80, Urban100 (its last 6 kept for validating the critic).
deb = sorted(glob.glob(SHARP + "/debian-photos/*"), key=lambda f: zlib.crc32(f.split("/")[-1].rsplit(".", 1)[0].encode()))
photos = deb[24:] + sorted(glob.glob(SHARP + "/sun_hays80/*")) + sorted(glob.glob(SHARP + "/urban100_subset/*"))[:-6]
if seed >= 1000:
    photos = sorted(glob.glob(SHARP + "/urban100_subset/*"))[-6:]


def load(f):
    return resize_max_side(read_image(f).pixels, 1280).astype(np.float32) / 255


frames = []
t0 = time.time()
while time.time() - t0 < seconds:
    f = photos[rng.integers(len(photos))]
    rgb = load(f)
    H, W = rgb.shape[:2]
    if W >= 1280 and H >= 720:
        y0, x0 = rng.integers(H - 720 + 1), rng.integers(W - 1280 + 1)
        rgb = rgb[y0 : y0 + 720, x0 : x0 + 1280]
    scale = int(rng.choice([4, 8]))
    gamma = float(rng.choice([1.0, 2.2]))
    L = rng.uniform(20, 120) / scale
    lin = torch.from_numpy(rgb).permute(2, 0, 1)[None] ** gamma
    x = F.interpolate(lin, scale_factor=1 / scale, mode="area").mean(1)[0]  # linear luma
    h, w = x.shape
    p = scaled_to(random_params(rng), L, h, w)
    cands = [p, p * (1 + rng.normal(scale=0.03))]
    for sig in (0.05, 0.1, 0.2, 0.3, 0.5):
        cands.append(p + sig * L * rng.normal(size=11) * SCALE_VEC.numpy())
    cands.append(p * rng.uniform(0.5, 0.8))
    cands.append(p * rng.uniform(1.2, 1.6))
    q = p.copy()
    q[6:] = 0
    cands.append(scaled_to(q, L, h, w))  # translation only, same length
    for _ in range(2):
        cands.append(scaled_to(random_params(rng), L * rng.uniform(0.6, 1.4), h, w))
    ps = torch.tensor(np.stack(cands), dtype=torch.float32)
    A = sparse_warp(mats_of_params(ps, h, w, subframes(L)), h, w)
    yl = (A[: h * w, : h * w] @ x.numpy().ravel()).reshape(h, w)  # the true path's block
    ys = np.round(np.clip(yl, 0, 1) ** (1 / gamma) * 255) / 255  # stored, 8-bit
    yl = (ys**gamma).astype(np.float32)
    lat = latent_sparse(yl, A, len(ps), lam=2e-3)
    resid = (A @ lat.ravel()).reshape(len(ps), h, w) - yl[None]
    lat_s = np.clip(lat, 0, 1) ** (1 / gamma)
    xs = x.numpy().clip(0, 1) ** (1 / gamma)
    m = max(3, int(L / 2))
    ps_ = psnr_within(lat_s, xs, m)
    base = float(psnr_within(ys, xs, m))
    frames.append(dict(photo=f.split("/")[-1], scale=scale, gamma=gamma, L=L, params=ps.numpy(), psnr=ps_, base=base,
                       y=ys.astype(np.float16), x=xs.astype(np.float16), lat=lat_s.astype(np.float16), resid=resid.astype(np.float16)))
    print(f"{len(frames)} {f.split('/')[-1][:20]} s{scale} g{gamma} L{L:.0f} base {base:.1f} "
          f"gains {np.round(ps_ - base, 1).tolist()} [{time.time()-t0:.0f}s]", flush=True)
    if len(frames) % 10 == 0:
        np.save(out, np.array(frames, dtype=object), allow_pickle=True)
np.save(out, np.array(frames, dtype=object), allow_pickle=True)
