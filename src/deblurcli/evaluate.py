"""Score deblurred images against ground truth: per-image rows plus a summary.

Three things can be scored (exactly one per run):

- a model's outputs (``model=``: a name, a weights path, an ``nn.Module``, or a ready
  :class:`deblurcli.inference.Deblurrer` -- anything with a ``deblur(x) -> y`` method);
- existing predictions (``pred=DIR``), matched to a dataset's pairs by name, or to ``gt=DIR``;
- the blurred input itself (``identity=True``): the baseline row every report needs.

How scores are taken, so that they compare with papers: the output is first turned into the image
``deblur fix`` would save (same bit depth as the input, 8 bits for GoPro; greyscale inputs give a
greyscale output), and PSNR/SSIM are computed over RGB on those saved levels with
:mod:`deblurcli.metrics` in the stated SSIM convention. Greyscale images are replicated to RGB,
which leaves both metrics equal to their greyscale values. Identical images would score an infinite
PSNR; it is capped at :data:`PSNR_CAP` dB so means stay finite (reported in the summary).

Missing ground truth, unreadable files and size mismatches become rows with an ``error`` (and
are left out of the summary); the caller decides the exit status.
"""

from __future__ import annotations

import heapq
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deblurcli.errors import DeblurError, InputError
from deblurcli.images import Image, read_image
from deblurcli.layouts import PairFiles, Split, images_under, match_folders, scan_pairs

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Identical images score this PSNR (dB) instead of infinity.
PSNR_CAP = 100.0

#: Published GoPro test-set results (Nah et al. 2017 split, 1111 pairs, ``blur`` images), for
#: context only: copied from the papers, not measured by deblurcli. SSIM there comes from each
#: paper's own code (mostly MATLAB ``ssim`` on the RGB array, i.e. ``--ssim matlab``).
PUBLISHED_GOPRO: tuple[dict[str, Any], ...] = (
    {"method": "DeepDeblur (Nah et al. 2017)", "psnr": 29.08, "ssim": 0.914, "note": ""},
    {
        "method": "DeblurGAN (Kupyn et al. 2018)",
        "psnr": 28.70,
        "ssim": 0.958,
        "note": "CW-SSIM, not SSIM (DeblurGAN-v2 re-measured SSIM 0.858)",
    },
    {"method": "DeblurGAN-v2 Inception (Kupyn et al. 2019)", "psnr": 29.55, "ssim": 0.934, "note": ""},
    {"method": "SRN-DeblurNet (Tao et al. 2018)", "psnr": 30.26, "ssim": 0.934, "note": ""},
    {"method": "MPRNet (Zamir et al. 2021)", "psnr": 32.66, "ssim": 0.959, "note": ""},
    {"method": "Restormer (Zamir et al. 2022)", "psnr": 32.92, "ssim": 0.961, "note": ""},
    {"method": "NAFNet-width64 (Chen et al. 2022)", "psnr": 33.71, "ssim": 0.967, "note": ""},
)


