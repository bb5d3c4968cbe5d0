#!/usr/bin/env python3
"""Turn a trained c2f file (RGB + Laplacian input) into a `whiten=true` c2f file with the same output.

See `deblurcli.models.c2f.whitened_from`. The result computes what the input file computes, to float
rounding (the difference on a random image is printed), and is a `--init` for `deblur train --arch
c2f --hparam whiten=true`: training continues from what was learned instead of from scratch.

    python scripts/whiten_init.py training/c2f-s.safetensors /tmp/c2f-w-init.safetensors
"""

from __future__ import annotations

import sys

import torch

from deblurcli.models.c2f import CoarseToFineUNet, whitened_from
from deblurcli.weights import load_model, save_model


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    old, _ = load_model(src)
    if not isinstance(old, CoarseToFineUNet):
        raise SystemExit(f"{src}: not a c2f file")
    try:
        new = whitened_from(old)
    except ValueError as e:
        raise SystemExit(f"{src}: {e}") from None
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        diff = float((old.eval()(x) - new.eval()(x)).abs().max())
    # The file's hyperparameters already say whiten=true; the metadata only names the source.
    save_model(dst, new, metadata={"converted_from": src})
    print(f"{dst}: c2f whiten=true, same output as {src} (max difference {diff:.1e})")


if __name__ == "__main__":
    main()
