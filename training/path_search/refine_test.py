"""Does the critic-scored CMA-ES of search.py, started near the true path, find it? (session 21)

    python refine_test.py SEED FRAMES
Validation crops at 1/4 size (γ 1.0, streaks 20-120 px at full size), each blurred along a random
path; two starts per frame (the true path perturbed by 10% and 25% of the streak, as gen.py's), 6
generations of 8 around each; prints the start's and the best-scored path's trajectory error (px at
1/4) and latent gain.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import regress as R  # noqa: E402
from critic import load_critic  # noqa: E402
from pathops import SCALE_VEC, mats_of_params, psnr_within, sparse_warp  # noqa: E402
from search import Scorer, search  # noqa: E402

torch.set_num_threads(1)
seed = int(sys.argv[1])
rng = np.random.default_rng(seed)
critic = load_critic(str(Path(__file__).resolve().parent / "critic-s20.safetensors"))
pool = R.load_pool(R.photo_files(R.data_dir(), validation=True))
t0 = time.time()
rows = []
for _ in range(int(sys.argv[2])):
    x, L, p = R.random_frame(pool, rng)
    A = sparse_warp(mats_of_params(torch.tensor(p[None], dtype=torch.float32), 180, 320, 40), 180, 320)
    y = (np.round(np.clip((A @ x.ravel()).reshape(180, 320), 0, 1) * 255) / 255).astype(np.float32)
    m = max(3, int(L / 2))
    sc = Scorer(critic, y, 1.0)
    def ev(q, sc=sc, x=x, y=y, m=m, p=p):
        s, lat = sc.score_params(q[None], 40)
        g = float(psnr_within(np.clip(lat[0], 0, 1), x, m) - psnr_within(y, x, m))
        e = float(R.traj_loss(torch.tensor(q[None], dtype=torch.float32), torch.tensor(p[None], dtype=torch.float32)))
        return float(s[0]), g, e
    st, gt, _ = ev(p)
    for sig in (0.1, 0.25):
        start = p + sig * L * rng.normal(size=11) * SCALE_VEC.numpy()
        s0, g0, e0 = ev(start)
        seen = search(sc, 0.3, 8, 6, 40, x0=start, seed=3) + [(s0, start)]
        seen.sort(key=lambda t: -t[0])
        s1, g1, e1 = ev(seen[0][1])
        rows.append((e0, g0, e1, g1, gt))
        print(f"L {L*4:.0f}: true {gt:+.2f} ({st:.2f}) | start {e0:.2f} px {g0:+.2f} ({s0:.2f}) -> "
              f"refined {e1:.2f} px {g1:+.2f} ({s1:.2f}) [{time.time()-t0:.0f}s]", flush=True)
r = np.array(rows)
print("mean: start %.2f px %+.2f dB -> refined %.2f px %+.2f dB; true %+.2f" % tuple(r.mean(0)))
