"""Checkpoints: where they live, reading them (``weights_only=True``), the networks a config
describes, the generator's ``--init`` weights, exporting a checkpoint as a model, atomic saving and
the RNG states every rank keeps.

Imports :mod:`deblurcli.train.config` of the package.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Callable

from deblurcli.train.config import RECIPE_FIELDS, TrainConfig, TrainError

CHECKPOINT_FORMAT = "deblurcli-train-checkpoint"
CHECKPOINT_VERSION = 1


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def list_checkpoints(out: str | Path) -> list[Path]:
    """Complete checkpoints in ``OUT/checkpoints``, oldest first (temporary files are ignored)."""
    d = checkpoint_dir(out)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("step_*.pt") if p.stem[5:].isdigit())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a deblurcli training checkpoint")
    return ckpt


def read_checkpoint_config(path: str | Path) -> TrainConfig:
    """The config stored in a checkpoint, read without loading the tensors into memory (mmap)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise TrainError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a deblurcli training checkpoint")
    return TrainConfig.from_json(ckpt["config"])


def apply_recipe(cfg: TrainConfig, saved: TrainConfig) -> None:
    """Take the experiment-defining fields (:data:`RECIPE_FIELDS`) from a checkpoint's config."""
    for name in RECIPE_FIELDS:
        setattr(cfg, name, getattr(saved, name))


def build_generator(cfg: TrainConfig) -> Any:
    """The generator of ``cfg`` (architecture, hyperparameters, Laplacian channel), on the CPU.

    Raises:
        TrainError: unknown architecture or invalid hyperparameters.
    """
    from deblurcli.models import create_model

    try:
        return create_model(cfg.arch, **{**cfg.hparams, "laplacian": cfg.laplacian})
    except ValueError as e:
        raise TrainError(str(e)) from None


def build_critic(cfg: TrainConfig) -> Any:
    """The PatchGAN critic of ``cfg`` (``critic_hparams``), on the CPU.

    Raises:
        TrainError: invalid hyperparameters.
    """
    from deblurcli.models import create_model

    try:
        return create_model("patchgan", **cfg.critic_hparams)
    except ValueError as e:
        raise TrainError(str(e)) from None


def load_init(generator: Any, path: str | Path) -> None:
    """Load a ``.safetensors`` file's tensors into ``generator`` (every tensor, same shapes).

    Raises:
        TrainError: the file does not fit this architecture and hyperparameters (one line).
    """
    from safetensors.torch import load_file

    from deblurcli.weights import _first_line, read_metadata

    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise TrainError(f"--init {path}: not a readable .safetensors file ({_first_line(e)})") from None
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError:
        meta = read_metadata(path)
        made = f"{meta.get('architecture', '?')} {meta.get('hyperparameters', '')}".strip()
        raise TrainError(
            f"--init {path}: its tensors do not fit this generator (the file holds {made}); "
            "give the same --arch, --hparam and Laplacian setting as the run that made it"
        ) from None


def export_checkpoint(checkpoint: str | Path, path: str | Path) -> Path:
    """Write the generator of a training checkpoint as a ``.safetensors`` model (what ``deblur fix
    --model`` and ``deblur evaluate --model`` load), with the run's recipe in its metadata: to score or
    use a run that is still going, or one that was stopped before its end.

    Raises:
        TrainError: not a readable deblurcli checkpoint.
    """
    from deblurcli import __version__
    from deblurcli.weights import save_model

    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_json(ckpt["config"])
    generator = build_generator(cfg)
    generator.load_state_dict(ckpt["generator"])
    recipe = {k: cfg.to_json()[k] for k in RECIPE_FIELDS}
    return save_model(
        path,
        generator,
        metadata={
            "recipe": json.dumps(recipe, sort_keys=True),
            "trained_steps": str(int(ckpt["step"])),
            "training_data": json.dumps([str(Path(d)) for d in cfg.data]),
            "trainer": f"deblurcli {__version__} export_checkpoint",
            **({"initialised_from": cfg.init} if cfg.init else {}),
        },
    )


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        # fsync so that a crash right after the rename cannot leave an empty "complete" file.
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_final(save_model: Callable[..., Path], path: Path, *args: Any, **kwargs: Any) -> Path:
    """save_model, with an OS refusal as a one-line TrainError (the checkpoints are already saved)."""
    try:
        return save_model(path, *args, **kwargs)
    except OSError as e:
        raise TrainError(
            f"cannot write {path}: {e.strerror or e}; the last checkpoint is saved (--resume to write the model)"
        ) from None


def _rng_state(device) -> dict[str, Any]:
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": repr(random.getstate()),  # plain string: weights_only can load it
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device) -> None:
    import ast

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(ast.literal_eval(state["python"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
