"""Training objectives: WGAN-GP with label noise (the paper) and the content losses.

Conventions (all tensors float32 RGB in [0, 1], shape (B, 3, H, W)):

* The critic returns raw scores of any shape ``(B, ...)`` (the PatchGAN critic returns one score per
  patch, ``(B, 1, h, w)``). A sample's score is the **mean over its patches**; the Wasserstein terms
  and the gradient penalty are both taken on that per-sample score, so the Lipschitz constraint
  applies to the very function whose differences the critic maximises.
* Critic loss (WGAN-GP, Gulrajani et al. 2017), per sample ``i``::

      L_D(i) = s_i * (D(fake_i) - D(real_i)) + lambda_gp * (||grad_x D(x_hat_i)||_2 - 1)^2
      x_hat_i = a_i * real_i + (1 - a_i) * fake_i,   a_i ~ U[0, 1)

  averaged over the batch. ``s_i = +1`` normally; **label noise** (the paper's "10% chance of
  receiving the wrong label") sets ``s_i = -1`` with probability ``p`` independently per sample per
  critic update: for that sample the critic is told the real image is fake and the generated one is
  real, so it is pushed to score the generated image *higher*. The gradient penalty is symmetric in
  real/fake and is unaffected. Generator updates never see label noise.
* Generator adversarial loss: ``-mean_i D(fake_i)``.

DDP and the gradient penalty (pytorch/pytorch#47562): DDP averages parameter gradients only through
hooks that fire during ``.backward()``; gradients obtained with ``torch.autograd.grad`` are never
reduced, and a loss built only from them can leave DDP's reducer out of step (ranks then drift apart).
:func:`critic_loss` therefore runs **one** forward of the (DDP-wrapped) critic over
``cat([real, fake, x_hat])`` and returns a single loss (Wasserstein terms + penalty) on which the
caller calls ``.backward()`` once: every critic parameter receives its full gradient (both paths
summed by autograd before the accumulate hook fires) exactly once, and DDP all-reduces it. The
PatchGAN critic uses InstanceNorm (per-sample statistics), so batching the three groups together does
not mix samples. ``tests/test_train.py`` checks with a real 2-process gloo run that parameters stay
identical across ranks and that the reduced gradient equals the full-batch gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from deblurcli.errors import DeblurError

#: λ of the gradient penalty (Gulrajani et al. 2017; DeblurGAN).
LAMBDA_GP = 10.0
#: torchvision's file name for the ImageNet VGG19 weights (``VGG19_Weights.IMAGENET1K_V1``).
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ContentLossError(DeblurError):
    """A content loss could not be set up (missing or unusable VGG19 weights)."""


def per_sample_score(scores: torch.Tensor) -> torch.Tensor:
    """Critic output ``(B, ...)`` -> one score per sample ``(B,)`` (mean over patches)."""
    return scores.reshape(scores.shape[0], -1).mean(dim=1)


def label_noise_signs(
    batch: int, p: float, *, device: torch.device | str = "cpu", generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Per-sample signs for the critic's Wasserstein term: ``-1`` (roles swapped) with probability p.

    Args:
        batch: number of samples.
        p: swap probability in [0, 1] (the paper uses 0.1).
        device: device of the result.
        generator: optional torch RNG (for reproducible draws).

    Returns:
        float tensor (batch,) of +1 / -1.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label noise probability must be in [0, 1], got {p}")
    if p == 0.0:
        return torch.ones(batch, device=device)
    u = torch.rand(batch, generator=generator, device=generator.device if generator is not None else "cpu")
    return torch.where(u < p, -1.0, 1.0).to(device)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], x_hat: torch.Tensor, *, lambda_gp: float = LAMBDA_GP
) -> torch.Tensor:
    """WGAN-GP penalty ``lambda_gp * mean_i (||grad_x D(x)_i||_2 - 1)^2`` at the points ``x_hat``.

    Args:
        critic: callable (B, C, H, W) -> scores (B, ...); per-sample score = mean over patches.
        x_hat: the points, (B, C, H, W); need not require grad (a leaf copy is made if not).
        lambda_gp: weight of the penalty.

    Returns:
        Scalar tensor, differentiable with respect to the critic's parameters (create_graph=True).
    """
    if not x_hat.requires_grad:
        x_hat = x_hat.detach().requires_grad_(True)
    return _penalty_from_scores(per_sample_score(critic(x_hat)), x_hat, lambda_gp)


def _penalty_from_scores(scores: torch.Tensor, x_hat: torch.Tensor, lambda_gp: float) -> torch.Tensor:
    # The penalty is computed in float32 even under autocast: bf16 gradients of a norm near 1 are too
    # coarse (8 bits of mantissa) for a term whose whole point is the distance to 1.
    (grad,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True)
    norms = grad.float().reshape(grad.shape[0], -1).norm(2, dim=1)
    return lambda_gp * ((norms - 1.0) ** 2).mean()


@dataclass
class CriticLoss:
    """One critic update's loss and its parts (the parts are detached, for logging)."""

    loss: torch.Tensor  #: scalar to call .backward() on
    wasserstein: float  #: mean D(real) - D(fake), without label noise (the critic's estimate)
    penalty: float  #: lambda_gp * mean (||grad|| - 1)^2
    swapped: int  #: number of samples whose roles were swapped by label noise


