"""Losses: the gradient penalty on functions with known gradients, label-noise statistics, content."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from deblurcli.errors import DeblurError
from deblurcli.losses import (
    L1FFTLoss,
    PerceptualLoss,
    critic_loss,
    create_content_loss,
    generator_adversarial_loss,
    gradient_penalty,
    label_noise_signs,
)


class Linear(nn.Module):
    """D(x) = <w, x>: its gradient is w everywhere, so the penalty is lambda (||w|| - 1)^2."""

    def __init__(self, shape: tuple[int, ...], scale: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full(shape, scale))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1) + self.b


def test_gradient_penalty_of_linear_critic_is_known() -> None:
    shape = (3, 4, 5)
    n = math.prod(shape)
    critic = Linear(shape, scale=2.0 / math.sqrt(n))  # ||w|| = 2 -> penalty = 10 * (2 - 1)^2
    x = torch.rand(6, *shape)
    gp = gradient_penalty(critic, x, lambda_gp=10.0)
    assert gp.item() == pytest.approx(10.0, rel=1e-5)
    # d/dw of lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||: the penalty is differentiable.
    gp.backward()
    expected = 2 * 10.0 * (2.0 - 1.0) * critic.w.detach() / 2.0
    torch.testing.assert_close(critic.w.grad, expected, rtol=1e-4, atol=1e-7)


def test_gradient_penalty_of_quadratic_critic_uses_per_sample_norm() -> None:
    # D(x) = 0.5 ||x||^2 -> grad = x; per-sample norms are known.
    x = torch.rand(4, 3, 8, 8) * 0.5
    gp = gradient_penalty(lambda t: 0.5 * (t**2).flatten(1).sum(1), x, lambda_gp=10.0)
    norms = x.flatten(1).norm(dim=1)
    assert gp.item() == pytest.approx(float(10 * ((norms - 1) ** 2).mean()), rel=1e-5)


def test_patch_scores_are_averaged_per_sample() -> None:
    # A "PatchGAN" returning the same linear score on a 2x2 grid of patches has the same penalty.
    shape = (3, 4, 4)
    lin = Linear(shape, scale=1.0 / math.sqrt(math.prod(shape)))  # ||w|| = 1 -> zero penalty
    patch = lambda t: lin(t).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)  # noqa: E731
    assert gradient_penalty(patch, torch.rand(2, *shape)).item() == pytest.approx(0.0, abs=1e-8)


def test_critic_loss_parts_and_label_swap() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    alpha = torch.rand(4)
    d = lambda t: critic(t).flatten(1).mean(1)  # noqa: E731
    plain = critic_loss(critic, real, fake, alpha=alpha, signs=torch.ones(4))
    w = (d(fake) - d(real)).detach()
    x_hat = alpha.view(4, 1, 1, 1) * real + (1 - alpha.view(4, 1, 1, 1)) * fake
    gp = gradient_penalty(critic, x_hat).item()
    assert plain.loss.item() == pytest.approx(w.mean().item() + gp, rel=1e-5, abs=1e-6)
    assert plain.penalty == pytest.approx(gp, rel=1e-5)
    assert plain.swapped == 0
    # Swapping sample 1 flips the sign of its Wasserstein term only; the penalty is unchanged.
    signs = torch.tensor([1.0, -1.0, 1.0, 1.0])
    swapped = critic_loss(critic, real, fake, alpha=alpha, signs=signs)
    assert swapped.swapped == 1
    assert swapped.loss.item() == pytest.approx((w * signs).mean().item() + gp, rel=1e-5, abs=1e-6)
    assert swapped.wasserstein == pytest.approx(plain.wasserstein)  # logged without noise
    # Every critic parameter gets a gradient from the single backward.
    swapped.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())


def test_label_noise_swap_rate_matches_probability() -> None:
    g = torch.Generator().manual_seed(1)
    n = 20000
    signs = label_noise_signs(n, 0.1, generator=g)
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}
    rate = float((signs < 0).float().mean())
    # Binomial(20000, 0.1): sd = 0.0021; 5 sd band.
    assert abs(rate - 0.1) < 5 * math.sqrt(0.1 * 0.9 / n)
    assert (label_noise_signs(100, 0.0) == 1).all()
    assert (label_noise_signs(100, 1.0, generator=g) == -1).all()
    with pytest.raises(ValueError):
        label_noise_signs(4, 1.5)


def test_label_noise_flips_the_critic_gradient_on_average() -> None:
    # With p = 1 every sample is swapped: the Wasserstein gradient is exactly the negated one.
    critic = nn.Sequential(nn.Conv2d(3, 1, 3))
    real, fake = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6)
    grads = []
    for p in (0.0, 1.0):
        critic.zero_grad()
        critic_loss(critic, real, fake, lambda_gp=0.0, label_noise=p).loss.backward()
        grads.append(critic[0].weight.grad.clone())
    torch.testing.assert_close(grads[1], -grads[0])


def test_generator_adversarial_loss_sign() -> None:
    critic = lambda t: t.mean(dim=(1, 2, 3), keepdim=True)  # noqa: E731 - brighter = "more real"
    dark, bright = torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.9)
    assert generator_adversarial_loss(critic, bright) < generator_adversarial_loss(critic, dark)


def test_l1fft_is_zero_on_equal_and_sees_lost_high_frequencies() -> None:
    loss = L1FFTLoss()
    x = torch.rand(2, 3, 16, 16)
    assert loss(x, x).item() == 0.0
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    pixel_only = torch.nn.functional.l1_loss(blurred, x).item()
    assert loss(blurred, x).item() > pixel_only > 0


def _random_vgg19_features_state() -> dict[str, torch.Tensor]:
    """A randomly initialised torchvision VGG19 state_dict, ``features.*`` keys only.

    (The full one adds a 120M-parameter classifier: 0.5 GB and ~15 s to initialise, unused by the loss.)
    """
    import torchvision

    torch.manual_seed(0)
    layers = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    return {f"features.{k}": v for k, v in layers.state_dict().items()}


def test_perceptual_loss_with_local_vgg_state_dict(tmp_path) -> None:
    path = tmp_path / "vgg19.pth"
    torch.save(_random_vgg19_features_state(), path)
    loss = create_content_loss("perceptual", vgg_weights=path)
    assert isinstance(loss, PerceptualLoss)
    assert len(loss.features) == 15 and isinstance(loss.features[14], nn.Conv2d)  # ends at conv3_3
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32, requires_grad=True)
    assert loss(a, a).item() == 0.0
    value = loss(b, a)
    value.backward()
    assert value.item() > 0 and b.grad is not None
    assert not any(p.requires_grad for p in loss.features.parameters())
    loss.train()
    assert not loss.features.training


def test_perceptual_loss_without_weights_names_the_alternative(tmp_path) -> None:
    with pytest.raises(DeblurError) as e:
        PerceptualLoss(tmp_path / "missing.pth")
    msg = str(e.value)
    assert "--content l1fft" in msg and "--vgg-weights" in msg and "\n" not in msg
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(DeblurError, match="not a torchvision VGG19"):
        PerceptualLoss(bad)
