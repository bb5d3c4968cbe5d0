"""Files of an evaluation report: per-image rows (CSV / JSONL), the summary, and two pictures.

Pictures are drawn with Pillow (no plotting library): ``best_worst.png``, a grid of the best and
worst images (blurred | output | sharp, one row each, labelled with their scores), and
``psnr_gain_hist.png``, a histogram of the PSNR gain over the blurred input (of the PSNR itself
when the input is unknown, or when the blurred input is what is scored). Every file is written to
a temporary name and renamed into place, so an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from deblurcli.evaluate import EvalReport, EvalRow, Extreme, row_keys

_BG = (255, 255, 255)
_FG = (20, 20, 20)
_GRID = (200, 200, 200)
_BAR = (70, 110, 180)
_ZERO = (200, 60, 60)


def _atomic_write(path: Path, data: bytes) -> None:
    from deblurcli.images import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def rows_csv(rows: Sequence[EvalRow]) -> str:
    """Per-image rows as CSV text (header = :func:`deblurcli.evaluate.row_keys`)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(row_keys()), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(v) for k, v in vars(r).items()})
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    """None -> empty cell; an alignment shift (dy, dx) -> "dy dx" (one cell, no quoting needed)."""
    if v is None:
        return ""
    if isinstance(v, tuple):
        return " ".join(str(x) for x in v)
    return v


def rows_jsonl(rows: Sequence[EvalRow]) -> str:
    """Per-image rows as JSON lines (failed rows carry an ``error``)."""
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rows)


def write_rows(path: Path | str, rows: Sequence[EvalRow]) -> Path:
    """Write per-image rows to ``path``: JSON lines for ``.jsonl``/``.json``, else CSV."""
    path = Path(path)
    text = rows_jsonl(rows) if path.suffix.lower() in (".jsonl", ".json") else rows_csv(rows)
    _atomic_write(path, text.encode())
    return path


def write_report(folder: Path | str, report: EvalReport, extra_summary: dict[str, Any] | None = None) -> list[Path]:
    """Write rows.csv, rows.jsonl, summary.json, best_worst.png and psnr_gain_hist.png into ``folder``."""
    folder = Path(folder)
    summary = {**report.summary, **(extra_summary or {})}
    written = [write_rows(folder / "rows.csv", report.rows), write_rows(folder / "rows.jsonl", report.rows)]
    path = folder / "summary.json"
    _atomic_write(path, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    written.append(path)
    if report.best or report.worst:
        path = folder / "best_worst.png"
        _atomic_write(path, _png(grid_image(report.best, report.worst, summary)))
        written.append(path)
    scored = report.scored
    if scored:
        by_gain = summary.get("ranked_by") == "psnr_gain"
        values = [r.psnr_gain if by_gain else r.psnr for r in scored]
        label = "PSNR gain over the blurred input (dB)" if by_gain else "PSNR (dB)"
        path = folder / "psnr_gain_hist.png"
        _atomic_write(path, _png(histogram_image([v for v in values if v is not None], label, summary)))
        written.append(path)
    return written


def _png(img: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 bundles a scalable font
    except TypeError:  # pragma: no cover - older Pillow
        return ImageFont.load_default()


def grid_image(best: Sequence[Extreme], worst: Sequence[Extreme], summary: dict[str, Any]) -> PILImage.Image:
    """Rows of (blurred | output | sharp) thumbnails: the best images, then the worst."""
    font, small = _font(16), _font(13)
    pad, label_h, head_h = 8, 22, 30
    items: list[tuple[str, Extreme]] = [("best", e) for e in best] + [("worst", e) for e in worst]
    panels = [[e.blurred, e.output, e.sharp] for _, e in items]
    th = max(p.shape[0] for row in panels for p in row if p is not None)
    tw = max(p.shape[1] for row in panels for p in row if p is not None)
    width = pad + 3 * (tw + pad)
    height = head_h + len(items) * (label_h + th + pad) + pad
    img = PILImage.new("RGB", (width, height), _BG)
    d = ImageDraw.Draw(img)
    what = "PSNR gain" if summary.get("ranked_by") == "psnr_gain" else "PSNR"
    d.text((pad, 6), f"best and worst {len(best)} by {what}: blurred | output | sharp", fill=_FG, font=font)
    y = head_h
    for (kind, e), row in zip(items, panels):
        gain = "" if e.gain is None else f", gain {e.gain:+.2f} dB"
        d.text((pad, y + 3), f"{kind}: {e.name}  PSNR {e.psnr:.2f} dB{gain}", fill=_FG, font=small)
        y += label_h
        for i, p in enumerate(row):
            x = pad + i * (tw + pad)
            if p is None:
                d.rectangle((x, y, x + tw - 1, y + th - 1), outline=_GRID)
                d.text((x + 6, y + 6), "no blurred input", fill=_FG, font=small)
            else:
                img.paste(PILImage.fromarray(p), (x, y))
        y += th + pad
    return img


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag  # pragma: no cover


def histogram_image(values: Sequence[float], label: str, summary: dict[str, Any], bins: int = 30) -> PILImage.Image:
    """A bar histogram of ``values`` with x ticks, counts, a zero line and the mean/median."""
    font, small = _font(15), _font(12)
    w, h = 720, 420
    left, right, top, bottom = 56, 20, 40, 58
    img = PILImage.new("RGB", (w, h), _BG)
    d = ImageDraw.Draw(img)
    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-9:  # all equal (e.g. the identity run's zero gain): one centred bar
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    cmax = max(int(counts.max()), 1)
    pw, ph = w - left - right, h - top - bottom

    def xpix(x: float) -> float:
        return left + (x - lo) / (hi - lo) * pw

    def ypix(c: float) -> float:
        return top + ph - c / cmax * ph

    for c in range(0, cmax + 1, max(1, math.ceil(cmax / 5))):  # y grid and count labels
        d.line((left, ypix(c), left + pw, ypix(c)), fill=_GRID)
        d.text((left - 6, ypix(c)), str(c), fill=_FG, font=small, anchor="rm")
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        if c:
            d.rectangle((xpix(a) + 1, ypix(c), xpix(b) - 1, top + ph), fill=_BAR)
    step = _nice_step(hi - lo, 8)
    t = math.ceil(lo / step) * step
    while t <= hi + 1e-9:
        d.line((xpix(t), top + ph, xpix(t), top + ph + 4), fill=_FG)
        d.text((xpix(t), top + ph + 6), f"{t:g}", fill=_FG, font=small, anchor="mt")
        t += step
    if lo < 0 < hi:
        d.line((xpix(0), top, xpix(0), top + ph), fill=_ZERO, width=2)
    d.rectangle((left, top, left + pw, top + ph), outline=_FG)
    d.text((left + pw / 2, h - 8), label, fill=_FG, font=font, anchor="md")
    title = f"{label}: n={len(v)}, mean {v.mean():.3f}, median {float(np.median(v)):.3f}"
    d.text((left, 10), title, fill=_FG, font=font)
    return img
