#!/usr/bin/env python3
"""Export a training checkpoint's generator as a .safetensors model, to score or use a run mid-way.

    python scripts/export_checkpoint.py runs/c2f/train/checkpoints/step_0001200.pt /tmp/c2f-1200.safetensors
    python scripts/export_checkpoint.py runs/c2f/train /tmp/c2f-latest.safetensors   # newest checkpoint
"""

from __future__ import annotations

import sys
from pathlib import Path

from deblurcli.train import export_checkpoint, list_checkpoints


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    if src.is_dir():
        found = list_checkpoints(src)
        if not found:
            raise SystemExit(f"no checkpoint in {src}/checkpoints")
        src = found[-1]
    print(export_checkpoint(src, dst), f"(from {src})")


if __name__ == "__main__":
    main()
