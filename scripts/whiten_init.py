#!/usr/bin/env python3
"""Turn a trained c2f file (RGB + Laplacian input) into a `whiten=true` c2f file with the same output.

The whitened body reads 10 conditioned channels instead of 4 (see
`deblurcli.models._common.condition_whitened`): RGB (same), the Laplacian channel at gain 30 instead
of 2 (its weights are scaled by 2/30), and six gradient channels (weights zero, so they change nothing
until training uses them); the estimate's 3 channels follow. The result computes what the input file
computes, to float rounding (checked here on a random image), and is a `--init` for `deblur train
--arch c2f --hparam whiten=true`: training continues from what was learned instead of from scratch.

    python scripts/whiten_init.py training/c2f-s.safetensors /tmp/c2f-w-init.safetensors
"""

from __future__ import annotations

import json
import sys

import torch

from deblurcli.models import create_model
from deblurcli.models._common import WHITEN_LAPLACIAN_GAIN
from deblurcli.weights import load_model, save_model


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    loaded = load_model(src)
    old = loaded[0] if isinstance(loaded, tuple) else loaded
    hp = dict(old.hparams)
    if getattr(old, "arch", "") != "c2f" or hp.get("whiten") or not hp.get("laplacian", True):
        raise SystemExit(f"{src}: not a c2f file with the plain RGB + Laplacian input")
    new = create_model("c2f", **{**hp, "whiten": True})
    state = old.state_dict()
    w = state["body.intro.0.weight"]  # (C, 4 + 3, 3, 3): RGB, 2 x Laplacian, estimate
    neww = torch.zeros(w.shape[0], 10 + 3, *w.shape[2:], dtype=w.dtype)
    neww[:, 0:3] = w[:, 0:3]
    neww[:, 3] = w[:, 3] * (2.0 / WHITEN_LAPLACIAN_GAIN)
    neww[:, 10:13] = w[:, 4:7]
    state["body.intro.0.weight"] = neww
    new.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        diff = float((old.eval()(x) - new.eval()(x)).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"the converted model differs from {src} by {diff:.2g}")
    save_model(dst, new, metadata={"initialised_from": src, "converted": json.dumps({"whiten": True})})
    print(f"{dst}: c2f whiten=true, same output as {src} (max difference {diff:.1e})")


if __name__ == "__main__":
    main()
