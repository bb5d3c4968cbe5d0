"""`import deblurcli` and `deblur --help` must stay cheap: no torch."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

CHECK = """
import sys
{body}
heavy = sorted(m for m in ("torch", "torchvision", "cv2") if m in sys.modules)
print(",".join(heavy))
"""


def _heavy_modules(body: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", CHECK.format(body=body)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""


def test_import_deblurcli_does_not_import_torch() -> None:
    assert _heavy_modules("import deblurcli; deblurcli.__version__") == ""


def test_help_of_every_command_does_not_import_torch() -> None:
    body = """
from deblurcli.cli import app
import typer.main
cmd = typer.main.get_command(app)
names = [[]] + [[name] for name in cmd.commands]
for args in names:
    try:
        cmd.main(args + ["--help"], prog_name="deblur", standalone_mode=False)
    except SystemExit:
        pass
"""
    assert "torch" not in _heavy_modules(body)


def test_python_m_deblurcli_version() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-m", "deblurcli", "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("deblur ")


def test_version_names_the_bundled_model_without_importing_torch() -> None:
    # A user should know what they run: name, file size, what it was trained for, where the card is;
    # all read from the registry and the file system, never by loading the weights.
    body = """
from deblurcli.cli import app
import typer.main
try:
    typer.main.get_command(app).main(["--version"], prog_name="deblur", standalone_mode=False)
except SystemExit:
    pass
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", CHECK.format(body=body)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    # The check's last line lists the heavy modules imported (empty when none).
    *shown, heavy = r.stdout.split("\n")[:-1]
    assert "torch" not in heavy
    from deblurcli.registry import DEFAULT_MODEL, REGISTRY

    entry = REGISTRY[DEFAULT_MODEL]
    size_mb = (ROOT / "weights" / entry.weights_filename).stat().st_size / 1e6
    text = "\n".join(shown)
    assert shown[0].startswith("deblur ") and f"default model: {DEFAULT_MODEL} " in text
    assert f"{size_mb:.1f} MB file, bundled" in text
    assert entry.trained_for and f"trained for: {entry.trained_for}" in text
    assert "model card: " in text and text.rstrip().endswith("README.md")
