"""Benchmark the video path: seconds per 1280x720 frame through `deblurcli.video.deblur_video`
against the same frames as PNG files through the image path (read PNG -> tensor -> the same deblur
callable -> write PNG), in the same run, and against the model itself.

The deblur callable is cheap and deterministic (a 3x3 sharpening convolution), so the two I/O paths
are what is measured; the last row times one forward pass of a registered model (random weights:
speed does not depend on the values) on one frame, the cost the I/O adds to. The source is a
synthetic clip with moving texture and an AAC track, written first (libx264 crf 18); the PNG files
are its decoded frames, so both paths see the same pixels. The video path is also timed with
``compare=`` (the side-by-side video of ``deblur fix --compare``). On a shared machine compare ratios.

    python bench/video.py                          # 24 frames, model nafnet-s
    python bench/video.py --frames 48 --model ''   # no model row
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np


def make_source(path: Path, frames: int, w: int, h: int) -> None:
    """A clip of ``frames`` frames: a smooth random texture panning 7 px a frame, light noise, 440 Hz audio."""
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, size=(h // 8 + 2, (w + 7 * frames) // 8 + 2, 3), dtype=np.uint8)
    import cv2

    tex = cv2.resize(big, (big.shape[1] * 8, big.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    out = av.open(str(path), "w")
    v = out.add_stream("libx264", rate=30, options={"crf": "18"})
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    a = out.add_stream("aac", rate=48000)
    a.layout = "mono"
    for i in range(frames):
        img = tex[:h, 7 * i : 7 * i + w]
        img = np.clip(img.astype(np.int16) + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        f.pts = i
        out.mux(v.encode(f))
    out.mux(v.encode(None))
    t, n = 0, 1024
    while t < frames / 30 * 48000:
        s = (0.3 * np.sin(2 * np.pi * 440 * np.arange(t, t + n) / 48000)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(s, format="fltp", layout="mono")
        af.sample_rate, af.pts = 48000, t
        out.mux(a.encode(af))
        t += n
    out.mux(a.encode(None))
    out.close()


def sharpen():  # noqa: ANN201
    """The cheap deblur callable: x + 0.5 * (x - 3x3 box blur), per channel, clamped."""
    import torch
    import torch.nn.functional as F

    k = torch.full((3, 1, 3, 3), 1.0 / 9.0)

    def f(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            blur = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
            return (x + 0.5 * (x - blur)).clamp_(0.0, 1.0)

    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--model", default="nafnet-s", help="registered model timed on one frame ('' to skip)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    import torch

    from deblurcli.images import read_image, write_image
    from deblurcli.video import deblur_video

    torch.set_num_threads(1)  # the bench shares a 2-core machine; both paths get the same
    fn = sharpen()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = d / "clip.mp4"
        make_source(src, args.frames, w, h)
        pngs = d / "png"
        pngs.mkdir()
        (d / "png_out").mkdir()
        with av.open(str(src)) as c:
            for i, f in enumerate(c.decode(video=0)):
                write_image(pngs / f"{i:04d}.png", read_image_from_array(f.to_ndarray(format="rgb24")))

        t0 = time.perf_counter()
        r = deblur_video(src, d / "out.mp4", fn, batch=args.batch)
        video_s = (time.perf_counter() - t0) / r.frames

        t0 = time.perf_counter()
        r = deblur_video(src, d / "out2.mp4", fn, batch=args.batch, compare=d / "out2_compare.mp4")
        compare_s = (time.perf_counter() - t0) / r.frames

        t0 = time.perf_counter()
        files = sorted(pngs.iterdir())
        for p in files:
            image = read_image(p)
            write_image(d / "png_out" / p.name, image.with_tensor(fn(image.to_tensor())))
        png_s = (time.perf_counter() - t0) / len(files)

        x = torch.rand(args.batch, 3, h, w)
        t0 = time.perf_counter()
        for _ in range(3):
            fn(x)
        call_s = (time.perf_counter() - t0) / (3 * args.batch)

    rows = [
        ("video path (decode, RGB, callable, encode x264 crf 18, audio copy)", video_s),
        ("video path + --compare (a second, 2x wide video)", compare_s),
        ("PNG path (read PNG, tensor, callable, write PNG)", png_s),
        ("the callable alone", call_s),
    ]
    if args.model:
        from deblurcli.inference import Deblurrer
        from deblurcli.models import create_model
        from deblurcli.registry import REGISTRY

        entry = REGISTRY[args.model]
        torch.manual_seed(0)
        deb = Deblurrer(create_model(entry.architecture, **entry.hyperparameters), device="cpu")
        t0 = time.perf_counter()
        deb.deblur(torch.rand(1, 3, h, w))
        rows.append((f"model {args.model} (random weights), one forward pass", time.perf_counter() - t0))

    print(f"{args.frames} frames of {w}x{h}, batch {args.batch}, torch threads 1")
    print(f"{'path':<70}{'s/frame':>10}{'x PNG':>8}" + (f"{'x model':>9}" if args.model else ""))
    model_s = rows[-1][1] if args.model else None
    for name, s in rows:
        line = f"{name:<70}{s:>10.4f}{s / png_s:>8.2f}"
        if model_s:
            line += f"{s / model_s:>9.3f}"
        print(line)
    overhead = video_s - call_s
    if model_s:
        print(f"video I/O overhead per frame: {overhead:.4f} s = {overhead / model_s:.1%} of the model's time")


def read_image_from_array(rgb: np.ndarray):  # noqa: ANN201
    from deblurcli.images import Image

    return Image(pixels=np.ascontiguousarray(rgb))


if __name__ == "__main__":
    main()
