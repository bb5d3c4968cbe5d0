"""Benchmark: what scoring one 1280x720 pair costs, against what decoding it costs.

    PYTHONPATH=src python bench/evaluate.py [--device auto|cpu|cuda] [--threads N] [--repeat 5]

A 1280x720 pair (GoPro's frame size) is written as PNG to a temporary folder: a real photo from the
shared data (resized; a generated texture when the folder is absent) and a motion-blurred copy.
Timed, median of ``--repeat`` runs: decoding both PNGs (deblurcli.images.read_image), PSNR, SSIM
in each convention (torch, on ``--device``), and scikit-image's structural_similarity on the same
pair as an outside baseline. The table gives each time and its ratio to the decode time: below 1
means scoring keeps up with reading the files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("DEBLUR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _pair(folder: Path) -> tuple[Path, Path, str]:
    photos = sorted((SHARED / "sharp").rglob("*.png")) if (SHARED / "sharp").is_dir() else []
    if photos:
        src = photos[len(photos) // 2]
        sharp = np.asarray(PILImage.open(src).convert("RGB").resize((1280, 720), PILImage.Resampling.BICUBIC))
        origin = f"{src.relative_to(SHARED)} resized"
    else:
        r = np.random.default_rng(0)
        yy, xx = np.mgrid[0:720, 0:1280]
        sharp = np.stack([xx % 256, yy % 256, ((xx // 16 + yy // 16) % 2) * 255], -1) + r.integers(-20, 21, (720, 1280, 3))
        sharp = np.clip(sharp, 0, 255).astype(np.uint8)
        origin = "generated texture"
    blurred = np.rint(ndimage.uniform_filter(sharp.astype(np.float64), size=(1, 15, 1))).astype(np.uint8)
    s, b = folder / "sharp.png", folder / "blur.png"
    PILImage.fromarray(sharp).save(s)
    PILImage.fromarray(blurred).save(b)
    return b, s, origin


def _time(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up (kernels, caches)
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import torch
    from skimage.metrics import structural_similarity

    from deblurcli.images import read_image
    from deblurcli.metrics import psnr, ssim

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    with tempfile.TemporaryDirectory() as tmp:
        b_path, s_path, origin = _pair(Path(tmp))
        decode = _time(lambda: (read_image(b_path), read_image(s_path)), args.repeat, lambda: None)
        b_img, s_img = read_image(b_path), read_image(s_path)
    x = b_img.to_tensor().to(dev)
    y = s_img.to_tensor().to(dev)
    rows = [
        ("decode the pair (2 PNG, read_image)", decode),
        ("PSNR (torch)", _time(lambda: psnr(x, y), args.repeat, sync)),
        ("SSIM skimage convention (torch)", _time(lambda: ssim(x, y, "skimage"), args.repeat, sync)),
        ("SSIM matlab convention (torch)", _time(lambda: ssim(x, y, "matlab"), args.repeat, sync)),
        ("PSNR + both SSIMs (torch)", _time(lambda: (psnr(x, y), ssim(x, y), ssim(x, y, "matlab")), args.repeat, sync)),
        (
            "scikit-image structural_similarity (CPU, float64)",
            _time(
                lambda: structural_similarity(
                    b_img.pixels, s_img.pixels, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                    use_sample_covariance=False, data_range=255,
                ),
                args.repeat,
                lambda: None,
            ),
        ),
    ]
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"1280x720 pair ({origin}); device {dev} ({name}); median of {args.repeat}")
    print(f"{'what':52} {'ms':>9} {'x decode':>9}")
    for what, t in rows:
        print(f"{what:52} {t * 1e3:9.2f} {t / decode:9.3f}")


if __name__ == "__main__":
    main()
