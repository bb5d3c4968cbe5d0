"""A learned score for a blind path search: given a latent deconvolved with a candidate path, the
blurred frame and the re-blur residual, predict the latent's PSNR gain over the blurred frame; trained
to rank the candidates of one frame (true path, perturbed, rescaled, random).

    python critic.py train SECONDS OUT.pt dA.npy [dB.npy ...]
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Critic(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        c = [width, 48, 64, 96, 128]
        layers = [nn.Conv2d(3, c[0], 3, padding=1), nn.ReLU()]
        for a, b in zip(c[:-1], c[1:], strict=True):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(b, b, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c[-1], 1)

    def forward(self, lat, y, resid):
        """lat (B,1,h,w) stored values, y (B,1,h,w) or (1,1,h,w), resid (B,1,h,w) linear -> (B,) predicted gain, dB."""
        y = y.expand_as(lat)
        z = torch.cat([lat - 0.5, y - 0.5, 10 * resid], 1)
        f = self.body(z).mean((2, 3))
        return self.head(f)[:, 0]


def load_critic(path: str) -> Critic:
    """A critic from a .pt state dict or a .safetensors file (``critic-s20.safetensors``), in eval mode."""
    net = Critic()
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        net.load_state_dict(load_file(path))
    else:
        net.load_state_dict(torch.load(path))
    return net.eval()


def crop_gain(lat, x, y):
    """lat (K,h,w), x (h,w), y (h,w) -> (K,) PSNR gain of each latent over y on this crop."""
    def p(a):
        return -10 * torch.log10(((a - x) ** 2).flatten(-2).mean(-1) + 1e-10)
    return p(lat) - p(y[None])


def batch(frames, rng, scale, B):
    crop = 96 if scale == 4 else 64
    sel = [f for f in frames if f["scale"] == scale]
    lats, ys, rs, gs = [], [], [], []
    for _ in range(B):
        f = sel[rng.integers(len(sel))]
        h, w = f["y"].shape
        m = max(3, int(f["L"] / 2))
        ch, cw = min(crop, h - 2 * m), min(crop, w - 2 * m)
        ch, cw = min(ch, cw), min(ch, cw)
        y0, x0 = rng.integers(m, h - m - ch + 1), rng.integers(m, w - m - cw + 1)
        sl = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        lat = torch.from_numpy(f["lat"][(slice(None),) + sl].astype(np.float32))
        y = torch.from_numpy(f["y"][sl].astype(np.float32))
        x = torch.from_numpy(f["x"][sl].astype(np.float32))
        r = torch.from_numpy(f["resid"][(slice(None),) + sl].astype(np.float32))
        if rng.random() < 0.5:
            lat, y, x, r = lat.flip(-1), y.flip(-1), x.flip(-1), r.flip(-1)
        if rng.random() < 0.5:
            lat, y, x, r = lat.transpose(-1, -2), y.transpose(-1, -2), x.transpose(-1, -2), r.transpose(-1, -2)
        if ch != crop:  # pad to the batch's size (rare: small frames)
            pad = (0, crop - cw, 0, crop - ch)
            lat, y, r = F.pad(lat, pad), F.pad(y, pad), F.pad(r, pad)
        lats.append(lat)
        ys.append(y[None].expand_as(lat))
        rs.append(r)
        gs.append(crop_gain(lat[:, :ch, :cw], x, y[:ch, :cw]))
    return torch.cat(lats)[:, None], torch.cat(ys)[:, None], torch.cat(rs)[:, None], torch.stack(gs)


def loss_fn(s, g):
    """s, g (B,K): within-row pairwise logistic ranking (weighted by the gap) + a little regression."""
    ds = s[:, :, None] - s[:, None, :]
    dg = g[:, :, None] - g[:, None, :]
    wt = (dg > 0.25).float() * dg.clamp(max=5)
    rank = (F.softplus(-ds) * wt).sum() / wt.sum().clamp(min=1)
    return rank + 0.02 * ((s - g) ** 2).mean()


def load(paths):
    out = []
    for p in paths:
        out += list(np.load(p, allow_pickle=True))
    return out


@torch.no_grad()
def score_frames(net, frames):
    """Per frame: Spearman of critic vs true PSNR, and whether argmax critic is within 0.5 dB of the best."""
    rows = []
    for f in frames:
        lat = torch.from_numpy(f["lat"].astype(np.float32))[:, None]
        y = torch.from_numpy(f["y"].astype(np.float32))[None, None]
        r = torch.from_numpy(f["resid"].astype(np.float32))[:, None]
        s = net(lat, y, r).numpy()
        g = f["psnr"] - f["base"]
        rs, rg = np.argsort(np.argsort(s)), np.argsort(np.argsort(g))
        rho = np.corrcoef(rs, rg)[0, 1]
        rows.append((rho, g[np.argmax(s)], g.max(), g[0]))
    return np.array(rows)


EVERY = int(os.environ.get("EVERY", "200"))


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    seconds, out = float(sys.argv[2]), sys.argv[3]
    frames = load(sys.argv[4:])
    val = load([os.environ.get("VAL", str(Path(__file__).resolve().parent / "dV.npy"))])
    print(len(frames), "frames;", len(val), "validation frames", flush=True)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = Critic()
    # INIT: continue from a critic; MINED: files of mine.py (hard negatives), half of the 1/8 batches.
    env = os.environ
    if env.get("INIT"):
        net = load_critic(env["INIT"]).train()
    mined = load(env["MINED"].split(",")) if env.get("MINED") else []
    opt = torch.optim.AdamW(net.parameters(), lr=float(env.get("LR", "1e-3")), weight_decay=1e-4)
    t0, step, hist = time.time(), 0, []
    scales = sorted({f["scale"] for f in frames}, reverse=True)  # alternate 1/8, 1/4 (those present)
    while time.time() - t0 < seconds:
        scale = scales[step % len(scales)]
        src = mined if mined and scale == 8 and step % 4 == 0 else frames
        lat, y, r, g = batch(src, rng, scale, 4 if scale == 4 else 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s = net(lat, y, r).float().view(g.shape)
        loss = loss_fn(s, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
        step += 1
        if step % EVERY == 0:
            net.eval()
            a = score_frames(net, val)
            net.train()
            print(f"step {step} [{time.time()-t0:.0f}s] loss {np.mean(hist[-200:]):.3f}  val: spearman {a[:, 0].mean():.3f}, "
                  f"picked {a[:, 1].mean():+.2f} dB (best {a[:, 2].mean():+.2f}, true {a[:, 3].mean():+.2f}), "
                  f"picked within 0.5 dB of best {np.mean(a[:, 2] - a[:, 1] < 0.5):.2f}", flush=True)
            torch.save(net.state_dict(), out)
    torch.save(net.state_dict(), out)


if __name__ == "__main__":
    main()