@dataclass
class EvalRow:
    """One image's scores, or why it was not scored (``error`` set, scores ``None``).

    ``input_psnr``/``input_ssim`` score the blurred input against the same ground truth (absent
    for ``--pred --gt`` without a dataset); the gains are output minus input. ``seconds`` is the
    model's time on this image (``None`` unless a model is scored). With alignment, ``shift`` and
    ``input_shift`` are the (dy, dx) at which the output and the input were scored.
    ``level_shift``/``input_level_shift``: mean brightness of the output/input minus that of the
    ground truth, in 8-bit levels (0-255 scale) over all pixels and channels: a model must not
    brighten or darken images (blur averaged in linear light brightens them slightly; blur averaged
    in stored values, as GoPro's ``blur`` and Levin's, does not).
    """

    name: str
    sharp: str | None = None
    blurred: str | None = None
    output: str | None = None
    width: int | None = None
    height: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    input_psnr: float | None = None
    input_ssim: float | None = None
    psnr_gain: float | None = None
    ssim_gain: float | None = None
    level_shift: float | None = None
    input_level_shift: float | None = None
    seconds: float | None = None
    shift: tuple[int, int] | None = None
    input_shift: tuple[int, int] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: failed rows carry only name, paths and error."""
        d = asdict(self)
        if self.error is not None:
            return {k: v for k, v in d.items() if k in ("name", "sharp", "blurred", "output", "error") and v is not None}
        return {k: v for k, v in d.items() if k != "error" and not (k in ("shift", "input_shift") and v is None)}


@dataclass
class Extreme:
    """Thumbnails (H, W, 3 uint8) of one of the best or worst images, for the report grid."""

    name: str
    key: float
    psnr: float
    gain: float | None
    blurred: np.ndarray | None
    output: np.ndarray
    sharp: np.ndarray


@dataclass
class EvalReport:
    """Rows in dataset order (failed ones included), the summary, and the best/worst thumbnails."""

    rows: list[EvalRow]
    summary: dict[str, Any]
    best: list[Extreme] = field(default_factory=list)
    worst: list[Extreme] = field(default_factory=list)

    @property
    def failed(self) -> list[EvalRow]:
        return [r for r in self.rows if r.error is not None]

    @property
    def scored(self) -> list[EvalRow]:
        return [r for r in self.rows if r.error is None]


ProgressFn = Callable[[int, int, EvalRow], None]


@dataclass(frozen=True)
class _Job:
    name: str
    sharp: Path | None
    blurred: Path | None  # the input (None for --pred/--gt without a dataset)
    output: Path | None  # an existing prediction (None: computed by the model, or identity)
    error: str | None = None


def evaluate(
    dataset: Path | str | None = None,
    *,
    model: Any = None,
    pred: Path | str | None = None,
    gt: Path | str | None = None,
    identity: bool = False,
    blur_dir: str = "blur",
    split: Split | None = None,
    ssim_convention: str = "skimage",
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    offline: bool = False,
    limit: int | None = None,
    extremes: int = 0,
    align: int = 0,
    linear: bool = False,
    threads: int | None = None,
    on_progress: ProgressFn | None = None,
) -> EvalReport:
    """Score a model, existing predictions, or the blurred inputs against ground truth.

    Args:
        dataset: a pair folder (see :mod:`deblurcli.layouts`); omit it only with ``pred`` + ``gt``.
        model: what to run (name, path, ``nn.Module`` or an object with ``deblur``); exclusive
            with ``pred`` and ``identity``.
        pred: folder of predictions, matched to the dataset's pair names (``<pred>/<name>.*``, or
            a unique stem) or, with ``gt``, to ``gt``'s files.
        gt: ground-truth folder for ``pred`` when there is no dataset.
        identity: score the blurred inputs themselves.
        blur_dir, split: dataset options (GoPro ``blur``/``blur_gamma``, ``train``/``test``).
        ssim_convention: ``"skimage"`` or ``"matlab"`` (see :mod:`deblurcli.metrics`).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...; the model and the
            metrics run there.
        precision, tile, offline, threads: passed to ``Deblurrer`` when ``model`` is not one already.
        limit: score only the first ``limit`` pairs (quick checks).
        extremes: keep thumbnails of this many best and worst images (ranked by PSNR gain when
            the input is known and a model or predictions are scored, else by PSNR).
        align: score the output and the input each at the integer shift of up to ``align`` px
            that fits the ground truth best, on the area ``align`` px inside the borders (see
            :func:`deblurcli.metrics.align`; for camera-shake sets such as Levin's). 0: no shift.
        linear: the dataset's images hold linear light (Levin's do): the model runs on them
            gamma-encoded (see ``Deblurrer(linear=True)``). Only when ``model`` is a name, a path or
            an ``nn.Module``; scores are computed on the images as stored.
        on_progress: called after each image with (done, total, row).

    Raises:
        InputError: an invalid combination of options.
        DatasetError: the dataset folder has no layout deblur knows.
        ModelError: the model cannot be loaded.
    """
    from deblurcli.metrics import SSIM_CONVENTIONS

    mode = _mode(dataset, model, pred, gt, identity, ssim_convention, align, linear)

    jobs, layout = _jobs(dataset, pred, gt, blur_dir, split)
    if limit is not None:
        jobs = jobs[:limit]
    dev = _device(device)
    deblurrer = None
    model_label = None
    if mode == "model":
        deblurrer, model_label = _deblurrer(model, dev, precision, tile, offline, linear, threads)

    rank_by_gain = mode != "identity"
    rows: list[EvalRow] = []
    best: list[tuple[float, int, Extreme]] = []  # min-heap of the best (smallest key on top)
    worst: list[tuple[float, int, Extreme]] = []  # min-heap of -key
    started = time.perf_counter()
    for i, job in enumerate(jobs):
        row = EvalRow(
            name=job.name,
            sharp=str(job.sharp) if job.sharp else None,
            blurred=str(job.blurred) if job.blurred else None,
            output=str(job.output) if job.output else None,
        )
        try:
            if job.error:
                raise DeblurError(job.error)
            assert job.sharp is not None
            sharp = read_image(job.sharp)
            blurred = read_image(job.blurred) if job.blurred else None
            if blurred is not None:
                _same_size(blurred, sharp, "blurred")
            out_image = _output_image(mode, job, blurred, sharp, deblurrer, dev, row)
            row.width, row.height = sharp.width, sharp.height
            _score(row, out_image, blurred, sharp, dev, align=align, ssim_convention=ssim_convention)
            if extremes > 0:
                _keep_extremes(best, worst, extremes, i, job.name, row, rank_by_gain, out_image, blurred, sharp)
        except DeblurError as e:
            row = EvalRow(name=row.name, sharp=row.sharp, blurred=row.blurred, output=row.output, error=str(e))
        rows.append(row)
        if on_progress is not None:
            on_progress(i + 1, len(jobs), row)
    wall = time.perf_counter() - started

    summary = _summary(rows, wall)
    summary.update(
        {
            "what": mode,
            "model": model_label,
            "dataset": str(dataset) if dataset is not None else None,
            "pred": str(pred) if pred is not None else None,
            "gt": str(gt) if gt is not None else None,
            "layout": layout,
            "blur_dir": blur_dir if layout in ("gopro", "flat") else None,
            "ssim_convention": ssim_convention,
            "ssim_convention_text": SSIM_CONVENTIONS[ssim_convention],
            "psnr_cap": PSNR_CAP,
            "align": align,
            "linear": linear,
            "device": str(dev),
            "ranked_by": "psnr_gain" if rank_by_gain and summary["psnr_gain"] is not None else "psnr",
        }
    )
    return EvalReport(
        rows,
        summary,
        best=[e for _, _, e in sorted(best, key=lambda t: (-t[0], t[1]))],
        worst=[e for _, _, e in sorted(worst, key=lambda t: (-t[0], t[1]))],
    )


def _mode(
    dataset: Path | str | None, model: Any, pred: Path | str | None, gt: Path | str | None, identity: bool,
    ssim_convention: str, align: int, linear: bool,
) -> str:
    """What :func:`evaluate` scores ("model", "pred" or "identity"), after checking that the options
    go together.

    Raises:
        InputError: an invalid combination of options.
    """
    from deblurcli.metrics import SSIM_CONVENTIONS

    if ssim_convention not in SSIM_CONVENTIONS:
        raise InputError(f"unknown SSIM convention {ssim_convention!r}; choose {' or '.join(SSIM_CONVENTIONS)}")
    modes = [m for m, on in (("model", model is not None), ("pred", pred is not None), ("identity", identity)) if on]
    if len(modes) != 1:
        raise InputError("choose exactly one of a model, --pred DIR or --identity to score")
    mode = modes[0]
    if gt is not None and (pred is None or dataset is not None):
        raise InputError("--gt DIR goes with --pred DIR and no dataset folder")
    if dataset is None and gt is None:
        raise InputError("give a dataset folder (or --pred DIR --gt DIR)")
    if align < 0:
        raise InputError(f"--align must be 0 or more pixels, got {align}")
    if linear and mode != "model":
        raise InputError("--linear changes how a model is run: it goes with --model, not --pred or --identity")
    if linear and hasattr(model, "deblur"):
        raise InputError("linear=True needs a model name, path or nn.Module; build your Deblurrer with linear=True instead")
    return mode


def _output_image(mode: str, job: _Job, blurred: Image | None, sharp: Image, deblurrer: Any, dev: Any, row: EvalRow) -> Image:
    """The image scored for one pair: the model's output (its time in ``row.seconds``), the
    prediction, or the blurred input itself."""
    import torch

    if mode == "model":
        assert blurred is not None
        x = blurred.to_tensor().to(dev)
        t0 = time.perf_counter()
        with torch.inference_mode():
            y = deblurrer.deblur(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        row.seconds = time.perf_counter() - t0
        if tuple(y.shape) != tuple(x.shape):
            raise DeblurError(f"model output {tuple(y.shape)} differs from its input {tuple(x.shape)}")
        return blurred.with_tensor(y)  # the image `deblur fix` would save
    if mode == "pred":
        assert job.output is not None
        out_image = read_image(job.output)
        _same_size(out_image, sharp, "prediction")
        return out_image
    assert blurred is not None
    return blurred


def _score(row: EvalRow, out_image: Image, blurred: Image | None, sharp: Image, dev: Any, *, align: int, ssim_convention: str) -> None:
    """PSNR, SSIM and mean level shift of the output (and of the blurred input, when known) against
    the ground truth, each at its best shift within ``align`` px; written into ``row``."""
    import torch

    from deblurcli.metrics import psnr, ssim
    from deblurcli.metrics import align as align_to  # `align` is also the argument's name

    target = sharp.to_tensor().to(dev)
    outs = [out_image.to_tensor().to(dev)]
    if blurred is not None:
        outs.append(blurred.to_tensor().to(dev))
    stack = torch.cat(outs)
    targets = target.expand(len(outs), -1, -1, -1)
    if align:
        try:
            stack, targets, shifts = align_to(stack, targets, align)
        except ValueError as e:
            raise DeblurError(str(e)) from None
        row.shift = shifts[0]
        if blurred is not None:
            row.input_shift = shifts[1]
    p = psnr(stack, targets).clamp(max=PSNR_CAP).tolist()
    s = ssim(stack, targets, ssim_convention).tolist()  # type: ignore[arg-type]
    row.psnr, row.ssim = p[0], s[0]
    shifts_255 = ((stack - targets).mean(dim=(1, 2, 3)) * 255.0).tolist()
    row.level_shift = shifts_255[0]
    if blurred is not None:
        row.input_level_shift = shifts_255[1]
        row.input_psnr, row.input_ssim = p[1], s[1]
        row.psnr_gain, row.ssim_gain = p[0] - p[1], s[0] - s[1]


def _keep_extremes(
    best: list[tuple[float, int, Extreme]], worst: list[tuple[float, int, Extreme]], extremes: int, i: int, name: str,
    row: EvalRow, rank_by_gain: bool, out_image: Image, blurred: Image | None, sharp: Image,
) -> None:
    """Offer pair ``i`` to the heaps of the best and the worst ``extremes`` images (by PSNR gain
    when ranked by gain and known, else by PSNR)."""
    use_gain = rank_by_gain and row.psnr_gain is not None
    key = row.psnr_gain if use_gain else row.psnr
    assert key is not None
    ex = Extreme(
        name,
        key,
        row.psnr,
        row.psnr_gain,
        _thumb(blurred) if blurred is not None else None,
        _thumb(out_image),
        _thumb(sharp),
    )
    _keep(best, (key, i, ex), extremes)
    _keep(worst, (-key, i, ex), extremes)


def row_keys() -> tuple[str, ...]:
    """The per-image row keys, in order (the CSV header)."""
    return tuple(EvalRow.__dataclass_fields__)


# --- internals -------------------------------------------------------------------------------


def _jobs(
    dataset: Path | str | None, pred: Path | str | None, gt: Path | str | None, blur_dir: str, split: Split | None
) -> tuple[list[_Job], str]:
    if dataset is None:
        assert pred is not None and gt is not None
        scan = match_folders(pred, gt)
        jobs = [_Job(p.name, p.sharp, None, p.blurred) for p in scan.pairs]
        jobs += [_Job(u.name, None, None, u.path, f"{u.path}: {u.reason}") for u in scan.unpaired]
        return sorted(jobs, key=lambda j: j.name), scan.layout
    scan = scan_pairs(dataset, blur_dir=blur_dir, split=split)
    pairs: list[PairFiles] = scan.pairs
    jobs = [_Job(p.name, p.sharp, p.blurred, None) for p in pairs]
    jobs += [_Job(u.name, None, u.path, None, f"{u.path}: {u.reason}") for u in scan.unpaired]
    jobs.sort(key=lambda j: j.name)
    if pred is not None:
        jobs = _attach_predictions(jobs, Path(pred))
    return jobs, scan.layout


def _attach_predictions(jobs: list[_Job], pred: Path) -> list[_Job]:
    """Find ``<pred>/<name>.*`` for each pair (or a unique file with the pair's stem)."""
    if not pred.is_dir():
        raise InputError(f"{pred}: no such folder" if not pred.exists() else f"{pred}: not a folder")
    files = images_under(pred)
    by_key: dict[str, list[Path]] = {}
    by_stem: dict[str, list[Path]] = {}
    for f in files:
        by_key.setdefault(f.with_suffix("").as_posix(), []).append(f)
        by_stem.setdefault(f.stem, []).append(f)
    out = []
    for j in jobs:
        if j.error:
            out.append(j)
            continue
        cands = by_key.get(j.name) or by_stem.get(Path(j.name).name) or []
        if len(cands) == 1:
            out.append(_Job(j.name, j.sharp, j.blurred, pred / cands[0]))
        else:
            why = "no prediction" if not cands else "several predictions"
            out.append(_Job(j.name, j.sharp, j.blurred, None, f"{pred / j.name}.*: {why} in {pred}"))
    return out


def _same_size(image: Image, sharp: Image, what: str) -> None:
    if (image.width, image.height) != (sharp.width, sharp.height):
        raise DeblurError(
            f"{image.path}: size mismatch: {what} is {image.width}x{image.height}, "
            f"ground truth {sharp.path} is {sharp.width}x{sharp.height}"
        )


def _device(device: str) -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise InputError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but CUDA is not available")
    return dev


def _deblurrer(
    model: Any, dev: torch.device, precision: str, tile: int | None, offline: bool, linear: bool, threads: int | None
) -> tuple[Any, str]:
    if hasattr(model, "deblur"):
        return model, getattr(model, "name", None) or type(model).__name__
    from deblurcli.inference import Deblurrer  # lazy: heavy, and lives on its own branch

    label = str(model) if isinstance(model, (str, Path)) else type(model).__name__
    deblurrer = Deblurrer(model, device=str(dev), precision=precision, tile=tile, offline=offline, linear=linear, threads=threads)
    return deblurrer, label


def _keep(heap: list[tuple[float, int, Extreme]], item: tuple[float, int, Extreme], k: int) -> None:
    if len(heap) < k:
        heapq.heappush(heap, item)
    elif item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)


