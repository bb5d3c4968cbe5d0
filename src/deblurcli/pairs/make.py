"""The make-pairs driver: inputs, output names, one source after another (:func:`make_pairs`),
and the pairs of one still photo (:func:`pairs_from_still`).

Imports every other module of :mod:`deblurcli.pairs`; none of them imports this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Collection

import numpy as np

from deblurcli.pairs.average import _to_uint8
from deblurcli.pairs.config import PairsConfig, PairsProgress, PairsReport, SourceResult
from deblurcli.pairs.detect import _gray
from deblurcli.pairs.stills import synthesize_from_still
from deblurcli.pairs.store import MANIFEST, Manifest, _check_settings, _pair_exists, _PairWriter
from deblurcli.pairs.video import pairs_from_video

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from deblurcli.inputs import InputItem

#: Video container extensions picked up from folders and quoted globs (a file named explicitly is
#: always tried, whatever its extension: the decoder decides).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp"}
)

def expand_video_inputs(
    args: "list[str]", *, recursive: bool = False, exclude: "Collection[str | Path]" = ()
) -> "list[InputItem]":
    """:func:`deblurcli.inputs.expand_inputs` for video files (folders and quoted globs give the
    files with a :data:`VIDEO_EXTENSIONS` extension; a file named explicitly is always kept;
    nothing is taken from inside an ``exclude`` folder)."""
    from deblurcli.inputs import expand_inputs

    return expand_inputs(args, recursive=recursive, extensions=VIDEO_EXTENSIONS, kind="video", exclude=exclude)


def _prefixes(paths: "list[Path]") -> dict["Path", str]:
    """Output name prefix per input: the file stem, plus a short hash of the path when two inputs
    share a stem (deterministic for the same set of inputs)."""
    import hashlib
    import re
    from collections import Counter

    # Cut to 200 characters (ASCII after the substitution): with the pair suffix and ".png" the
    # names stay under the usual 255-byte limit; a cut stem gets the hash too, to stay unique.
    full = {p: re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem) or "input" for p in paths}
    stems = {p: s[:200] for p, s in full.items()}
    counts = Counter(stems.values())
    return {
        p: s if counts[s] == 1 and s == full[p] else f"{s}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:6]}"
        for p, s in stems.items()
    }


def pairs_from_still(
    path: "Path", out: "Path", cfg: PairsConfig, manifest: Manifest, prefix: str, result: SourceResult,
    report: "Callable[[], None]" = lambda: None,
) -> None:
    """Make ``samples`` (default 1) pairs from one still photo with :func:`synthesize_from_still`.
    Each sample's generator is seeded from (seed, name, sample number): a resumed run makes the
    same pairs."""
    import zlib

    from deblurcli.blur import blur_score
    from deblurcli.images import read_image, resize_max_side

    settings = cfg.settings("still")
    source = str(path)
    _check_settings(manifest, source, settings)
    image = read_image(path)
    rgb = resize_max_side(image.rgb_float(), cfg.max_side)
    result.size = (int(rgb.shape[1]), int(rgb.shape[0]))
    result.blur_px, result.blur_ratio = [], []
    with _PairWriter(out, manifest) as writer:
        for n in range(cfg.samples or 1):
            name = f"{prefix}_s{n:03d}"
            if _pair_exists(out, name, manifest):
                result.pairs_kept += 1
                row = manifest.rows[name]
                for key, dest in (("blur_px", result.blur_px), ("blur_ratio", result.blur_ratio)):
                    if isinstance(row.get(key), (int, float)):
                        dest.append(float(row[key]))  # type: ignore[arg-type]
                continue
            rng = np.random.default_rng([cfg.seed, zlib.crc32(prefix.encode()), n])
            try:
                smp = synthesize_from_still(rgb, rng, max_blur=cfg.max_blur, moving_objects=cfg.moving_objects, gamma=cfg.gamma)
            except ValueError as e:
                from deblurcli.errors import ImageError

                raise ImageError(path, str(e)) from None
            blurred, target = _to_uint8(smp.blurred), _to_uint8(smp.sharp)
            t_score, b_score = blur_score(_gray(target)), blur_score(_gray(blurred))
            ratio = b_score / t_score if t_score > 0 else 1.0
            row = {
                "name": name,
                "source": source,
                "kind": "still",
                "sample": n,
                "size": [int(target.shape[1]), int(target.shape[0])],
                "blur_px": round(smp.blur_px, 3),
                "subframes": smp.subframes,
                "objects": smp.objects,
                "target_score": round(t_score, 3),
                "blurred_score": round(b_score, 3),
                "blur_ratio": round(ratio, 4),
                "verdict": "ok",
                "settings": settings,
            }

            def done(px: float = smp.blur_px, ratio: float = ratio) -> None:
                result.pairs_written += 1
                result.blur_px.append(px)  # type: ignore[union-attr]
                result.blur_ratio.append(ratio)  # type: ignore[union-attr]
                report()

            writer.submit(name, blurred, target, row, done)


def make_pairs(
    inputs: "list[InputItem]",
    out: "Path",
    cfg: PairsConfig | None = None,
    *,
    from_stills: bool = False,
    on_progress: "Callable[[PairsProgress], None] | None" = None,
) -> PairsReport:
    """Make blur/sharp pairs from videos (or, with ``from_stills``, from still photos).

    Writes ``out/blurred/NAME.png``, ``out/targets/NAME.png`` and appends a row per pair to
    ``out/pairs.jsonl`` (source, frame range and times, fps, blur scores of both images and their
    ratio, motion, luma shift, verdict, settings). Resumable: pairs already listed in the manifest
    with both images present are kept, not remade, and get no second row. One input's error
    (unreadable, corrupt, too short, resolution change) is recorded in its result; the others go on.

    Args:
        inputs: from :func:`expand_video_inputs` (or :func:`deblurcli.inputs.expand_inputs` for
            stills); items carrying an ``error`` are reported as failed.
        out: output folder (created).
        cfg: settings; defaults as the CLI.
        from_stills: inputs are photos, rendered by :func:`synthesize_from_still`.
        on_progress: called with a :class:`PairsProgress` as frames are decoded and pairs written.
    """
    from pathlib import Path

    from deblurcli.errors import DatasetError, DeblurError

    from deblurcli.inputs import output_folder_problem

    cfg = cfg or PairsConfig()
    out = Path(out)
    problem = output_folder_problem(out)
    for sub in ("blurred", "targets"):
        if problem is None and (out / sub).exists() and not (out / sub).is_dir():
            problem = f"{out / sub} exists and is not a folder"
    if problem:
        raise DatasetError(f"cannot write pairs: {problem}")
    manifest = Manifest.open(out / MANIFEST)
    prefixes = _prefixes([it.path for it in inputs if not it.error])
    results: list[SourceResult] = []
    for n, item in enumerate(inputs):
        result = SourceResult(source=str(item.path), kind="still" if from_stills else "video")
        results.append(result)
        prog = PairsProgress(source=str(item.path), index=n, inputs=len(inputs))

        def report(prog: PairsProgress = prog, result: SourceResult = result) -> None:
            prog.pairs_written, prog.pairs_kept = result.pairs_written, result.pairs_kept
            prog.rejected = sum((result.rejected or {}).values())
            if on_progress is not None:
                on_progress(prog)

        try:
            if item.error:
                raise DeblurError(f"{item.path}: {item.error}")
            if from_stills:
                pairs_from_still(item.path, out, cfg, manifest, prefixes[item.path], result, report)
            else:
                prog.frames_total = None
                pairs_from_video(item.path, out, cfg, manifest, prefixes[item.path], result, report, prog)
        except DeblurError as e:
            result.error = str(e)
        prog.done, prog.error, prog.warning = True, result.error, result.warning
        report()
    return PairsReport(results)
