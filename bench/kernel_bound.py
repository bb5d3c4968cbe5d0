"""What knowing the blur is worth on the held-out 720p sets: an upper bound for deblurring designs.

For each frame of a set written by ``scripts/make_720p_sets.py``, the set's random camera path is
replayed (same seed, same draws) on an image of isolated dots, which gives the true blur kernel
(PSF) at each dot. Each tile of the blurred frame is then Wiener-deconvolved, in the set's linear
space, with the PSF at the tile's centre (non-blind: the kernel is known, only its variation within a
tile is ignored). Printed: the luma PSNR gain over the blurred frame for a few noise-to-signal
ratios. With ``--lines`` it also prints an oracle that knows only which *straight* streak fits each
tile best (a bank of line kernels, lengths x angles, each tile taking the deconvolution closest to
the truth): what a "classify the local motion, then deconvolve" design could reach at best.

Frames with independently moving objects (the stills engine adds them to about half) are replayed
without their kernels (the objects' patches come from the dot image): where an object hides the
dots a tile keeps its blurred pixels, elsewhere on the object it is deconvolved with the camera's
kernel, which is wrong there. Such frames are marked, and the means are printed with and without them.

    python bench/kernel_bound.py [--data /work/data] [--set small720-g1.0] [--frames 4] [--lines]

The set names fix the blur that made them (make_720p_sets.py): small720-* 10-25 px, heldout720-*
20-120 px; gamma from the name. Needs the held-out sets (run make_720p_sets.py first).
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

NSR = (1e-3, 3e-3, 1e-2, 3e-2)
LUMA = np.float32([0.299, 0.587, 0.114])


def _sets() -> dict[str, tuple[int, tuple[float, float]]]:
    """scripts/make_720p_sets.py's sets by name prefix (e.g. ``check720``): the seed their paths
    were drawn with and their streak range (min, max px), as the script says them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import make_720p_sets as sets

    return {name: (seed, blur) for large, small, seed in sets.FAMILIES
            for name, blur in ((large, sets.LARGE_BLUR), (small, sets.SMALL_BLUR))}


def set_seed(name: str) -> int:
    """The seed the paths of set ``name`` (e.g. ``check720-g1.0``) were drawn with."""
    return _sets()[name.rsplit("-g", 1)[0]][0]


def held_out_set(data: Path, name: str, frames: int) -> tuple[float, float, float, list[Path]]:
    """The gamma, streak range (min, max px) and first ``frames`` blurred files of a held-out set
    of ``scripts/make_720p_sets.py`` (the set's name says them); exits with one line if unknown."""
    prefix, gtag = name.rsplit("-g", 1) if "-g" in name else (name, "")
    sets = _sets()
    if prefix not in sets:
        sys.exit(f"unknown set {name!r}: expected one of {', '.join(f'{p}-gG' for p in sets)}")
    files = sorted((data / name / "blur").glob("*.png"))[:frames]
    if not files:
        sys.exit(f"no frames in {data / name / 'blur'} (run scripts/make_720p_sets.py)")
    return float(gtag), *sets[prefix][1], files


