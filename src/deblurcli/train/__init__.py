"""Training: the paper's conditional WGAN-GP (Laplacian-conditioned generator, label noise), resumable.

One *step* is one generator update. Each step takes one batch and, as DeblurGAN does, first updates
the critic ``critic_iters`` times on that batch (generated images detached), then the generator once
with ``-D(G(x)) + content_weight * content(G(x), y)``. The learning rate of both optimisers is
constant for the first ``decay_start`` fraction of the steps, then falls linearly towards 0 at the
last step; it is a pure function of (step, total steps), so a resumed run follows the schedule it
would have followed uninterrupted (resuming with a larger ``--steps`` recomputes it for the new
total, as if the run had been started with it).

Distributed: run under torch's launcher (``python -m torch.distributed.run``), which sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``. Both networks are wrapped in DistributedDataParallel (NCCL on CUDA,
gloo on CPU); the critic's loss, penalty included, is built in one DDP forward and one backward (see
:mod:`deblurcli.losses`). The generator's adversarial term uses the critic's unwrapped module with its
parameters frozen, so DDP never sees a critic backward without a critic forward. Only rank 0 reports
progress, validates, writes metrics and saves. At every checkpoint the ranks compare their parameters
(``rank_param_max_diff`` in metrics.jsonl, which must be 0).

Checkpoints (``OUT/checkpoints/step_NNNNNNN.pt``) are ``torch.save`` dicts of tensors and plain values
(loadable with ``weights_only=True``): both networks, both optimisers, the step, the config and every
rank's RNG states. They are written to a temporary file and renamed, so a run killed at any moment
(SIGKILL included) resumes from the last complete checkpoint. bf16 needs no loss scaling, so there
is no GradScaler state to keep (fp16 is not offered).

Where things live (each module imports only those above it in this list; none imports
:mod:`deblurcli.cli`; torch is imported inside the functions that need it, so importing this package
does not import torch):

* :mod:`~deblurcli.train.config`: :class:`TrainConfig`, :data:`RECIPE_FIELDS`, :class:`TrainError`,
  :class:`TrainEvent`.
* :mod:`~deblurcli.train.checkpoint`: checkpoints (list, load, export, atomic save), the networks a
  config describes, ``--init`` weights, RNG states.
* :mod:`~deblurcli.train.distributed`: rank and world size, device and precision, the launcher
  command, the per-rank sampler, the ranks' parameter check.
* :mod:`~deblurcli.train.preflight`: :func:`preflight`, every check before a process starts.
* :mod:`~deblurcli.train.curves`: metrics.jsonl rows and the curves PNG.
* :mod:`~deblurcli.train.loop`: :func:`train`, :func:`train_step`, :func:`validate`, :func:`lr_factor`.

Every public name is importable from :mod:`deblurcli.train` itself.
"""

from deblurcli.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    apply_recipe,
    build_critic,
    build_generator,
    checkpoint_dir,
    export_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_init,
    read_checkpoint_config,
)
from deblurcli.train.config import RECIPE_FIELDS, ProgressFn, TrainConfig, TrainError, TrainEvent
from deblurcli.train.curves import plot_metrics, read_metrics
from deblurcli.train.distributed import check_gpus, launcher_command, param_max_diff, resolve_device, resolve_precision
from deblurcli.train.loop import lr_factor, train, train_step, validate
from deblurcli.train.preflight import OUTPUTS, check_images, check_outputs, preflight

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "OUTPUTS",
    "RECIPE_FIELDS",
    "ProgressFn",
    "TrainConfig",
    "TrainError",
    "TrainEvent",
    "apply_recipe",
    "build_critic",
    "build_generator",
    "check_gpus",
    "check_images",
    "check_outputs",
    "checkpoint_dir",
    "export_checkpoint",
    "launcher_command",
    "list_checkpoints",
    "load_checkpoint",
    "load_init",
    "lr_factor",
    "param_max_diff",
    "plot_metrics",
    "preflight",
    "read_checkpoint_config",
    "read_metrics",
    "resolve_device",
    "resolve_precision",
    "train",
    "train_step",
    "validate",
]
