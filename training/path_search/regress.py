"""A network that reads the camera path off a blurred frame (session 21 prototype, not in the package).

The blind search of search.py starts from nothing and a learned critic is fooled by what it finds on
new photos (training/README.md, session 20). This regresses the stills engine's 11 path numbers
directly from the blurred frame's luma at 1/4 size (320x180 for a 1280x720 frame), supervised by the
true path, so that a search (or a non-blind step) can start where the network says.

    python regress.py gen SECONDS POOL_DIR         # one core: training frames, in chunks of 64
    python regress.py train SECONDS OUT.pt         # the other: env POOL, SEED, LR, BATCH, WIDTH, INIT
    python regress.py eval NET.pt SET [FRAME ...]   # env: SETS (make_720p_sets.py --out), REFINE, CRITIC
    python regress.py precision FRAMES             # what a path's error costs the latent (dB per px)

Networks: ``NET=auto`` (AutoNet: the autocorrelation of the Laplacian in 18 tiles, the better one)
or ``NET=cnn`` (PathNet: a CNN on the frame). Loss: the distance of the paths' point trajectories
on a 5x3 grid over the frame at 9 times, px at 1/4 size, the smaller of the two time directions (a
blur is the same for a path and its reverse); for AutoNet also of the two signs of the t^2 terms. Training frames
are made here, on the fly, from training photos only (the Debian photos after the 24 held-out, check
and fresh ones in crc32 order, Sun-Hays80, Urban100 but its last 6, BSDS300, Kodak24, McMaster18):
a 320x180 crop blurred in linear light (γ 1.0 or 2.2) along a random path of the engine's family
(longest streak 16-130 px at full size), 8-bit.
"""
from __future__ import annotations

import glob
import math
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pathops import SCALE_VEC, latent_sparse, mats_of_params, psnr_within, random_params, scaled_to, sparse_warp  # noqa: E402

from deblurcli.blur import LAPLACIAN_KERNEL  # noqa: E402
from deblurcli.images import read_image  # noqa: E402

H4, W4 = 180, 320
N_SUB = 40  # sub-frames per blurred frame: steps under 0.8 px for streaks up to ~130 px at full size
# Time reversal flips the sign of every odd power of t in the path (translation t, t^3; rotation t;
# zoom; perspective); the blur is the same for both.
REVERSE = torch.tensor([-1.0, -1, 1, 1, -1, -1, -1, 1, -1, -1, -1])
PARAM_SCALE = torch.tensor([10.0, 10, 6, 6, 8, 8, 3.5, 2, 2.5, 1.5, 1.5])  # network output units


_gy, _gx = torch.meshgrid(torch.linspace(8, H4 - 9, 3), torch.linspace(8, W4 - 9, 5), indexing="ij")
_PTS = torch.stack([_gx.flatten(), _gy.flatten(), torch.ones(15)], 0)  # (3, 15)


def _project(mats: torch.Tensor) -> torch.Tensor:
    """(..., N, 3, 3) homographies -> (..., N, 15, 2): where they take the 15 grid points."""
    q = mats @ _PTS
    return q[..., :2, :].transpose(-1, -2) / q[..., 2:3, :].transpose(-1, -2)


def trajectories(p: torch.Tensor) -> torch.Tensor:
    """(B,11) -> (B,9,15,2): where 15 grid points of the sharp frame are at 9 times."""
    return _project(mats_of_params(p, H4, W4, 9))


EVEN = torch.tensor([1.0, 1, -1, -1, 1, 1, 1, -1, 1, 1, 1])  # negates the t^2 terms: p -> -(reversed p)


def variants(p, mirror: bool) -> list:
    """The paths that blur as ``p`` does: ``p`` reversed in time (and with ``mirror`` both with the
    t^2 terms negated: every kernel turned by 180 degrees, to first order, which a kernel's
    autocorrelation cannot tell apart). Tensors or arrays."""
    flips = [REVERSE, EVEN, EVEN * REVERSE] if mirror else [REVERSE]
    return [p] + [p * (f if isinstance(p, torch.Tensor) else f.numpy()) for f in flips]