def _kernel_fft(psf: np.ndarray, centre: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of ``psf`` placed on a ``shape`` canvas with its origin ``centre`` at (0, 0)."""
    kp = np.zeros(shape, np.float32)
    kp[: psf.shape[0], : psf.shape[1]] = psf
    return np.fft.rfft2(np.roll(kp, (-centre[0], -centre[1]), (0, 1)))


def _wiener(blurred_fft: np.ndarray, kernel_fft: np.ndarray, shape: tuple[int, int], nsr: float) -> np.ndarray:
    """Wiener deconvolution of a padded image by a kernel, both given as rfft2 on ``shape``."""
    return np.fft.irfft2(blurred_fft * np.conj(kernel_fft) / (np.abs(kernel_fft) ** 2 + nsr), s=shape)


def _line_psf(length: float, angle: float) -> np.ndarray:
    """A straight streak of ``length`` px at ``angle``, centred: the kernel of a camera translating
    uniformly along it (:func:`deblurcli.pairs.camera_psf` on translation homographies)."""
    from deblurcli.pairs import camera_psf

    ts = np.linspace(-0.5, 0.5, max(int(length * 4), 2)) * (length - 1)
    path = np.repeat(np.eye(3)[None], len(ts), axis=0)
    path[:, 0, 2], path[:, 1, 2] = ts * np.cos(angle), ts * np.sin(angle)
    return camera_psf(path, 0.0, 0.0, int(length) + 3 | 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/data"), help="make_720p_sets.py's --out")
    ap.add_argument("--set", default="small720-g1.0")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--lines", action="store_true", help="also the best-straight-streak oracle")
    args = ap.parse_args()
    gamma, min_blur, max_blur, blurred_files = held_out_set(args.data, args.set, args.frames)

    import cv2

    from deblurcli.images import read_image
    from deblurcli.pairs import synthesize_from_still

    # Dots far enough apart that one dot's streak never reaches the next one's window.
    grid = 64 if max_blur <= 30 else 256
    radius = int(max_blur) + 4
    gains, line_gains = [], []
    for path in blurred_files:
        name = path.stem
        b = read_image(path).pixels.astype(np.float32) / 255 @ LUMA
        s = read_image(path.parent.parent / "sharp" / path.name).pixels.astype(np.float32) / 255 @ LUMA
        h, w = b.shape
        dots = np.zeros((h, w, 3), np.float32)
        dots[grid // 2 :: grid, grid // 2 :: grid] = 1.0
        # The set drew its path with this generator at this gamma; at gamma 1 the dots' blur is the PSF.
        replay = synthesize_from_still(dots, np.random.default_rng((set_seed(args.set), zlib.crc32(name.encode()))),
                                       max_blur=max_blur, min_blur=min_blur, gamma=1.0)
        spread = replay.blurred[..., 1]
        # Each tile is deconvolved within a window around it (margin: two streak lengths, so the
        # window's wrap-around stays out of the tile), in the set's linear space.
        margin = 2 * radius
        lin = cv2.copyMakeBorder(b**gamma, margin, margin, margin, margin, cv2.BORDER_REFLECT_101)
        ty_n, tx_n = h // grid, w // grid
        hh, ww = ty_n * grid, tx_n * grid

        def psnr(x: np.ndarray) -> float:
            return float(10 * np.log10(1 / np.mean((x[:hh, :ww] - s[:hh, :ww]) ** 2)))

        outs = {nsr: b.copy() for nsr in NSR}
        for ty in range(ty_n):
            for tx in range(tx_n):
                cy, cx = ty * grid + grid // 2, tx * grid + grid // 2
                y0, x0 = max(cy - radius, 0), max(cx - radius, 0)
                psf = spread[y0 : cy + radius + 1, x0 : cx + radius + 1].copy()
                if psf.sum() < 0.5:  # covered by a moving object: no PSF here
                    continue
                psf /= psf.sum()
                window = lin[ty * grid : (ty + 1) * grid + 2 * margin, tx * grid : (tx + 1) * grid + 2 * margin]
                fft, kfft = np.fft.rfft2(window), _kernel_fft(psf, (cy - y0, cx - x0), window.shape)
                tile = (slice(ty * grid, (ty + 1) * grid), slice(tx * grid, (tx + 1) * grid))
                for nsr in NSR:
                    x = _wiener(fft, kfft, window.shape, nsr)[margin : margin + grid, margin : margin + grid]
                    outs[nsr][tile] = np.clip(x, 0, 1) ** (1 / gamma)
        base = psnr(b)
        g = [psnr(outs[nsr]) - base for nsr in NSR]
        gains.append((g, replay.objects == 0))
        note = f" ({replay.objects} moving objects not replayed)" if replay.objects else ""
        print(f"{name}: streak {replay.blur_px:.0f} px, blurred {base:.2f} dB, known-PSF Wiener gain "
              + ", ".join(f"nsr {n:g} {v:+.2f}" for n, v in zip(NSR, g)) + note, flush=True)
        if args.lines:
            line_gains.append(_line_oracle(b, s, gamma, max_blur))
            print(f"{name}: best straight streak per 48 px tile (oracle) gain {line_gains[-1]:+.2f}", flush=True)
    for label, rows in (("all", [g for g, _ in gains]), ("without moving objects", [g for g, still in gains if still])):
        if rows:
            m = np.mean(rows, axis=0)
            print(f"mean over {len(rows)} frames ({label}), known-PSF Wiener gain: " + ", ".join(f"nsr {n:g} {v:+.2f}" for n, v in zip(NSR, m)))
    if line_gains:
        print(f"mean best-straight-streak oracle gain: {np.mean(line_gains):+.2f}")


def _line_oracle(b: np.ndarray, s: np.ndarray, gamma: float, max_blur: float) -> float:
    """PSNR gain (dB) of the frame assembled from, per 48 px tile, the best of: the blurred tile and
    its Wiener deconvolutions by straight streaks (lengths up to ``max_blur``, angles every ~2 px of
    arc), over the blurred frame."""
    import cv2

    tile = 48
    h, w = b.shape
    pad = int(max_blur) + 8
    lin = cv2.copyMakeBorder(b**gamma, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    shape, fft = lin.shape, np.fft.rfft2(lin)
    th, tw = h // tile, w // tile

    def tile_err(x: np.ndarray) -> np.ndarray:
        d = (x[: th * tile, : tw * tile] - s[: th * tile, : tw * tile]) ** 2
        return d.reshape(th, tile, tw, tile).mean(axis=(1, 3))

    blurred = tile_err(b)
    best = blurred.copy()
    for length in np.geomspace(4, max_blur, 8):
        n_angles = max(4, min(48, int(np.pi * length / 2)))
        for angle in np.arange(n_angles) * np.pi / n_angles:
            psf = _line_psf(float(length), float(angle))
            c = psf.shape[0] // 2
            kfft = _kernel_fft(psf, (c, c), shape)
            for nsr in (3e-3, 3e-2):
                x = _wiener(fft, kfft, shape, nsr)[pad : pad + h, pad : pad + w]
                best = np.minimum(best, tile_err(np.clip(x, 0, 1) ** (1 / gamma)))
    return float(10 * np.log10(blurred.mean() / best.mean()))


if __name__ == "__main__":
    main()
