"""Architectures: shapes, value range, gradients, eval determinism, the Laplacian switch."""

from __future__ import annotations

import inspect

import pytest
import torch

from deblurcli.models import ARCHITECTURES, GENERATORS, create_model

# Small but structurally complete versions of each architecture (every layer type present).
TINY: dict[str, dict] = {
    "c2f": {"width": 4, "levels": 2, "blocks": 1, "middle_blocks": 1, "scales": 3},
    "deblurgan": {"ngf": 4, "n_blocks": 2},
    "nafnet": {"width": 4, "enc_blocks": [1, 1, 1, 1], "middle_blocks": 1, "dec_blocks": [1, 1, 1, 1]},
    "patchgan": {"ndf": 4, "n_layers": 3},
    "blind": {"work_side": 64, "max_kernel": 5},
}
#: Everything with weights to train (``blind`` is classical: tests/test_blind.py).
TRAINABLE = sorted(a for a in ARCHITECTURES if a != "blind")


def test_every_architecture_has_a_tiny_config() -> None:
    assert set(TINY) == set(ARCHITECTURES)


def _perturb(model: torch.nn.Module) -> None:
    # Zero-initialised residual scales (NAFNet) make the branch weights' gradient exactly zero at
    # init; perturb every parameter so the test checks that each one is wired into the output.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


@pytest.mark.parametrize("arch", TRAINABLE)
@pytest.mark.parametrize("size", [(32, 32), (37, 45)])
def test_forward_backward(arch: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_model(arch, **TINY[arch])
    assert model.arch == arch and isinstance(model.hparams, dict)
    _perturb(model)
    x = torch.rand(2, 3, *size)
    y = model(x)
    assert torch.isfinite(y).all()
    if arch in GENERATORS:
        assert y.shape == x.shape
        assert y.min() >= 0.0 and y.max() <= 1.0
    else:
        assert y.ndim == 4 and y.shape[:2] == (2, 1)
    y.mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


def _has_dropout(arch: str) -> bool:
    return "dropout" in inspect.signature(ARCHITECTURES[arch]).parameters


@pytest.mark.parametrize("arch", sorted(a for a in GENERATORS if _has_dropout(a)))
def test_eval_is_deterministic_and_dropout_off(arch: str) -> None:
    model = create_model(arch, **TINY[arch], dropout=0.5)
    _perturb(model)
    x = torch.rand(1, 3, 24, 20)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    model.train()
    with torch.no_grad():
        c = model(x)
    assert not torch.equal(a, c)  # dropout active in training mode


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_laplacian_switch_changes_input_channels(arch: str) -> None:
    on = create_model(arch, **TINY[arch], laplacian=True)
    off = create_model(arch, **TINY[arch], laplacian=False)
    assert on.in_channels == 4 and off.in_channels == 3
    x = torch.rand(1, 3, 16, 16)
    assert on(x).shape == off(x).shape == x.shape


@pytest.mark.parametrize("arch", sorted(GENERATORS))
@pytest.mark.parametrize("size", [(1, 1), (3, 7), (8, 200)])
def test_generators_take_tiny_and_thin_images(arch: str, size: tuple[int, int]) -> None:
    model = create_model(arch, **TINY[arch]).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert model(x).shape == x.shape


def test_unknown_architecture_and_bad_hparams() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("unet")
    with pytest.raises(ValueError, match="bad hyperparameters"):
        create_model("deblurgan", width=3)
    with pytest.raises(ValueError):
        create_model("nafnet", enc_blocks=[1, 1], dec_blocks=[1])


def test_wrong_input_shape_is_refused() -> None:
    model = create_model("deblurgan", **TINY["deblurgan"])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 4, 16, 16))


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_untrained_generator_is_the_identity(arch: str) -> None:
    # Training starts from "return the input" (zero-initialised last layer), not from noise.
    model = create_model(arch, **TINY[arch]).eval()
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x, atol=1e-6, rtol=0)


def test_whitened_conditioning_amplifies_gradients_and_keeps_the_laplacian_channel() -> None:
    from deblurcli.blur import laplacian
    from deblurcli.models._common import WHITEN_GRAD_GAIN, WHITEN_LAPLACIAN_GAIN, condition_whitened

    # A horizontal ramp (slope 0.01 per px) in red only, flat in green and blue.
    x = torch.zeros(1, 3, 8, 10)
    x[:, 0] = torch.arange(10, dtype=torch.float32) * 0.01 + 0.2
    c = condition_whitened(x)
    assert c.shape == (1, 10, 8, 10)
    assert torch.allclose(c[:, :3], x * 2 - 1)
    assert torch.allclose(c[:, 3:4], WHITEN_LAPLACIAN_GAIN * laplacian(x))
    dx, dy = c[:, 4:7], c[:, 7:10]
    # Forward differences; the last column repeats the edge, so its difference is 0.
    assert torch.allclose(dx[:, 0, :, :-1], torch.full((1, 8, 9), 0.01 * WHITEN_GRAD_GAIN), atol=1e-5)
    assert torch.all(dx[:, 0, :, -1] == 0) and torch.all(dx[:, 1:] == 0) and torch.all(dy == 0)