def _thumb(image: Image, height: int = 200) -> np.ndarray:
    """An 8-bit RGB thumbnail of the given height (aspect kept), for the report grid."""
    from PIL import Image as PILImage

    rgb = np.rint(image.rgb_float() * 255).astype(np.uint8)
    pil = PILImage.fromarray(rgb)
    w = max(1, round(pil.width * height / pil.height))
    return np.asarray(pil.resize((w, height), PILImage.Resampling.LANCZOS))


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.median(values)


def _summary(rows: list[EvalRow], wall: float) -> dict[str, Any]:
    ok = [r for r in rows if r.error is None]
    psnr_mean, psnr_median = _stats([r.psnr for r in ok if r.psnr is not None])
    ssim_mean, ssim_median = _stats([r.ssim for r in ok if r.ssim is not None])
    in_psnr, _ = _stats([r.input_psnr for r in ok if r.input_psnr is not None])
    in_ssim, _ = _stats([r.input_ssim for r in ok if r.input_ssim is not None])
    gain_psnr, gain_psnr_median = _stats([r.psnr_gain for r in ok if r.psnr_gain is not None])
    gain_ssim, _ = _stats([r.ssim_gain for r in ok if r.ssim_gain is not None])
    model_s, _ = _stats([r.seconds for r in ok if r.seconds is not None])
    level, _ = _stats([r.level_shift for r in ok if r.level_shift is not None])
    in_level, _ = _stats([r.input_level_shift for r in ok if r.input_level_shift is not None])
    return {
        "summary": True,
        "count": len(ok),
        "failed": len(rows) - len(ok),
        "psnr": psnr_mean,
        "ssim": ssim_mean,
        "psnr_median": psnr_median,
        "ssim_median": ssim_median,
        "input_psnr": in_psnr,
        "input_ssim": in_ssim,
        "psnr_gain": gain_psnr,
        "psnr_gain_median": gain_psnr_median,
        "ssim_gain": gain_ssim,
        "level_shift": level,
        "input_level_shift": in_level,
        "model_seconds_per_image": model_s,
        "seconds_per_image": wall / len(rows) if rows else None,
        "capped": sum(1 for r in ok if r.psnr is not None and math.isclose(r.psnr, PSNR_CAP)),
    }
