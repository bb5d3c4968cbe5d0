"""Deblurrer: size in == size out, tiled == untiled, batching, devices/precision, Image round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import textured_rgb
from deblurcli.errors import DeblurError
from deblurcli.images import Image, read_image, write_image
from deblurcli.inference import Deblurrer, tile_spans
from deblurcli.models import create_model


def _random(arch: str, **hp) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(arch, **hp)
    with torch.no_grad():  # move away from the identity-like init so differences would show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def picture() -> torch.Tensor:
    return torch.from_numpy(textured_rgb(300, 260, 1)).permute(2, 0, 1)[None].float() / 255


def test_tile_spans_cover_and_align() -> None:
    for size, tile, ov, align in [(300, 160, 64, 4), (1000, 256, 32, 16), (257, 128, 32, 16), (100, 128, 32, 4)]:
        spans = tile_spans(size, tile, ov, align)
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(s % align == 0 for s, _ in spans)
        assert all(a[1] - b[0] >= ov for a, b in zip(spans, spans[1:]))  # neighbours share >= overlap


def test_tiled_equals_untiled_for_a_convolutional_model(picture: torch.Tensor) -> None:
    # No normalisation: the output is a local function of the input with a receptive-field radius of
    # about 15 px (7x7, two stride-2 3x3, two transposed 3x3, 7x7). Tiles are aligned to the model's
    # stride (4) and every output pixel comes from tiles with >= overlap/4 = 16 px of real context,
    # so the results are the same computation up to float32 summation order.
    model = _random("deblurgan", ngf=4, n_blocks=0, norm="none")
    full = Deblurrer(model, tile=0, precision="fp32").deblur(picture)
    tiled = Deblurrer(model, tile=160, tile_overlap=64, precision="fp32").deblur(picture)
    assert full.shape == tiled.shape == picture.shape
    assert (tiled - full).abs().max() < 1e-5


def test_tiled_close_to_untiled_for_nafnet(picture: torch.Tensor) -> None:
    # NAFNet's channel attention pools over the whole input; a tile pools over itself. That is the
    # only non-local operation, and it shifts results by far less than one 8-bit level on average
    # (1/255 = 3.9e-3); measured here: mean 3.6e-5, max 3.4e-4.
    model = _random("nafnet", width=4)
    full = Deblurrer(model, tile=0, precision="fp32").deblur(picture)
    tiled = Deblurrer(model, tile=160, tile_overlap=64, precision="fp32").deblur(picture)
    diff = (tiled - full).abs()
    assert diff.mean() < 2e-4 and diff.max() < 4e-3


def test_shared_instance_norm_statistics_bring_tiles_closer(picture: torch.Tensor) -> None:
    # InstanceNorm normalises by image-wide statistics; tiles share them (one statistics pass).
    model = _random("deblurgan", ngf=8, n_blocks=2)
    full = Deblurrer(model, tile=0).deblur(picture)
    shared = Deblurrer(model, tile=160, tile_overlap=64)
    per_tile = Deblurrer(model, tile=160, tile_overlap=64)
    per_tile.norm_passes = 0
    err_shared = (shared.deblur(picture) - full).abs().mean()
    err_tile = (per_tile.deblur(picture) - full).abs().mean()
    assert err_shared < 0.6 * err_tile


def test_batches_and_progress(picture: torch.Tensor) -> None:
    model = _random("nafnet", width=4)
    d = Deblurrer(model, tile=0)
    x = torch.cat([picture[:, :, :40, :50], picture[:, :, 40:80, :50].flip(-1), picture[:, :, 80:120, :50]])
    batched = d.deblur(x)
    single = torch.cat([d.deblur(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)
    seen: list[tuple[int, int]] = []
    Deblurrer(model, tile=128, tile_overlap=32).deblur(picture, on_progress=lambda a, b: seen.append((a, b)))
    assert seen and seen[-1][0] == seen[-1][1]


def test_auto_tile_for_a_big_photo_with_the_paper_model() -> None:
    d = Deblurrer(create_model("deblurgan"), device="cpu")
    assert d.tile_size(64, 64) is None  # small images run whole
    side = d.tile_size(4000, 6000)  # 24 MP: ~1 kB of activations per pixel, far over the CPU budget
    assert side is not None and 128 <= side < 4000 and side % 64 == 0
    assert side * side * d.bytes_per_pixel() <= max(d.memory_budget(), 128 * 128 * d.bytes_per_pixel())


def test_device_and_precision_checks() -> None:
    model = create_model("nafnet", width=4)
    with pytest.raises(DeblurError, match="needs a CUDA device"):
        Deblurrer(model, device="cpu", precision="fp16")
    with pytest.raises(DeblurError, match="unknown precision"):
        Deblurrer(model, device="cpu", precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(DeblurError, match="CUDA is not available"):
            Deblurrer(model, device="cuda")
    with pytest.raises(DeblurError, match="less than half"):
        Deblurrer(model, tile=64, tile_overlap=32)
    with pytest.raises(DeblurError, match="critic"):
        Deblurrer(create_model("patchgan", ndf=4))
    with pytest.raises(DeblurError, match=r"\(B, 3, H, W\)"):
        Deblurrer(model, device="cpu").deblur(torch.rand(3, 8, 8))


def test_image_round_trip_16bit_alpha_grey(tmp_path: Path) -> None:
    # A generator whose residual branch is zero returns its input: pixels must survive exactly.
    model = create_model("nafnet", width=4)
    torch.nn.init.zeros_(model.ending.weight)
    torch.nn.init.zeros_(model.ending.bias)
    d = Deblurrer(model, device="cpu")
    rng = np.random.default_rng(0)
    px16 = rng.integers(0, 65536, size=(37, 45, 3), dtype=np.uint16)
    alpha = rng.integers(0, 65536, size=(37, 45), dtype=np.uint16)
    write_image(tmp_path / "a.png", Image(pixels=px16, alpha=alpha))
    src = read_image(tmp_path / "a.png")
    out = d.deblur_image(src)
    assert out.bit_depth == 16 and np.array_equal(out.pixels, px16) and np.array_equal(out.alpha, alpha)
    grey = Image(pixels=textured_rgb(20, 30)[:, :, :1].copy())
    out = d.deblur_image(grey)
    assert out.is_grey and out.pixels.shape == (20, 30, 1)


class _BoxBlur(torch.nn.Module):
    """A fixed 5x5 box filter: a model whose output depends on the encoding of its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.full((3, 1, 5, 5), 1 / 25)
        return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate"), k, groups=3)


def test_linear_runs_the_model_on_gamma_encoded_values(picture: torch.Tensor) -> None:
    x = picture[:, :, :64, :80]
    plain = Deblurrer(_BoxBlur(), device="cpu", precision="fp32").deblur(x)
    linear = Deblurrer(_BoxBlur(), device="cpu", linear=True, precision="fp32").deblur(x)
    # Encoded with x^(1/2.2), filtered, decoded with x^2.2: darker at edges than the plain filter, as a
    # mean taken in the encoded space is a power mean of exponent 1/2.2 < 1 of the linear values.
    expected = _BoxBlur()(x.pow(1 / 2.2)).clamp(0, 1).pow(2.2)
    assert (linear - expected).abs().max() < 1e-5
    assert (linear - plain).abs().max() > 0.02 and (linear - plain).mean() < 0
    # A model that returns its input gives the input back: encode and decode are inverses.
    model = create_model("nafnet", width=4)
    torch.nn.init.zeros_(model.ending.weight)
    torch.nn.init.zeros_(model.ending.bias)
    assert (Deblurrer(model, device="cpu", linear=True).deblur(x) - x).abs().max() < 1e-5