def test_c2f_whiten_is_identity_at_init_and_trains_every_parameter() -> None:
    torch.manual_seed(0)
    model = create_model("c2f", **TINY["c2f"], whiten=True)
    assert model.conditioned_channels == 10 and model.in_channels == 4
    assert model.hparams["whiten"] is True
    x = torch.rand(2, 3, 37, 45)
    assert torch.allclose(model(x), x, atol=1e-6)  # zero-initialised last convolution
    _perturb(model)
    model(x).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient"
    # Files saved before the option have no "whiten" key: off stays out of the metadata.
    assert "whiten" not in create_model("c2f", **TINY["c2f"]).hparams
    with pytest.raises(ValueError, match="laplacian"):
        create_model("c2f", **TINY["c2f"], whiten=True, laplacian=False)


def test_c2f_residual_prior_refines_the_coarser_estimate(tmp_path) -> None:
    import torch.nn.functional as F

    from deblurcli.weights import load_model, save_model

    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 48)  # fine detail that the 1/4 scale cannot hold
    # At init the body adds nothing: residual="blurred" hands back the input, residual="prior"
    # the coarsest scale's image carried up through the scales (what the coarse scale "removed"
    # stays removed); the finest detail is gone.
    assert torch.allclose(create_model("c2f", **TINY["c2f"])(x), x, atol=1e-6)
    model = create_model("c2f", **TINY["c2f"], residual="prior")
    coarse = F.avg_pool2d(F.avg_pool2d(x, 2), 2)
    up = F.interpolate(F.interpolate(coarse, size=(16, 24), mode="bilinear", align_corners=False), size=(32, 48), mode="bilinear", align_corners=False)
    with torch.no_grad():
        y = model(x)
    assert torch.allclose(y, up, atol=1e-5) and (y - x).abs().mean() > 0.1
    # The key is stored (and read back) only when it is not the default, so older files load as before.
    assert model.hparams["residual"] == "prior" and "residual" not in create_model("c2f", **TINY["c2f"]).hparams
    _perturb(model)
    save_model(tmp_path / "p.safetensors", model)
    loaded, _ = load_model(str(tmp_path / "p.safetensors"))
    with torch.no_grad():
        assert loaded.residual == "prior" and torch.allclose(loaded.eval()(x), model.eval()(x), atol=1e-6)
    with pytest.raises(ValueError, match="residual"):
        create_model("c2f", **TINY["c2f"], residual="sharp")


def test_c2f_residual_correction_keeps_the_detail_and_carries_the_coarse_change() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 48)
    corr = create_model("c2f", **TINY["c2f"], residual="correction")
    assert torch.allclose(corr(x), x, atol=1e-6)  # at init: nothing changed below, so nothing carried
    _perturb(corr)
    plain = create_model("c2f", **TINY["c2f"])
    plain.load_state_dict(corr.state_dict())
    with torch.no_grad():
        a, b = plain.eval()(x), corr.eval()(x)
        # The same weights give another output: what the coarser scales changed reaches the result ...
        assert (a - b).abs().mean() > 1e-3
        # ... and with a single scale there is no coarser change to carry.
        for m in (plain, corr):
            m.scales = 1
            assert m.pad_multiple == 2 ** TINY["c2f"]["levels"]  # follows the scales it runs at
        assert torch.allclose(plain(x), corr(x), atol=1e-6)


def test_whitened_from_keeps_the_output_and_refuses_a_whitened_model() -> None:
    from deblurcli.models.c2f import whitened_from

    torch.manual_seed(0)
    plain = create_model("c2f", **TINY["c2f"])
    _perturb(plain)  # a "trained" model: every weight non-zero, the output far from the input
    wide = whitened_from(plain)
    x = torch.rand(2, 3, 40, 52)
    with torch.no_grad():
        a, b = plain.eval()(x), wide.eval()(x)
    assert (a - x).abs().max() > 0.01
    assert torch.allclose(a, b, atol=1e-5)
    assert wide.whiten and wide.hparams == {**plain.hparams, "whiten": True}
    with pytest.raises(ValueError):
        whitened_from(wide)
