"""The training curves: metrics.jsonl rows, drawn to a PNG with Pillow.

Imports nothing of :mod:`deblurcli.train`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl file (unparseable lines skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


_KIND_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def _series(rows: list[dict[str, Any]], prefix: str) -> list[tuple[str, list[dict[str, Any]], tuple[int, int, int]]]:
    """One series per metric named ``prefix<kind>`` in ``rows``, each in its own colour."""
    keys = sorted({k for r in rows for k in r if k.startswith(prefix)})
    return [(k, rows, _KIND_COLORS[i % len(_KIND_COLORS)]) for i, k in enumerate(keys)]


def plot_metrics(metrics: str | Path, png: str | Path, *, width: int = 900, panel_height: int = 180) -> Path:
    """Draw the training curves of a metrics.jsonl file to a PNG with Pillow.

    Panels: generator losses (content x weight is in g_loss), critic (Wasserstein estimate, penalty)
    validation PSNR against the blurred inputs' PSNR, and per kind of validation item (gamma of
    the synthetic blur, or file pairs) the PSNR gain and the mean level shift. Written atomically.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rows = read_metrics(metrics)
    train_rows = [r for r in rows if r.get("kind") == "train"]
    val_rows = [r for r in rows if r.get("kind") == "val"]
    panels = [
        ("content loss", [("g_content", train_rows, (44, 160, 44))]),
        ("adversarial: critic's Wasserstein estimate, generator's -D(G(x))", [("wasserstein", train_rows, (214, 39, 40)), ("g_adv", train_rows, (31, 119, 180))]),
        ("gradient penalty", [("gp", train_rows, (148, 103, 189))]),
        ("validation PSNR (dB)", [("val_psnr", val_rows, (31, 119, 180)), ("val_psnr_blurred", val_rows, (127, 127, 127))]),
        ("validation PSNR gain over the blurred inputs, by kind (dB)", _series(val_rows, "val_gain_")),
        ("validation mean level shift against the targets, by kind (8-bit levels)", _series(val_rows, "val_shift_")),
    ]
    panels = [(t, [s for s in series if any(k in r for r in s[1] for k in [s[0]])]) for t, series in panels]
    panels = [p for p in panels if p[1]]
    img = PILImage.new("RGB", (width, max(1, len(panels)) * panel_height), "white")
    draw = ImageDraw.Draw(img)
    steps_all = [r["step"] for r in rows if "step" in r] or [0, 1]
    x0, x1 = min(steps_all), max(steps_all)
    if x1 == x0:
        x1 = x0 + 1
    ml, mr, mt, mb = 70, 20, 28, 28
    for i, (title, series) in enumerate(panels):
        top = i * panel_height
        values = [float(r[k]) for k, rs, _ in series for r in rs if k in r and r[k] is not None and math.isfinite(float(r[k]))]
        if not values:
            continue
        lo, hi = min(values), max(values)
        if hi == lo:
            hi, lo = hi + 1, lo - 1
        pl, pr, pt, pb = ml, width - mr, top + mt, top + panel_height - mb

        def xy(s: float, v: float) -> tuple[float, float]:
            return pl + (s - x0) / (x1 - x0) * (pr - pl), pb - (v - lo) / (hi - lo) * (pb - pt)

        draw.rectangle([pl, pt, pr, pb], outline=(160, 160, 160))
        draw.text((pl, top + 8), title, fill="black")
        draw.text((4, pt - 4), f"{hi:.4g}", fill="black")
        draw.text((4, pb - 8), f"{lo:.4g}", fill="black")
        draw.text((pl, pb + 6), f"step {x0}", fill="black")
        draw.text((pr - 70, pb + 6), f"step {x1}", fill="black")
        lx = pl + 8 + 6 * len(title)
        for key, rs, color in series:
            pts = [xy(r["step"], float(r[key])) for r in rs if key in r and r[key] is not None and math.isfinite(float(r[key]))]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for p in pts if len(pts) <= 50 else []:
                draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=color)
            draw.line([lx, top + 14, lx + 20, top + 14], fill=color, width=3)
            draw.text((lx + 24, top + 8), key, fill="black")
            lx += 40 + 7 * len(key)
    png = Path(png)
    tmp = png.with_name(f".{png.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, png)
    return png
