"""PSNR / SSIM against independent references: scikit-image, and a direct SciPy 3-D filter for
MATLAB's convention (a full 11x11x11 kernel correlated with 'nearest' = MATLAB's 'replicate')."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import textured_rgb
from deblurcli.metrics import SSIM_CONVENTIONS, psnr, quantize_uint8, ssim


def _t(*arrays: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) arrays -> (B, 3, H, W) float32 in [0, 1], as images.to_tensor makes them."""
    return torch.from_numpy(np.stack([a.transpose(2, 0, 1) for a in arrays]).astype(np.float32) / 255.0)


def _degrade(a: np.ndarray, seed: int, amount: int = 25) -> np.ndarray:
    r = np.random.default_rng(seed)
    blurred = ndimage.uniform_filter(a.astype(np.float64), size=(3, 5, 1))
    return np.clip(blurred + r.integers(-amount, amount + 1, a.shape), 0, 255).astype(np.uint8)


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        structural_similarity(
            a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
    )


def _matlab_reference(a: np.ndarray, b: np.ndarray) -> float:
    """MATLAB ssim(A, ref) on an H x W x 3 uint8 array, written out directly: a 3-D Gaussian
    (sigma 1.5, 11 taps per axis) over the volume, replicate padding, mean of the whole map."""
    x = np.arange(-5, 6)
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    kernel = g[:, None, None] * g[None, :, None] * g[None, None, :]
    A, B = a.astype(np.float64), b.astype(np.float64)

    def f(z: np.ndarray) -> np.ndarray:
        return ndimage.correlate(z, kernel, mode="nearest")

    mx, my = f(A), f(B)
    vx, vy, cxy = f(A * A) - mx**2, f(B * B) - my**2, f(A * B) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())


@pytest.mark.parametrize("hw", [(64, 80), (11, 11), (37, 23)])
def test_ssim_skimage_matches_scikit_image(hw: tuple[int, int]) -> None:
    a = textured_rgb(*hw, seed=1)
    b = _degrade(a, seed=2)
    got = ssim(_t(a), _t(b), "skimage")
    assert got.shape == (1,)
    assert got.item() == pytest.approx(_sk_ssim(a, b), abs=1e-4)


def test_ssim_matlab_matches_direct_3d_reference() -> None:
    a = textured_rgb(48, 56, seed=3)
    b = _degrade(a, seed=4)
    got = ssim(_t(a), _t(b), "matlab").item()
    assert got == pytest.approx(_matlab_reference(a, b), abs=1e-4)
    # The conventions really differ on colour images (the 3-D window mixes colour planes).
    assert abs(got - _sk_ssim(a, b)) > 1e-3


def test_batch_equals_one_by_one_and_both_conventions_on_grey() -> None:
    pairs = [(textured_rgb(32, 40, seed=s), None) for s in range(3)]
    preds = [_degrade(a, seed=10 + i) for i, (a, _) in enumerate(pairs)]
    targets = [a for a, _ in pairs]
    for conv in SSIM_CONVENTIONS:
        batch = ssim(_t(*preds), _t(*targets), conv)
        single = torch.cat([ssim(_t(p), _t(t), conv) for p, t in zip(preds, targets)])
        assert torch.allclose(batch, single, atol=1e-12)
    batch_psnr = psnr(_t(*preds), _t(*targets))
    for i, (p, t) in enumerate(zip(preds, targets)):
        assert batch_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=255), abs=1e-4)
    # A grey image replicated to RGB scores as the grey image in both conventions (the 3-D window
    # over identical planes is the 2-D window), which is what lets greyscale sets be scored as RGB.
    g = textured_rgb(30, 30, seed=7)[:, :, :1]
    h = _degrade(g, seed=8)
    g3, h3 = np.repeat(g, 3, 2), np.repeat(h, 3, 2)
    sk_grey = structural_similarity(
        h[:, :, 0], g[:, :, 0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(_t(h3), _t(g3), "skimage").item() == pytest.approx(sk_grey, abs=1e-4)
    assert ssim(_t(h3), _t(g3), "matlab").item() == pytest.approx(_matlab_reference(h3, g3), abs=1e-4)


def test_identical_images_and_data_range() -> None:
    x = _t(textured_rgb(20, 20))
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, x, "matlab").item() == pytest.approx(1.0, abs=1e-12)
    assert torch.isinf(psnr(x, x)).all()
    y = (x + 0.05).clamp(0, 1)
    assert psnr(x * 255, y * 255, data_range=255).item() == pytest.approx(psnr(x, y).item(), abs=1e-5)
    assert ssim(x * 255, y * 255, data_range=255).item() == pytest.approx(ssim(x, y).item(), abs=1e-6)


def test_quantize_scores_the_image_as_saved() -> None:
    a = textured_rgb(24, 24, seed=5)
    t = _t(a)
    noisy = (t + (torch.rand_like(t) - 0.5) * 0.8 / 255).clamp(0, 1)  # < half a level: vanishes when saved
    assert torch.equal(quantize_uint8(noisy), t)
    assert torch.isinf(psnr(noisy, t, quantize=True)).all()
    assert not torch.isinf(psnr(noisy, t)).any()
    assert ssim(noisy, t, quantize=True).item() == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs_raise_clear_errors() -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(x, torch.rand(1, 3, 16, 15))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ssim(x[0], x[0])
    with pytest.raises(ValueError, match="unknown SSIM convention"):
        ssim(x, x, "pillow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 8, 30), torch.rand(1, 3, 8, 30))


def test_align_finds_the_offset_and_scores_the_same_target_window() -> None:
    from deblurcli.metrics import align

    big = textured_rgb(60, 70, seed=3)
    target = big[5:45, 5:55]
    moved = big[7:47, 4:54]  # moved[y, x] = target[y + 2, x - 1]: content offset by (-2, +1)
    pred, tgt, shifts = align(_t(moved, target), _t(target, target), 3)
    assert shifts == [(-2, 1), (0, 0)]
    assert pred.shape == tgt.shape == (2, 3, 34, 44)
    assert torch.equal(pred[0], tgt[0]) and torch.equal(pred[1], tgt[1])  # exact after the shift
    assert torch.equal(tgt[0], _t(target)[0, :, 3:-3, 3:-3])  # the target window never moves
    # Beyond the radius the offset cannot be undone: the best shift stops at the radius.
    _, _, (s,) = align(_t(moved), _t(target), 1)
    assert s == (-1, 1)
    p0, t0, (s0,) = align(_t(moved), _t(target), 0)
    assert s0 == (0, 0) and p0.shape == (1, 3, 40, 50)
    with pytest.raises(ValueError, match="too small"):
        align(_t(target[:6, :6]), _t(target[:6, :6]), 3)
