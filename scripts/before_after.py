"""Make the README's before/after picture: a crop of a real blurred photo beside the model's output.

    python scripts/before_after.py ../shared/data/real-blur/13_image7.png docs/before_after.jpg --width 800

The whole photo goes through the model (as `deblur fix` would); the crop is taken afterwards, so the
picture shows what a user gets. Each half is labelled with its blur score (variance of the Laplacian
of the full image's 8-bit luma, as `deblur score` prints it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from deblurcli.blur import score_image
from deblurcli.images import read_image
from deblurcli.inference import Deblurrer
from deblurcli.registry import DEFAULT_MODEL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--crop", default=None, help="x,y,w,h of the region to show (default: all)")
    ap.add_argument("--width", type=int, default=900, help="width of the picture in pixels (both halves)")
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args()

    before = read_image(args.image)
    after = Deblurrer(args.model, device="cpu").deblur_image(before)
    scores = score_image(before), score_image(after)
    halves = []
    for img in (before, after):
        pil = PILImage.fromarray(np.rint(img.rgb_float() * 255).astype(np.uint8))  # grey, 16-bit: RGB8
        if args.crop:
            x, y, w, h = (int(v) for v in args.crop.split(","))
            pil = pil.crop((x, y, x + w, y + h))
        halves.append(pil)
    half_w = args.width // 2
    scale = half_w / halves[0].width
    size = (half_w, round(halves[0].height * scale))
    # Shrinking is filtered; enlarging a small photo keeps its pixels visible (no invented smoothness).
    resample = PILImage.Resampling.LANCZOS if scale < 1 else PILImage.Resampling.NEAREST
    halves = [h.resize(size, resample) for h in halves]
    bar = 28
    canvas = PILImage.new("RGB", (size[0] * 2 + 4, size[1] + bar), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=18)
    for i, (h, label) in enumerate(zip(halves, ("blurred", f"deblur fix ({args.model})"))):
        x0 = i * (size[0] + 4)
        canvas.paste(h, (x0, bar))
        draw.text((x0 + 6, 4), f"{label}: blur score {scores[i]:.0f}", fill="black", font=font)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, quality=args.quality, optimize=True)
    print(f"{args.out}: {canvas.size[0]}x{canvas.size[1]}, {args.out.stat().st_size // 1024} KiB; blur score {scores[0]:.1f} -> {scores[1]:.1f}")


if __name__ == "__main__":
    main()