def traj_loss(pred: torch.Tensor, true: torch.Tensor, mirror: bool = False) -> torch.Tensor:
    """Per frame: mean px distance of the trajectories, the smallest over the ``variants`` of the
    true path."""
    a = trajectories(pred)
    return torch.stack([(a - trajectories(v)).norm(dim=-1).mean((1, 2)) for v in variants(true, mirror)]).min(0).values


def photo_files(data: Path, validation: bool = False) -> list[str]:
    sharp = str(data / "sharp")
    if validation:
        return sorted(glob.glob(sharp + "/urban100_subset/*"))[-6:]
    deb = sorted(glob.glob(sharp + "/debian-photos/*"), key=lambda f: zlib.crc32(f.split("/")[-1].rsplit(".", 1)[0].encode()))
    files = deb[24:] + sorted(glob.glob(sharp + "/sun_hays80/*")) + sorted(glob.glob(sharp + "/urban100_subset/*"))[:-6]
    for d in ("bsds300_train200", "bsds300_test100", "kodak24", "mcmaster18"):
        files += sorted(glob.glob(f"{sharp}/{d}/*"))
    return files


def load_pool(files: list[str]) -> list[torch.Tensor]:
    """Each photo as stored RGB (3,h,w) at the pixel scale of a 1/4-size 720p frame: large photos
    as if their long side were 1280 px (and 1600 px, for more crops), then 1/4; small ones
    (BSDS, Kodak) as they are. Portrait photos are turned to landscape."""
    pool = []
    for f in files:
        rgb = read_image(f).pixels
        if rgb.shape[0] > rgb.shape[1]:
            rgb = np.ascontiguousarray(rgb.transpose(1, 0, 2))
        t0 = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)
        long = max(rgb.shape[:2])
        for side in [320, 400] if long >= 1000 else [None]:
            t = t0
            if side:
                hw = (round(rgb.shape[0] * side / long), round(rgb.shape[1] * side / long))
                t = F.interpolate(t0[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
            if t.shape[1] >= H4 and t.shape[2] >= W4:
                pool.append(t)
    return pool


_gy4, _gx4 = torch.meshgrid(torch.linspace(0, H4 - 1, 46), torch.linspace(0, W4 - 1, 81), indexing="ij")
_PIX_COARSE = torch.stack([_gx4.flatten(), _gy4.flatten(), torch.ones(46 * 81)], 1)  # (46*81, 3)


def make_batch(pool: list[torch.Tensor], rng: np.random.Generator, n: int):
    """(input (n,1,H4,W4) stored luma of the blurred frames, true params (n,11) at 1/4 size)."""
    crops, params, gammas = [], [], []
    for _ in range(n):
        im = pool[rng.integers(len(pool))]
        y0, x0 = rng.integers(im.shape[1] - H4 + 1), rng.integers(im.shape[2] - W4 + 1)
        c = im[:, y0 : y0 + H4, x0 : x0 + W4]
        if rng.random() < 0.5:
            c = c.flip(-1)
        crops.append(c)
        params.append(scaled_to(random_params(rng), rng.uniform(16, 130) / 4, H4, W4))
        gammas.append(float(rng.choice([1.0, 2.2])))
    p = torch.tensor(np.stack(params), dtype=torch.float32)
    g = torch.tensor(gammas)[:, None, None, None]
    # Linear luma, warped: the warp is linear, so warping the luma is warping each channel and
    # averaging (the 8-bit encoding after it is per channel, which this leaves out).
    lin = (torch.stack(crops) ** g).mean(1, keepdim=True)
    inv = torch.linalg.inv(mats_of_params(p, H4, W4, N_SUB))  # (n,N,3,3)
    # Where each output pixel samples the sharp frame, computed on every 4th pixel and
    # interpolated (a homography is smooth: within 0.001 px; per pixel it took 2x as long).
    q = _PIX_COARSE @ inv.transpose(-1, -2)
    grid = ((2 * q[..., :2] / q[..., 2:] + 1) / torch.tensor([W4, H4]) - 1).view(n * N_SUB, 46, 81, 2)
    grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(H4, W4), mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    src = lin.repeat_interleave(N_SUB, 0)
    blur = F.grid_sample(src, grid, padding_mode="border", align_corners=False)
    blur = blur.view(n, N_SUB, 1, H4, W4).mean(1)
    return torch.round(blur.clamp(0, 1) ** (1 / g) * 255) / 255, p


def features(y: torch.Tensor) -> torch.Tensor:
    """Stored luma (B,1,h,w) -> network input: the luma less its mean, and its Laplacian (the
    paper's 4th channel, x10: blur lives in the gradients, ~100x smaller than the values)."""
    return torch.cat([y - y.mean((2, 3), keepdim=True), 10 * _laplacian(y)], 1)


def _laplacian(y: torch.Tensor) -> torch.Tensor:
    """(B,1,h,w) luma -> its 4-neighbour Laplacian (the project's kernel), borders replicated."""
    k = torch.tensor(LAPLACIAN_KERNEL, dtype=torch.float32).view(1, 1, 3, 3)
    return F.conv2d(F.pad(y.float(), (1, 1, 1, 1), mode="replicate"), k)


class PathNet(nn.Module):
    """Dense 3x3 convolutions down to a 6x10 map that keeps where in the frame each feature is
    (rotation and zoom blur differ across it), then two linear layers to the 11 numbers."""

    def __init__(self, width: int = 32):
        super().__init__()
        ws = [width, width * 2, width * 3, width * 4, width * 6, width * 8]
        layers: list[nn.Module] = [nn.Conv2d(2, ws[0], 3, padding=1), nn.ReLU(), nn.Conv2d(ws[0], ws[0], 3, padding=1), nn.ReLU()]
        for a, b in zip(ws[:-1], ws[1:], strict=True):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(b, b, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.squeeze = nn.Conv2d(ws[-1], 32, 1)
        self.head = nn.Sequential(nn.Linear(32 * 6 * 10, 512), nn.ReLU(), nn.Linear(512, 11))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        f = self.body(features(y))  # (B, C, 6, 10) for 180x320
        f = F.relu(self.squeeze(f)).flatten(1)
        return self.head(f).float() * PARAM_SCALE


def data_dir() -> Path:
    return Path(os.environ.get("DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def gen(seconds: float, out_dir: str) -> None:
    """Write chunks of 64 training frames (8-bit luma, true params) to ``out_dir`` for ``seconds``:
    run on one core beside the trainer, which would otherwise wait on the warps."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(int(os.environ.get("SEED", "0")))
    pool = load_pool(photo_files(data_dir()))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    t0, i = time.time(), 0
    while time.time() - t0 < seconds:
        y, p = make_batch(pool, rng, 64)
        f = Path(out_dir) / f"c{os.environ.get('SEED', '0')}_{i:05d}.npz"
        np.savez(str(f) + ".tmp.npz", y=(y * 255).round().byte().numpy(), p=p.numpy())
        os.replace(str(f) + ".tmp.npz", f)
        i += 1


class ChunkPool:
    """The generator's chunks, the newest ``keep`` of them in memory; batches drawn at random."""

    def __init__(self, root: str, keep: int = 600):
        self.root, self.keep, self.loaded = Path(root), keep, {}

    def refresh(self) -> None:
        for f in sorted(self.root.glob("c*_?????.npz")):
            if f.name not in self.loaded:
                z = np.load(f)
                self.loaded[f.name] = (torch.from_numpy(z["y"]), torch.from_numpy(z["p"]))
        while len(self.loaded) > self.keep:
            self.loaded.pop(min(self.loaded, key=lambda k: k.split("_")[1]))

    def batch(self, rng: np.random.Generator, n: int):
        keys = list(self.loaded)
        ys, ps = [], []
        for _ in range(n):
            y, p = self.loaded[keys[rng.integers(len(keys))]]
            j = rng.integers(len(y))
            ys.append(y[j])
            ps.append(p[j])
        return torch.stack(ys).float() / 255, torch.stack(ps)


def tile_autocorr(y: torch.Tensor, tile: int = 96, reach: int = 32) -> torch.Tensor:
    """Stored luma (B,1,180,320) -> (B, 18, 2*reach+1, 2*reach+1): the autocorrelation of the
    Laplacian in 3x6 windowed tiles of ``tile`` px, each divided by its value at zero offset. For a
    blurred picture whose Laplacian is roughly white, it is the local kernel's autocorrelation: the
    streak's length and direction, whichever way the camera went."""
    lap = _laplacian(y)[:, 0]
    win = torch.hann_window(tile, periodic=False)
    win = win[:, None] * win[None, :]
    tiles = [lap[:, int(r) : int(r) + tile, int(c) : int(c) + tile]
             for r in torch.linspace(0, H4 - tile, 3) for c in torch.linspace(0, W4 - tile, 6)]
    t = torch.stack(tiles, 1) * win
    n = tile + reach  # zero padding enough that offsets up to ``reach`` do not wrap around
    f = torch.fft.rfft2(t, s=(n, n))
    ac = torch.fft.irfft2(f.real**2 + f.imag**2, s=(n, n))
    ac = torch.roll(ac, (reach, reach), (-2, -1))[..., : 2 * reach + 1, : 2 * reach + 1]
    return ac / (ac[..., reach : reach + 1, reach : reach + 1] + 1e-12)


class AutoNet(nn.Module):
    """The 18 tiles' autocorrelations, each through one small CNN (shared), then a head that sees
    all 18 in place (how the blur varies across the frame is the rotation, zoom and perspective)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.tile_net = nn.Sequential(  # 65 -> 33 -> 17 -> 9 -> 5
            nn.Conv2d(1, w // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w // 2, w, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 3 * w, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3 * w, 3 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(3 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(4 * w, 16, 1), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(18 * 16 * 25, 512), nn.ReLU(), nn.Linear(512, 11))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        ac = tile_autocorr(y)
        b = ac.shape[0]
        f = self.tile_net(ac.reshape(b * 18, 1, *ac.shape[-2:]))
        return self.head(f.reshape(b, -1)).float() * PARAM_SCALE


def make_net(kind: str, width: int) -> nn.Module:
    return AutoNet(width) if kind == "auto" else PathNet(width)


def train(seconds: float, out: str) -> None:
    """Train for ``seconds`` on the chunks ``gen`` writes to ``POOL`` (Adam, cosine decay over the
    time, bf16 autocast); validates on 64 frames of 6 unseen photos every 2 minutes, saving ``out``."""
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    data = data_dir()
    rng = np.random.default_rng(int(os.environ.get("SEED", "0")))
    batch, lr = int(os.environ.get("BATCH", "16")), float(os.environ.get("LR", "5e-4"))
    pool = ChunkPool(os.environ.get("POOL", "pool"))
    while not pool.loaded:
        pool.refresh()
        time.sleep(1)
    vpool = load_pool(photo_files(data, validation=True))
    vy, vp = zip(*[make_batch(vpool, np.random.default_rng(1000 + i), 16) for i in range(4)], strict=True)
    vy, vp = torch.cat(vy), torch.cat(vp)
    kind = os.environ.get("NET", "cnn")
    mirror = kind == "auto"
    net = make_net(kind, int(os.environ.get("WIDTH", "32")))
    if os.environ.get("INIT"):
        sd = torch.load(os.environ["INIT"])
        sd.pop("kind", None)
        net.load_state_dict(sd)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    print(f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters", flush=True)
    def save() -> None:  # written whole, then renamed: a run stopped mid-save keeps the last one
        torch.save({**net.state_dict(), "kind": kind}, out + ".tmp")
        os.replace(out + ".tmp", out)

    t0, step, last, hist = time.time(), 0, 0.0, []
    while (el := time.time() - t0) < seconds:
        for gr in opt.param_groups:  # cosine decay over the time budget, after a short warm-up
            gr["lr"] = lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(el / seconds, 1.0)))
        if step % 50 == 0:
            pool.refresh()
        y, p = pool.batch(rng, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = net(y.to(memory_format=torch.channels_last))
        loss = traj_loss(pred, p, mirror).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        hist.append(loss.item())
        step += 1
        if el - last > 120 or step == 1:
            last = el
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                vl = traj_loss(net(vy.to(memory_format=torch.channels_last)), vp, mirror)
            zero = traj_loss(torch.zeros_like(vp), vp, mirror)
            print(f"step {step} [{el:.0f} s] {len(pool.loaded)} chunks, train {np.mean(hist[-100:]):.3f} px | "
                  f"validation {vl.mean():.3f} px "
                  f"(median {vl.median():.3f}; no motion {zero.mean():.3f})", flush=True)
            save()
    save()
    print(f"done: {step} steps of {batch}", flush=True)


def load_net(path: str) -> nn.Module:
    sd = torch.load(path)
    kind = sd.pop("kind", "cnn")
    net = make_net(kind, sd["tile_net.2.weight"].shape[0] if kind == "auto" else sd["body.0.weight"].shape[0])
    net.load_state_dict(sd)
    net.kind = kind
    return net.eval()


def predict(net: nn.Module, stored: np.ndarray, flip: bool = True) -> np.ndarray:
    """A 1280x720 stored RGB frame (h,w,3) in [0,1] -> the 11 numbers at 1/4 size. With ``flip``,
    the mean of the frame's and its mirror's predictions (mirrored back)."""
    t = torch.from_numpy(np.ascontiguousarray(stored)).permute(2, 0, 1)[None].float()
    y = F.interpolate(t, size=(H4, W4), mode="area").mean(1, keepdim=True)
    y = torch.round(y * 255) / 255
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        p = net(y)[0].float()
        if not flip:
            return p.numpy()
        q = net(y.flip(-1))[0].float()
    # Mirroring x: x-translation terms and the x-perspective change sign, and so does rotation.
    q = q * torch.tensor([-1.0, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1])
    # Average with the variant of q nearest to p.
    tp = trajectories(p[None])
    q = min(variants(q, net.kind == "auto"), key=lambda v: float((tp - trajectories(v[None])).norm(dim=-1).mean()))
    return ((p + q) / 2).numpy()


def evaluate(net_path: str, set_name: str, want: set[str]) -> None:
    """Per held-out frame: the 1/4-size latent's gain with the true path, the predicted one, and the
    prediction refined by a short CMA-ES scored by the session-20 critic (env CRITIC, REFINE)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from critic import load_critic
    from search import Scorer, conj, gain, held_out_frames, search, small_luma

    net = load_net(net_path)
    critic = load_critic(os.environ.get("CRITIC", str(Path(__file__).resolve().parent / "critic-s20.safetensors")))
    refine = int(os.environ.get("REFINE", "0"))
    rows = []
    for name, yst, xst, rep, gamma in held_out_frames(set_name, want):
        t0 = time.time()
        y4, x4 = small_luma(yst, gamma, 4), small_luma(xst, gamma, 4)
        m4 = max(3, int(rep.blur_px / 8))
        sc = Scorer(critic, y4, gamma)
        mats4 = torch.from_numpy(conj(rep.camera, 4))  # the true path at 1/4, at the set's sub-frames
        s_true, lat = sc.score_mats(mats4[None])
        g_true = float(gain(lat[0], x4, y4, gamma, m4))
        p = predict(net, yst)
        # The autocorrelation network cannot tell a path from the one with its t^2 terms negated:
        # the critic picks (both reported).
        cands = [p, p * EVEN.numpy()] if net.kind == "auto" else [p]  # (time reversal blurs the same)
        s_pred, lat = sc.score_params(np.stack(cands), N_SUB)
        g = [float(gain(lat[i], x4, y4, gamma, m4)) for i in range(len(cands))]
        # How far the predicted trajectories are from the true ones (px at 1/4, the grid of the loss,
        # at the set's own sub-frame times; the nearest variant).
        true_tr = _project(mats4.float())
        err = min(float((_project(mats_of_params(torch.tensor(v)[None], H4, W4, len(mats4))[0]) - true_tr).norm(dim=-1).mean())
                  for v in variants(p, net.kind == "auto"))
        pick = int(np.argmax(s_pred))
        p = cands[pick]
        row = [g_true, g[pick], max(g)]
        msg = (f"{set_name}/{name} (streak {rep.blur_px:.0f} px): true {g_true:+.2f} (critic {float(s_true[0]):.2f}) | predicted "
               + ", ".join(f"{v:+.2f} ({float(c):.2f})" for v, c in zip(g, s_pred, strict=True)) + f"; {err:.2f} px off")
        if refine:
            seen = search(sc, 0.3, 8, refine, N_SUB, x0=p, seed=3) + [(float(s_pred[pick]), p)]
            seen.sort(key=lambda t: -t[0])
            _, lat = sc.score_params(seen[0][1][None], N_SUB)
            row.append(float(gain(lat[0], x4, y4, gamma, m4)))
            msg += f" | refined {row[-1]:+.2f} ({seen[0][0]:.2f})"
        rows.append(row)
        print(msg + f" [{time.time() - t0:.0f} s]", flush=True)
    means = " / ".join(f"{v:+.2f}" for v in np.mean(rows, 0))
    print(f"mean over {len(rows)} (true / predicted, the critic's pick / the better candidate / refined): {means}", flush=True)


def random_frame(pool: list[torch.Tensor], rng: np.random.Generator) -> tuple[np.ndarray, float, np.ndarray]:
    """A sharp luma crop (H4,W4) of the pool, a longest streak L (20-120 px at full size, in px at
    1/4) and a random path of that streak at 1/4 size."""
    im = pool[rng.integers(len(pool))]
    y0, x0 = rng.integers(im.shape[1] - H4 + 1), rng.integers(im.shape[2] - W4 + 1)
    L = rng.uniform(20, 120) / 4
    return im[:, y0 : y0 + H4, x0 : x0 + W4].mean(0).numpy(), L, scaled_to(random_params(rng), L, H4, W4)


def precision(frames: int) -> None:
    """What a predicted path's error costs: validation crops (γ 1.0) blurred along a random path,
    deconvolved at 1/4 with it and with 12 perturbations of it (5 sizes, as gen.py's), the latents'
    gain against their trajectory error (px at 1/4, as the loss measures it)."""
    rng = np.random.default_rng(7)
    pool = load_pool(photo_files(data_dir(), validation=True))
    rows = []
    for _ in range(frames):
        x, L, p = random_frame(pool, rng)
        cands = [p] + [p + sig * L * rng.normal(size=11) * SCALE_VEC.numpy() for sig in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5) for _ in range(2)]
        ps = torch.tensor(np.stack(cands), dtype=torch.float32)
        A = sparse_warp(mats_of_params(ps, H4, W4, N_SUB), H4, W4)
        y = np.round(np.clip((A[: H4 * W4, : H4 * W4] @ x.ravel()).reshape(H4, W4), 0, 1) * 255) / 255
        lat = latent_sparse(y.astype(np.float32), A, len(ps), lam=2e-3)
        m = max(3, int(L / 2))
        g = psnr_within(np.clip(lat, 0, 1), x, m) - psnr_within(y, x, m)
        err = traj_loss(ps, ps[:1].expand(len(ps), -1)).numpy()
        rows += list(zip(err, g, strict=True))
    rows = np.array(rows)
    for lo, hi in [(0, 0.25), (0.25, 0.5), (0.5, 1), (1, 1.5), (1.5, 2), (2, 3), (3, 100)]:
        s = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi)]
        if len(s):
            print(f"trajectory error {lo}-{hi} px: {len(s)} latents, gain mean {s[:, 1].mean():+.2f} dB, median {np.median(s[:, 1]):+.2f}")


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(float(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "train":
        train(float(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "eval":
        evaluate(sys.argv[2], sys.argv[3], set(sys.argv[4:]))
    elif sys.argv[1] == "precision":
        torch.set_num_threads(1)
        precision(int(sys.argv[2]))
