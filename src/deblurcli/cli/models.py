"""``deblur models``: the named models, and what the bundled default was trained for."""

from __future__ import annotations

from deblurcli.cli.app import _default_model_lines, app
from deblurcli.cli.options import JsonOpt


@app.command()
def models(json_out: JsonOpt = False) -> None:
    """List the named models, and what the bundled default model was trained for.

    A table of architecture, parameters, size (fp32), weights source, cached or not; then the
    default model's file size, what it was trained for, and where its model card is.

    A name goes to `deblur fix --model NAME`. The default (nafnet-s) is bundled; models without
    published weights cannot be used by name yet: pass a .safetensors file (e.g. from `deblur train`).
    """
    from rich.table import Table

    from deblurcli.console import emit_json, out
    from deblurcli.registry import DEFAULT_MODEL, list_models
    from deblurcli.weights import is_cached

    rows = []
    for e in list_models():
        if e.weightless:
            local, source = "builtin", "built in (no weights)"
        else:
            local = is_cached(e)
            source = e.hub.spec if e.hub else ("bundled" if local == "bundled" else "not published")
        rows.append({
            "name": e.name,
            "default": e.name == DEFAULT_MODEL,
            "architecture": e.architecture,
            "parameters": e.num_params,
            "size_bytes": e.num_params * 4,
            "source": source,
            "cached": local is not None,
            "description": e.description,
            "trained_for": e.trained_for,
            "hyperparameters": e.hyperparameters,
        })
    if json_out:
        for r in rows:
            emit_json(r)
        return
    from deblurcli.console import human_size

    table = Table(title=f"Models (deblur fix --model NAME; default {DEFAULT_MODEL})", title_justify="left")
    for col in ("name", "arch", "params", "size", "source", "cached"):
        # Names are typed back on the command line: never fold one.
        table.add_column(
            col, justify="right" if col in ("params", "size") else "left", overflow="fold", no_wrap=col in ("name", "source")
        )
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["architecture"]),
            f"{int(r['parameters']) / 1e6:.1f} M",  # type: ignore[call-overload]
            human_size(float(r["size_bytes"])),  # type: ignore[arg-type]
            str(r["source"]),
            "yes" if r["cached"] else "no",
        )
    out.print(table)
    for line in _default_model_lines():
        out.print(line, highlight=False, markup=False)