def critic_loss(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    lambda_gp: float = LAMBDA_GP,
    label_noise: float = 0.0,
    alpha: Optional[torch.Tensor] = None,
    signs: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> CriticLoss:
    """WGAN-GP critic loss with per-sample label noise, in a single critic forward (DDP-safe).

    Args:
        critic: the critic (may be DDP-wrapped); called once on ``cat([real, fake, x_hat])``.
        real: sharp images (B, 3, H, W).
        fake: generated images (B, 3, H, W); detached here.
        lambda_gp: weight of the gradient penalty (0 disables it).
        label_noise: probability of swapping real/fake roles per sample (see module docstring).
        alpha: optional interpolation weights (B,), else drawn from U[0, 1).
        signs: optional +1/-1 per sample, else drawn with :func:`label_noise_signs`.
        generator: optional torch RNG for ``alpha`` and ``signs``.

    Returns:
        :class:`CriticLoss`; call ``.loss.backward()`` once.
    """
    b = real.shape[0]
    fake = fake.detach()
    real = real.detach()
    if signs is None:
        signs = label_noise_signs(b, label_noise, device=real.device, generator=generator)
    signs = signs.to(device=real.device, dtype=torch.float32)
    use_gp = lambda_gp > 0
    if use_gp:
        if alpha is None:
            dev = generator.device if generator is not None else "cpu"
            alpha = torch.rand(b, generator=generator, device=dev)
        a = alpha.to(device=real.device, dtype=real.dtype).view(b, 1, 1, 1)
        x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
        batch = torch.cat([real, fake, x_hat])
    else:
        batch = torch.cat([real, fake])
    scores = per_sample_score(critic(batch)).float()
    d_real, d_fake = scores[:b], scores[b : 2 * b]
    w_terms = signs * (d_fake - d_real)
    loss = w_terms.mean()
    penalty = torch.zeros((), device=real.device)
    if use_gp:
        penalty = _penalty_from_scores(scores[2 * b :], x_hat, lambda_gp)
        loss = loss + penalty
    return CriticLoss(
        loss=loss,
        wasserstein=float((d_real - d_fake).mean().detach()),
        penalty=float(penalty.detach()),
        swapped=int((signs < 0).sum()),
    )


def generator_adversarial_loss(critic: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor) -> torch.Tensor:
    """``-mean_i D(fake_i)``: the generator wants the critic to score its images as real."""
    return -per_sample_score(critic(fake)).float().mean()


# --------------------------------------------------------------------------------------- content


class L1FFTLoss(nn.Module):
    """L1 in pixels plus ``fft_weight`` x L1 between the 2-D real FFTs (real and imaginary parts).

    The frequency term (as in MIMO-UNet, Cho et al. 2021) penalises missing high frequencies that a
    pixel L1 alone lets through as a blurry average. Needs no external weights. FFTs run in float32
    (cuFFT/pocketfft do not take bf16).
    """

    def __init__(self, fft_weight: float = 0.1) -> None:
        super().__init__()
        self.fft_weight = fft_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = pred.float(), target.float()
        pixel = F.l1_loss(pred, target)
        fp = torch.view_as_real(torch.fft.rfft2(pred, norm="ortho"))
        ft = torch.view_as_real(torch.fft.rfft2(target, norm="ortho"))
        return pixel + self.fft_weight * F.l1_loss(fp, ft)


def default_vgg19_path() -> Path:
    """Where torchvision caches the ImageNet VGG19 weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


class PerceptualLoss(nn.Module):
    """MSE between VGG19 ``features[:15]`` (up to conv3_3, before its ReLU), as in DeblurGAN.

    Inputs in [0, 1] are ImageNet-normalised first. The VGG is frozen and kept in eval mode; it runs
    in float32.

    Args:
        weights: path of a torchvision VGG19 state_dict (``vgg19-dcbb9e9d.pth``); default: the torch
            hub cache. Missing -> :class:`ContentLossError` naming ``--vgg-weights`` and ``--content l1fft``.
    """

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        path = Path(weights) if weights is not None else default_vgg19_path()
        if not path.is_file():
            where = f"{path} not found" if weights is not None else f"not in the torchvision cache ({path})"
            raise ContentLossError(
                f"--content perceptual needs ImageNet VGG19 weights ({VGG19_FILENAME}), {where}; "
                "pass --vgg-weights PATH, or use --content l1fft (no external weights)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            features = _vgg19_features_from_state(state)
        except Exception as e:  # a wrong/corrupt file: say which and why, in one line
            raise ContentLossError(f"{path}: not a torchvision VGG19 state_dict ({type(e).__name__}: {e})") from e
        self.features = features[:15].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # The feature extractor stays in eval mode whatever the trainer does.
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred = (pred.float() - self.mean) / self.std
            target = (target.float() - self.mean) / self.std
            with torch.no_grad():
                t = self.features(target)
            return F.mse_loss(self.features(pred), t)


def _vgg19_features_from_state(state: dict) -> nn.Sequential:
    """VGG19's ``features`` with the weights of a torchvision VGG19 state_dict.

    The network is built on the meta device and the tensors are assigned, so the 120M-parameter
    classifier (unused here) is never initialised or allocated; a state_dict that holds only the
    ``features.*`` keys is accepted too.
    """
    import torchvision

    with torch.device("meta"):
        features = torchvision.models.vgg19(weights=None).features
    wanted = {k: state[f"features.{k}"] for k in features.state_dict() if f"features.{k}" in state}
    missing = sorted(set(features.state_dict()) - set(wanted))
    if missing:
        raise KeyError(f"missing features.{missing[0]}")
    features.load_state_dict(wanted, assign=True)
    return features


CONTENT_LOSSES = ("perceptual", "l1fft")


def create_content_loss(name: str, *, vgg_weights: str | Path | None = None) -> nn.Module:
    """The content loss named ``name`` ('perceptual' or 'l1fft')."""
    if name == "perceptual":
        return PerceptualLoss(vgg_weights)
    if name == "l1fft":
        return L1FFTLoss()
    raise ValueError(f"unknown content loss {name!r}; choose from {', '.join(CONTENT_LOSSES)}")
