"""The video half of ``deblur fix``: option checks, output names, the frames progress bar and the
per-video line and row. :mod:`deblurcli.video` does the work; this module only renders it.

Imports :mod:`deblurcli.video` (torch-free at import) lazily, inside the functions, so that
``deblur --help`` stays light.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

_RANGE = re.compile(r"^\s*(\d*)\s*:\s*(\d*)\s*$")


def parse_frames(text: Optional[str]) -> Optional[tuple[int, Optional[int]]]:
    """``--frames A:B`` as ``(A, B)``, 0-based, B exclusive; ``A:`` runs to the end, ``:B`` starts at 0.

    Raises:
        ValueError: a malformed range or one with B <= A (a usage error).
    """
    if text is None:
        return None
    m = _RANGE.match(text)
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(f"--frames {text!r}: expected A:B (0-based, B excluded), A: or :B, e.g. --frames 0:100")
    first = int(m.group(1)) if m.group(1) else 0
    end = int(m.group(2)) if m.group(2) else None
    if end is not None and end <= first:
        raise ValueError(f"--frames {text!r}: the end ({end}) must be greater than the start ({first})")
    return first, end


def codec_problem(codec: str) -> Optional[str]:
    """Why ``--codec`` cannot be used (FFmpeg has no such video encoder), or ``None``."""
    from deblurcli.errors import VideoError
    from deblurcli.video import encoder_for

    try:
        encoder_for(codec)
    except VideoError as e:
        return f"--codec: {e}"
    return None


def video_suffix(path: Path, codec: str) -> tuple[str, Optional[str]]:
    """The output extension of the video ``path`` (:func:`deblurcli.video.output_suffix`), and why
    the video cannot be read (the file's one-line error, without its name), or ``None``."""
    from deblurcli.errors import VideoError
    from deblurcli.video import output_suffix

    try:
        return output_suffix(path, codec), None
    except VideoError as e:
        return path.suffix, str(e).removeprefix(f"{path}: ")


def deblur_video_file(d: Any, item: Any, target: Path, progress: Any, task: Any, *, codec: str, crf: int,
                      frames: Optional[tuple[int, Optional[int]]], compare: Optional[Path] = None) -> Any:
    """Deblur one video into ``target`` (and its side-by-side copy into ``compare``) with the
    Deblurrer ``d``, rendering frames done / total, fps, ETA and the blur score before -> after on
    ``task``; returns the :class:`VideoResult`."""
    from deblurcli.errors import DeblurError
    from deblurcli.video import VideoProgress, deblur_video

    name = item.path.name

    def on_progress(p: VideoProgress) -> None:
        progress.update(task, completed=p.frames_done, total=p.frames_total, visible=True,
                        description=f"  frames of {name}", info=_progress_info(p))

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeblurError(f"{item.path}: cannot create folder {target.parent}: {e.strerror or e}") from None
    try:
        return deblur_video(item.path, target, d.deblur, codec=codec, crf=crf, frames=frames, on_progress=on_progress,
                            compare=compare)
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and "out of memory" not in str(e).lower():
            raise
        raise DeblurError(f"{item.path}: out of memory; try a smaller --tile (e.g. --tile 512)") from None
    finally:
        progress.update(task, visible=False, completed=0, info="")


def _progress_info(p: Any) -> str:
    """``12.3 fps, ETA 0:01:05, blur 40.1 -> 55.2``: the frames bar's text."""
    parts = [f"{p.fps:.1f} fps"]
    if p.eta_seconds is not None:
        s = int(round(p.eta_seconds))
        parts.append(f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}")
    if p.blur_before is not None and p.blur_after is not None:
        parts.append(f"blur {p.blur_before:.1f} -> {p.blur_after:.1f}")
    return ", ".join(parts)


def video_line(name: str, r: Any) -> str:
    """The per-file line, as photos have it: ``clip.mp4  blur score X -> Y  (N frames, S s, F fps)``
    (the medians over the sampled frames), and the input's streams that were not written, if any."""
    b, a = r.blur_before_median, r.blur_after_median
    score = f"blur score {b:.1f} -> {a:.1f}" if b is not None and a is not None else "blur score -"
    line = f"{name}  {score}  ({r.frames} frames, {r.seconds:.1f} s, {r.fps:.2f} fps)"
    if r.dropped_streams:  # said, not silently lost
        line += f"  not copied: {', '.join(r.dropped_streams)}"
    return line


def video_row(name: str, r: Any, model: str, linear: bool) -> dict[str, object]:
    """The ``--json`` row (and table row) of one fixed video: :meth:`VideoResult.row`'s fields, with
    ``path`` the input and ``output`` the file written (as photo rows have them), ``status``, ``kind``,
    and ``before``/``after``/``ratio`` (the blur score medians) for the table."""
    row = r.row()
    before, after = row["blur_before_median"], row["blur_after_median"]
    row.update(
        path=name, output=r.path, status="done", kind="video", model=model, linear=linear,
        before=before, after=after,
        ratio=round(after / before, 4) if before and after is not None else None,
    )
    return row
