"""`deblur fix` and `deblur models`, driven through the real CLI on real and generated files.

The models are tiny random generators saved to .safetensors in a temp dir: they are not trained, so
the pixels they produce mean nothing, but every file path, format, metadata and exit-code rule of the
command is exercised for real.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from typer.testing import CliRunner

from conftest import textured_rgb
from deblurcli.blur import score_image
from deblurcli.cli import app
from deblurcli.images import Image, read_image, write_image
from deblurcli.registry import REGISTRY

SRC = Path(__file__).resolve().parents[1] / "src"




def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_fix_real_blur(shared_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    src = shared_data / "real-blur"
    before = _digest(src)
    code, stdout, stderr = _run("fix", src, "-o", tmp_path / "out", "--model", tiny_model, "--json")
    assert code == 0, stderr
    rows = _json_lines(stdout)
    assert len(rows) == 9 and all(r["status"] == "done" for r in rows)
    assert all(r["before"] > 0 and r["after"] > 0 for r in rows)
    for r in rows:
        inp, outp = Path(r["path"]), Path(r["output"])
        assert outp.parent == tmp_path / "out" and outp.name == inp.name
        a, b = read_image(inp), read_image(outp)
        # The scores are those of the files (`deblur score` of each says the same), not of the
        # result before it was encoded (a JPEG output's pixels differ from the model's).
        assert (r["before"], r["after"]) == (round(score_image(a), 4), round(score_image(b), 4))
        assert (a.format, a.pixels.shape, a.pixels.dtype) == (b.format, b.pixels.shape, b.pixels.dtype)
        assert (a.alpha is None) == (b.alpha is None)
        if a.alpha is not None:
            assert np.array_equal(a.alpha, b.alpha)
        assert a.icc_profile == b.icc_profile
        # Same orientation as displayed: upright pixels of the same shape, orientation tag 1 or absent.
        assert PILImage.open(outp).getexif().get(0x0112, 1) == 1
    assert _digest(src) == before  # inputs untouched
    assert "blur score" in stderr and "9 fixed" in stderr


def _exif_jpeg(path: Path) -> None:
    pil = PILImage.fromarray(textured_rgb(40, 64, seed=3))
    exif = PILImage.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0112] = 6  # rotate 90 CW to display
    pil.save(path, exif=exif.tobytes(), quality=95)


def test_fix_tree_formats_resume_failures(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    px16 = rng.integers(0, 65535, size=(33, 47, 3), dtype=np.uint16)
    a16 = rng.integers(0, 65535, size=(33, 47), dtype=np.uint16)
    write_image(src / "sub" / "deep.png", Image(pixels=px16, alpha=a16))
    _exif_jpeg(src / "cam.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"

    code, stdout, stderr = _run("fix", src, "-r", "-o", out, "--model", tiny_model, "--suffix", "_s", "--json")
    assert code == 1  # one file failed, the others were processed
    rows = {Path(r["path"]).name: r for r in _json_lines(stdout)}
    assert rows["broken.png"]["status"] == "failed" and "broken.png" in stderr
    deep = read_image(out / "sub" / "deep_s.png")  # tree mirrored, suffix added
    assert deep.bit_depth == 16 and deep.pixels.shape == (33, 47, 3) and np.array_equal(deep.alpha, a16)
    cam_in, cam_out = read_image(src / "cam.jpg"), read_image(out / "cam_s.jpg")
    assert cam_out.pixels.shape == cam_in.pixels.shape == (64, 40, 3)  # orientation applied, upright
    exif = PILImage.open(out / "cam_s.jpg").getexif()
    assert exif.get(0x010F) == "TestCam" and exif.get(0x0112) == 1
    assert not (out / "broken_s.png").exists()

    # Resume: existing outputs are skipped, not redone; --force redoes them.
    mtime = (out / "cam_s.jpg").stat().st_mtime_ns
    code, stdout, _ = _run("fix", src, "-r", "-o", out, "--model", tiny_model, "--suffix", "_s", "--json")
    statuses = sorted(r["status"] for r in _json_lines(stdout))
    assert code == 1 and statuses == ["failed", "skipped", "skipped"]
    assert (out / "cam_s.jpg").stat().st_mtime_ns == mtime
    code, stdout, _ = _run("fix", src / "cam.jpg", "-o", out, "--model", tiny_model, "--suffix", "_s", "--force", "--json")
    assert code == 0 and _json_lines(stdout)[0]["status"] == "done"

    # --format and --compare.
    code, _, _ = _run("fix", src / "cam.jpg", "-o", out, "--model", tiny_model, "--format", "png", "--compare")
    assert code == 0
    assert read_image(out / "cam.png").format == "PNG"
    assert read_image(out / "cam_compare.png").pixels.shape == (64, 80, 3)


def test_fix_sub_folder_that_cannot_be_made_fails_that_file_only(tiny_model: Path, tmp_path: Path) -> None:
    """A file in OUT where the input tree has a sub-folder: that input fails with one line, the
    others are written (it was a FileExistsError traceback, exit 1, after the others)."""
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    write_image(src / "top.png", Image(pixels=textured_rgb(24, 32, seed=1)))
    write_image(src / "sub" / "deep.png", Image(pixels=textured_rgb(24, 32, seed=2)))
    out.mkdir()
    (out / "sub").write_bytes(b"a file, not a folder")
    code, stdout, stderr = _run("fix", src, "-r", "-o", out, "--model", tiny_model, "--json")
    assert code == 1
    rows = {Path(r["path"]).name: r for r in _json_lines(stdout)}
    assert rows["top.png"]["status"] == "done" and (out / "top.png").is_file()
    assert rows["deep.png"]["status"] == "failed" and "cannot create folder" in rows["deep.png"]["error"]
    assert "error:" in stderr and "Traceback" not in stderr
    assert (out / "sub").read_bytes() == b"a file, not a folder"


def test_fix_never_writes_over_inputs_unless_asked(tiny_model: Path, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    PILImage.fromarray(textured_rgb(24, 24)).save(photo)
    original = photo.read_bytes()
    code, _, stderr = _run("fix", photo, "-o", tmp_path, "--model", tiny_model)
    assert code == 1 and "would replace an input" in stderr and photo.read_bytes() == original
    code, _, _ = _run("fix", photo, "-o", tmp_path, "--model", tiny_model, "--overwrite")
    assert code == 0 and photo.read_bytes() != original


def test_fix_linear_matches_the_library(tiny_model: Path, tmp_path: Path) -> None:
    import torch

    from deblurcli.inference import Deblurrer

    photo = tmp_path / "p.png"
    PILImage.fromarray(textured_rgb(40, 48)).save(photo)
    for flag, folder in (("--linear", "lin"), (None, "plain")):
        code, stdout, stderr = _run(
            "fix", photo, "-o", tmp_path / folder, "--model", tiny_model, "--device", "cpu", "--json", *([flag] if flag else [])
        )
        assert code == 0, stderr
        assert _json_lines(stdout)[0]["linear"] is (flag is not None)  # the row says how it was made
    x = torch.from_numpy(np.asarray(PILImage.open(photo)).transpose(2, 0, 1)[None] / 255.0).float()
    y = Deblurrer(tiny_model, device="cpu", linear=True).deblur(x)[0].numpy().transpose(1, 2, 0)
    lin = np.asarray(PILImage.open(tmp_path / "lin" / "p.png")).astype(int)
    assert np.abs(lin - np.rint(y * 255)).max() <= 1
    assert np.abs(lin - np.asarray(PILImage.open(tmp_path / "plain" / "p.png")).astype(int)).max() > 2


def test_fix_model_errors(tiny_model: Path, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    PILImage.fromarray(textured_rgb(24, 24)).save(photo)
    # No weights exist for the registered models other than the default: say so, and how to pass a file.
    code, _, stderr = _run("fix", photo, "-o", tmp_path / "o", "--model", "deblurgan")
    assert code == 2 and "no trained weights" in stderr and "--model path/to/model.safetensors" in stderr
    code, _, stderr = _run("fix", photo, "-o", tmp_path / "o", "--model", "nope")
    assert code == 2 and "unknown model 'nope'" in stderr and "deblurgan" in stderr
    code, _, stderr = _run("fix", photo, "-o", tmp_path / "o", "--model", tmp_path / "missing.safetensors")
    assert code == 2 and "does not exist" in stderr  # a usage error, like an unknown name (issue 16 #21)
    code, _, stderr = _run("fix", photo, "-o", tmp_path / "o", "--model", tiny_model, "--precision", "fp16", "--device", "cpu")
    assert code == 2 and "needs a CUDA device" in stderr
    assert not list((tmp_path / "o").glob("*.png"))
    code, _, stderr = _run("fix", photo, "-o", photo, "--model", tiny_model)
    assert code == 2 and "not a folder" in stderr


def test_models_lists_the_registry() -> None:
    code, stdout, _ = _run("models", "--json")
    rows = _json_lines(stdout)
    assert code == 0 and [r["name"] for r in rows] == list(REGISTRY)
    default = [r for r in rows if r["default"]]
    assert len(default) == 1 and default[0]["name"] == "nafnet-s"
    assert default[0]["source"] == "bundled" and default[0]["cached"] is True
    builtin = [r for r in rows if r["source"] == "built in (no weights)"]
    assert [r["name"] for r in builtin] == ["blind"] and builtin[0]["cached"] is True and builtin[0]["parameters"] == 0
    assert all(r["source"] == "not published" and r["cached"] is False for r in rows if not r["default"] and r not in builtin)
    code, stdout, _ = _run("models")
    assert code == 0 and "nafnet-s" in stdout and "11.4 M" in stdout
    # What the bundled default was trained for, in the table's footer and in its JSON row.
    assert default[0]["trained_for"] == REGISTRY["nafnet-s"].trained_for != ""
    assert "default model: nafnet-s" in stdout and "trained for:" in stdout and "model card:" in stdout


def test_models_and_help_do_not_import_torch() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from deblurcli.cli import app; "
        "r = CliRunner().invoke(app, ['models']); assert r.exit_code == 0, r.output; "
        "r = CliRunner().invoke(app, ['fix', '--help']); assert r.exit_code == 0; "
        "print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_blind_model_says_when_it_keeps_a_photo(tmp_path: Path) -> None:
    # 40 x 48 px cannot hold a streak of the 31 px searched at full size: kept, and said so.
    photo = tmp_path / "small.png"
    PILImage.fromarray(textured_rgb(40, 48)).save(photo)
    code, stdout, _ = _run("fix", str(photo), "-o", str(tmp_path / "out"), "--model", "blind", "--json")
    rows = _json_lines(stdout)
    assert code == 0 and rows[0]["status"] == "done" and rows[0]["kept"] is True and rows[0]["model"] == "blind"
    assert np.array_equal(read_image(tmp_path / "out" / "small.png").pixels, read_image(photo).pixels)
    code, stdout, stderr = _run("fix", str(photo), "-o", str(tmp_path / "out2"), "--model", "blind")
    assert code == 0 and "kept as it was" in stdout + stderr
