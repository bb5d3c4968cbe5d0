"""Run a generator on images of any size: device and precision choice, tiling with blended seams.

:class:`Deblurrer` wraps a model (a name, a ``.safetensors`` file, ``hf://...``, or an ``nn.Module``)
and restores (B, 3, H, W) float RGB in [0, 1] to the same shape. Large images are cut into
overlapping tiles, each run with the context of its neighbours, and the tiles are blended with
weights that ramp across the middle half of each overlap, so no seam shows and every output pixel is
taken from tiles that saw at least ``overlap / 4`` pixels of real context around it.

Exactness: for a purely convolutional model whose receptive field radius is at most ``overlap / 4``
tiled and untiled outputs agree to float rounding. The shipped generators also have image-wide
operations (InstanceNorm in the paper's generator, the pooled channel attention in NAFNet), which a
tile can only estimate from its own content; tiles are therefore as large as memory allows (the whole
image when it fits) and the difference is small (see tests/test_inference.py and the README).

The algorithm follows Real-ESRGAN's tiler (tile + context, crop back) with blending added; unlike it,
this class keeps no per-image state and never prints (``on_progress`` reports tiles done).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from deblurcli.errors import DeblurError, ModelError
from deblurcli.weights import ModelInfo, load_model

if TYPE_CHECKING:  # pragma: no cover
    from deblurcli.images import Image

#: ``on_progress(done, total)``: tiles (or sub-batches) finished out of the total for one call.
ProgressCallback = Callable[[int, int], None]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")

#: The camera encoding g(x) = x^(1/2.2) that ``linear=True`` applies before the model (and inverts
#: after): the models are trained on gamma-encoded photos whose blur happened in linear light.
LINEAR_GAMMA = 2.2

#: Activation memory the CPU path may use: a quarter of the available memory, at most this.
CPU_BUDGET_CAP = 1 << 30
#: Tiles are never smaller than this (context overhead grows as tiles shrink).
MIN_TILE = 128
#: Nor larger (beyond this the per-tile cost is flat and progress reports get sparse).
MAX_TILE = 2048


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else Apple MPS, else CPU; an explicit choice is checked.

    Raises:
        DeblurError: the requested device is not available here.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeblurError(f"device {device!r} requested but CUDA is not available (torch {torch.__version__})")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeblurError("device 'mps' requested but Apple MPS is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeblurError(f"unknown device {device!r} (use {', '.join(DEVICES)})") from None


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Compute dtype of autocast: ``auto`` is fp16 on CUDA, bf16 on CPUs with native bf16 (AMX or
    AVX512-BF16: 2-3x faster there, see ``bench/precision.py``) and fp32 elsewhere.

    Raises:
        DeblurError: unknown precision, fp16 asked for on a device other than CUDA, or bf16 on a
            device other than CUDA and the CPU.
    """
    from deblurcli.hardware import cpu_has_bf16

    if precision not in PRECISIONS:
        raise DeblurError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else torch.float32
    if precision == "fp32":
        return torch.float32
    if device.type == "cpu" and precision == "bf16":
        # Allowed everywhere (emulated, slow, where the CPU lacks bf16 instructions): the same
        # numbers as on a bf16 CPU, which is what a comparison of precisions needs.
        return torch.bfloat16
    if device.type != "cuda":
        # On CPU, fp16 convolutions are slow or missing.
        raise DeblurError(f"--precision {precision} needs a CUDA device (this run uses {device.type}); use fp32 or bf16")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeblurError("this GPU does not support bf16; use fp16 or fp32")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def available_memory(device: torch.device) -> int:
    """Bytes free for activations on ``device`` (CUDA: free device memory; else MemAvailable)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other POSIX systems
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - Windows without /proc
        return 4 << 30


def activation_bytes_per_pixel(model: nn.Module, dtype: torch.dtype = torch.float32) -> float:
    """Estimate peak activation bytes per input pixel of a no-grad forward pass.

    Measured with forward hooks on a 64x64 probe: the largest layer output per input pixel, times
    4 (a layer's input and output plus temporaries such as the gate's halves are alive at once),
    plus everything a U-Net keeps for its skip connections (the sum of the per-level outputs).
    """
    sizes: list[float] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: sizes.append(o.numel() / (64 * 64)) if torch.is_tensor(o) else None)
        for m in model.modules()
        if len(list(m.children())) == 0
    ]
    try:
        p = next(model.parameters(), None)
        probe = torch.rand(1, 3, 64, 64, device=p.device if p is not None else "cpu")
        with torch.no_grad():
            model(probe)
    finally:
        for h in hooks:
            h.remove()
    peak = max(sizes, default=3.0)
    skips = sum(getattr(model, "hparams", {}).get("width", 0) * 2**i / 4**i for i in range(5))
    itemsize = torch.finfo(dtype).bits // 8
    return (4 * peak + skips) * itemsize


def tile_spans(size: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, end) of tiles covering ``size`` with at least ``overlap`` shared between neighbours.

    Starts are multiples of ``align`` (the model's downsampling factor): a strided network is
    only shift-equivariant by multiples of it, so aligned tiles see the same sampling grid as the
    whole image. The last tile ends at the border and may be up to ``align - 1`` longer than ``tile``.
    """
    if size <= tile:
        return [(0, size)]
    stride = max(align, (tile - overlap) // align * align)
    last = max(0, (size - tile) // align * align)
    spans = [(s, s + tile) for s in range(0, last, stride)]
    spans.append((last, size))
    return spans


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    """1-D blend weights for one tile: 1 inside; across an interior overlap 0 in the outer quarter
    (pixels that lack context), a linear ramp over the middle half, 1 in the inner quarter."""
    w = torch.ones(length, device=device)
    if overlap <= 0:
        return w
    d = torch.arange(length, device=device, dtype=torch.float32)
    q = overlap / 4.0
    ramp = lambda dist: ((dist + 0.5 - q) / (overlap / 2.0)).clamp(0.0, 1.0)  # noqa: E731
    if not at_start:
        w = torch.minimum(w, ramp(d))
    if not at_end:
        w = torch.minimum(w, ramp(length - 1 - d))
    return w


def _cores(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Split the image between tiles at the middle of each overlap: (start, end) per tile, a
    partition of the image, so shared statistics count every pixel once and tile borders not at all."""
    cores = []
    for i, (s, e) in enumerate(spans):
        lo = s if i == 0 else (s + spans[i - 1][1]) // 2
        hi = e if i == len(spans) - 1 else (e + spans[i + 1][0]) // 2
        cores.append((lo, hi))
    return cores


def _core_fractions(span: tuple[int, int], core: tuple[int, int]) -> tuple[float, float]:
    n = span[1] - span[0]
    return (core[0] - span[0]) / n, (span[1] - core[1]) / n


class SharedInstanceNorm:
    """Make a model's InstanceNorm layers use image-wide statistics while it runs on tiles.

    InstanceNorm normalises with the mean and variance of the whole input; on a tile it would use
    the tile's own, so tiles of one photo would get different tones. Tiled inference therefore runs
    twice: a first pass over all tiles collects each layer's per-channel sums (``collect``), then
    the real pass normalises every tile with those image-wide statistics (``apply``). The first
    layer's statistics are then exact; deeper layers' are computed from activations that were
    normalised per tile in the first pass, a close approximation (measured in the tests).
    Implemented with forward hooks, so the model classes stay plain ``nn.Module``s.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]
        self.mode = "off"
        self.images = 1
        self._sums: dict[int, list[torch.Tensor]] = {}
        self._stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._core = (0.0, 0.0, 0.0, 0.0)
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def __bool__(self) -> bool:
        return bool(self.layers)

    def close(self) -> None:
        for h in self._handles:
            h.remove()

    def start_collect(self, images: int, core: tuple[float, float, float, float] | None = None) -> None:
        """Collect statistics; apply those of the previous pass meanwhile, if any (refinement)."""
        if self._sums:
            self._finish()
        self.mode, self.images, self._sums = "collect", images, {}

    def set_core(self, core: tuple[float, float, float, float]) -> None:
        """Fractions (top, bottom, left, right) of the current tiles that count for the statistics:
        each image pixel is then counted once, and tile borders without context not at all."""
        self._core = core

    def _finish(self) -> None:
        for key, (s, ss, n) in self._sums.items():
            mean = s / n
            self._stats[key] = (mean, (ss / n - mean * mean).clamp_min(0.0))

    def start_apply(self) -> None:
        self._finish()
        self._sums = {}
        self.mode = "apply"

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
        if self.mode == "off":
            return None
        x = inputs[0].float()
        # Crops are stacked tile-major: sample i of a forward pass belongs to image i % images.
        key, b = id(module), self.images
        if self.mode == "collect":
            t, bt, lf, r = self._core
            hh, ww = x.shape[2], x.shape[3]
            c = x[:, :, round(t * hh) : hh - round(bt * hh), round(lf * ww) : ww - round(r * ww)]
            s = c.sum(dim=(2, 3)).view(-1, b, x.shape[1]).sum(0)
            ss = (c * c).sum(dim=(2, 3)).view(-1, b, x.shape[1]).sum(0)
            n = c.shape[0] // b * c.shape[2] * c.shape[3]
            if key in self._sums:
                ps, pss, pn = self._sums[key]
                s, ss, n = ps + s, pss + ss, pn + n
            self._sums[key] = (s, ss, n)
            if key not in self._stats:
                return None
        mean, var = self._stats[key]
        reps = x.shape[0] // b
        mean, var = mean.repeat(reps, 1)[:, :, None, None], var.repeat(reps, 1)[:, :, None, None]
        y = (x - mean) * torch.rsqrt(var + module.eps)
        if module.affine:
            y = y * module.weight.float()[None, :, None, None] + module.bias.float()[None, :, None, None]
        return y.to(output.dtype)


class Deblurrer:
    """A loaded generator ready to restore images.

    Args:
        model: a registered name, a ``.safetensors`` path, ``hf://owner/repo/file.safetensors@rev``,
            or an ``nn.Module`` generator (used as is, put in eval mode).
        device: ``auto`` (CUDA -> MPS -> CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto`` (fp16 on CUDA, bf16 on CPUs with AMX or AVX512-BF16, fp32 elsewhere),
            ``fp32``, ``fp16`` (CUDA only), ``bf16`` (CUDA or CPU). Half precision runs under
            autocast: weights, reductions and the output stay fp32.
        threads: CPU compute threads (``torch.set_num_threads``, which is process-wide); ``None``
            leaves torch's setting alone, ``0`` picks the cores not already busy
            (:func:`deblurcli.hardware.default_threads`).
        tile: tile side in pixels; ``None`` picks it from available memory (whole image if it fits);
            ``0`` never tiles. Models that need the whole image (``blind``: it cuts large photos
            into tiles itself, with the whole photo around each) are never tiled here; they bound
            their own memory.
        tile_overlap: pixels shared by neighbouring tiles (blended; see the module docstring).
        offline: resolve the model from the local cache only.
        linear: the images hold linear light (raw-converted linear TIFFs, scientific data, Levin et
            al. 2009), not a camera's gamma-encoded values. The models learn blur as it is in
            photos: averaged in linear light, then encoded. A linear image is therefore encoded
            with x^(1/2.2) before the model and decoded with x^2.2 after it; without this, a model
            "corrects" a brightening at edges that linear data does not have and darkens them.

    Example:
        >>> d = Deblurrer("weights.safetensors")                   # doctest: +SKIP
        >>> sharp = d.deblur(blurred)   # (B, 3, H, W) in [0, 1]     # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | Path | nn.Module,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | None = None,
        tile_overlap: int = 32,
        offline: bool = False,
        linear: bool = False,
        threads: int | None = None,
    ) -> None:
        if threads is not None and threads < 0:
            raise DeblurError(f"threads must be >= 0, got {threads}")
        if tile is not None and tile < 0:
            raise DeblurError(f"tile must be >= 0, got {tile}")
        if tile_overlap < 0:
            raise DeblurError(f"tile overlap must be >= 0, got {tile_overlap}")
        if tile and tile_overlap * 2 >= tile:
            raise DeblurError(f"tile overlap ({tile_overlap}) must be less than half the tile size ({tile})")
        self.device = pick_device(device)
        self.dtype = pick_dtype(precision, self.device)
        if threads is not None and self.device.type == "cpu":
            from deblurcli.hardware import resolve_threads

            torch.set_num_threads(resolve_threads(threads))
        if isinstance(model, nn.Module):
            net = model
            hp = dict(getattr(net, "hparams", {}))
            self.info = ModelInfo(
                name=type(net).__name__,
                architecture=str(getattr(net, "arch", type(net).__name__)),
                hyperparameters=hp,
                path=None,
                source="module",
                num_params=sum(p.numel() for p in net.parameters()),
            )
        else:
            net, self.info = load_model(model, offline=offline)
        if getattr(net, "runs_in_fp32", False):
            self.dtype = torch.float32  # classical models (FFTs): say what really runs
        if getattr(net, "arch", None) == "patchgan":
            raise ModelError(f"{self.info.name} is a critic (patchgan), not a generator: it cannot deblur")
        self.model = net.to(self.device).eval()
        # NHWC: oneDNN (CPU) and cuDNN run these convolutions 2-3x faster than in NCHW (measured
        # on the bench CPU for 1x1, 3x3 and depthwise convs); the model's math is unchanged.
        self.channels_last = self.device.type in ("cpu", "cuda")
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.linear = linear
        #: Statistics passes over the tiles before the real one, for models with InstanceNorm.
        self.norm_passes = 1
        self._bpp: float | None = None

    # ------------------------------------------------------------------------------- sizing

    def bytes_per_pixel(self) -> float:
        """Estimated activation bytes per pixel (cached; see :func:`activation_bytes_per_pixel`)."""
        if self._bpp is None:
            self._bpp = activation_bytes_per_pixel(self.model, self.dtype)
        return self._bpp

    def memory_budget(self) -> int:
        """Bytes of activations one forward pass may use on this device."""
        free = available_memory(self.device)
        if self.device.type == "cuda":
            return int(free * 0.5)
        return int(min(free * 0.25, CPU_BUDGET_CAP))

    def tile_size(self, height: int, width: int) -> int | None:
        """The tile side for an image of this size, or ``None`` to run it whole."""
        if self.tile == 0 or getattr(self.model, "whole_image", False):
            return None
        if self.tile is not None:
            return self.tile if max(height, width) > self.tile else None
        budget, bpp = self.memory_budget(), self.bytes_per_pixel()
        if height * width * bpp <= budget:
            return None
        side = int(math.sqrt(budget / bpp)) // 64 * 64
        side = max(MIN_TILE, min(MAX_TILE, side), 4 * self.tile_overlap + 64)
        return side if max(height, width) > side else None

    # ------------------------------------------------------------------------------ running

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            if self.dtype != torch.float32:
                # Autocast keeps reductions (norms, pooling) in fp32 where half would overflow.
                with torch.autocast(self.device.type, dtype=self.dtype):
                    y = self.model(x)
            else:
                y = self.model(x)
        return y.float().contiguous().clamp_(0.0, 1.0)

    def deblur(self, x: torch.Tensor, *, on_progress: ProgressCallback | None = None) -> torch.Tensor:
        """Restore a batch.

        Args:
            x: (B, 3, H, W) float tensor in [0, 1], any size.
            on_progress: called with (done, total) tiles or sub-batches.

        Returns:
            (B, 3, H, W) float32 in [0, 1] on the device of ``x``.
        """
        if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
            raise DeblurError(f"deblur expects a (B, 3, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        if not x.is_floating_point():
            raise DeblurError(f"deblur expects float values in [0, 1], got {x.dtype}")
        if self.linear:
            y = self._deblur(x.clamp(0.0, 1.0).pow(1.0 / LINEAR_GAMMA), on_progress)
            return y.pow_(LINEAR_GAMMA)
        return self._deblur(x, on_progress)

    def _deblur(self, x: torch.Tensor, on_progress: ProgressCallback | None) -> torch.Tensor:
        b, _, h, w = x.shape
        tile = self.tile_size(h, w)
        if tile is None:
            # Small images: as many per forward pass as the memory budget allows.
            per = h * w * self.bytes_per_pixel()
            chunk = max(1, int(self.memory_budget() // max(per, 1.0))) if self.tile != 0 else b
            outs = []
            total = math.ceil(b / chunk)
            # A model that reports its own steps (`blind`: a minute or more per large photo, tile by
            # tile) does so within a single forward pass.
            own = on_progress is not None and total == 1 and getattr(self.model, "reports_progress", False)
            if own:
                self.model.on_progress = on_progress
            try:
                for i in range(0, b, chunk):
                    outs.append(self._run(x[i : i + chunk]).to(x.device))
                    if on_progress:
                        on_progress(i // chunk + 1, total)
            finally:
                if own:
                    self.model.on_progress = None
            return torch.cat(outs) if len(outs) > 1 else outs[0]
        return self._deblur_tiled(x, tile, on_progress)

    def _deblur_tiled(self, x: torch.Tensor, tile: int, on_progress: ProgressCallback | None) -> torch.Tensor:
        b, _, h, w = x.shape
        ov = self.tile_overlap
        align = int(getattr(self.model, "pad_multiple", 1))
        ys, xs = tile_spans(h, tile, ov, align), tile_spans(w, tile, ov, align)
        # Tiles of one shape run together, as many per forward pass as the memory budget allows.
        by_shape: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
        for y0, y1 in ys:
            for x0, x1 in xs:
                by_shape.setdefault((y1 - y0, x1 - x0), []).append((y0, y1, x0, x1))
        budget = self.memory_budget()
        groups = []
        core_of = {
            (y0, y1, x0, x1): _core_fractions((y0, y1), cy) + _core_fractions((x0, x1), cx)
            for (y0, y1), cy in zip(ys, _cores(ys), strict=True)
            for (x0, x1), cx in zip(xs, _cores(xs), strict=True)
        }
        for (th, tw), boxes in by_shape.items():
            n = max(1, int(budget // max(b * th * tw * self.bytes_per_pixel(), 1.0)))
            groups += [boxes[g : g + n] for g in range(0, len(boxes), n)]
        shared = SharedInstanceNorm(self.model)
        passes = self.norm_passes if shared else 0
        total = len(groups) + passes
        done = 0
        try:
            for _ in range(passes):
                shared.start_collect(b)
                for box in (box for batch in groups for box in batch):
                    y0, y1, x0, x1 = box
                    shared.set_core(core_of[box])
                    self._run(x[:, :, y0:y1, x0:x1])
                done += 1
                if on_progress:
                    on_progress(done, total)
            if passes:
                shared.start_apply()
            out = torch.zeros((b, 3, h, w), dtype=torch.float32, device=x.device)
            norm = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
            for batch in groups:
                crops = torch.cat([x[:, :, y0:y1, x0:x1] for y0, y1, x0, x1 in batch])
                result = self._run(crops).to(x.device)
                for k, (y0, y1, x0, x1) in enumerate(batch):
                    wy = _ramp(y1 - y0, ov, y0 == 0, y1 >= h, x.device)
                    wx = _ramp(x1 - x0, ov, x0 == 0, x1 >= w, x.device)
                    weight = (wy[:, None] * wx[None, :])[None, None]
                    out[:, :, y0:y1, x0:x1] += result[k * b : (k + 1) * b] * weight
                    norm[:, :, y0:y1, x0:x1] += weight
                done += 1
                if on_progress:
                    on_progress(done, total)
        finally:
            shared.close()
        return out.div_(norm).clamp_(0.0, 1.0)

    def deblur_image(self, image: Image, *, on_progress: ProgressCallback | None = None) -> Image:
        """Restore a decoded image: same size, bit depth, greyscale-ness; alpha and metadata kept."""
        restored = self.deblur(image.to_tensor(), on_progress=on_progress)
        return image.with_tensor(restored)


__all__ = ["LINEAR_GAMMA", "Deblurrer", "activation_bytes_per_pixel", "pick_device", "pick_dtype", "tile_spans"]
