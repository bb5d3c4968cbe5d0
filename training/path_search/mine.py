"""Hard negatives for the critic: run the critic-scored search on training frames (1/8 size) and keep
the paths it prefers, with their latents' true PSNR.

    python mine.py CRITIC.pt SECONDS OUT.npy START STEP data.npy [...]
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from critic import load, load_critic  # noqa: E402
from pathops import mats_of_params, psnr_within, subframes  # noqa: E402
from search import Scorer, distinct, search  # noqa: E402

torch.set_num_threads(1)
net = load_critic(sys.argv[1])
seconds, out, start, step = float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
frames = [f for f in load(sys.argv[6:]) if f["scale"] == 8][start::step]
t0, res = time.time(), []
for f in frames:
    if time.time() - t0 > seconds:
        break
    g = f["gamma"]
    yl = f["y"].astype(np.float32) ** g
    xs = f["x"].astype(np.float32)
    h, w = yl.shape
    sc = Scorer(net, yl, g)
    seen = search(sc, 4.0, 12, 15, 24)
    picks = distinct(seen, 4)
    ps = np.concatenate([f["params"][:1], np.stack(picks)]).astype(np.float32)
    lat, resid = sc.latents(mats_of_params(torch.from_numpy(ps), h, w, subframes(f["L"])))
    lat_s = np.clip(lat, 0, 1) ** (1 / g)
    m = max(3, int(f["L"] / 2))
    psnr = psnr_within(lat_s, xs, m)
    res.append(dict(photo=f["photo"], scale=8, gamma=g, L=f["L"], params=ps, psnr=psnr, base=f["base"], y=f["y"], x=f["x"],
                    lat=lat_s.astype(np.float16), resid=resid.astype(np.float16)))
    print(f"{len(res)} L{f['L']:.0f} true {psnr[0] - f['base']:+.1f}, found {np.round(psnr[1:] - f['base'], 1).tolist()} "
          f"(critic best {seen[0][0]:.2f}) [{time.time() - t0:.0f}s]", flush=True)
    np.save(out, np.array(res, dtype=object), allow_pickle=True)
