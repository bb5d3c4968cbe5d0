"""Shared fixtures: seeded RNGs, tiny generated images, the shared data folder."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data beside the project (absent on a user's clone: tests that need it skip).
SHARED_DATA = Path(os.environ.get("DEBLUR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def ctrl_c_reaches_child() -> None:
    """``preexec_fn`` for a child a test sends SIGINT to, as a user's Ctrl-C: SIGINT back to its
    default action. Under a harness that runs the tests as a background job of a non-interactive
    shell (``pytest &``) SIGINT is inherited as ignored, and Python then installs no KeyboardInterrupt
    handler, so the child would never see the signal (seen: the run went on to the end and exited 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _limit_threads() -> None:
    # CI has 2 cores; torch's default thread pool oversubscribes them when tests spawn processes.
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    if "torch" in __import__("sys").modules:
        import torch

        torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    _limit_threads()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (set DEBLUR_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def textured_rgb(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 (H, W, 3) test picture with edges, gradients and noise."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx // 8 + yy // 8) % 2) * 255], -1)
    noise = r.integers(-20, 21, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DeblurGAN generator saved as .safetensors, its weights perturbed: untrained generators
    are the identity (zero last layer), and the CLI tests need outputs that differ from inputs."""
    import torch

    from deblurcli.models import create_model
    from deblurcli.weights import save_model

    torch.manual_seed(0)
    model = create_model("deblurgan", ngf=2, n_blocks=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_model(tmp_path_factory.mktemp("model") / "tiny.safetensors", model)
