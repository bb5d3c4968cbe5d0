"""Hostile input, every command (issue 16): each test covers one *class* of input across all the
commands it applies to, on real files, and checks the rule: no traceback, no hang, no memory
blow-up, a one-line error and the right exit code, nothing lost or silently overwritten.

Commands that could hang on a bad input (a FIFO, a symlink loop) run as subprocesses with a
timeout, so that a regression fails instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer.main
from PIL import Image as PILImage
from typer.testing import CliRunner

from conftest import ROOT, ctrl_c_reaches_child, textured_rgb
from deblurcli.cli import app
from deblurcli.errors import ImageError
from deblurcli.images import read_image

TINY_TRAIN = ["--crop", "32", "--hparam", "ngf=4", "--hparam", "n_blocks=1", "--critic-hparam", "ndf=4",
              "--content", "l1fft", "--workers", "0", "--device", "cpu", "--val-count", "1", "--val-crop", "32",
              "--steps", "1"]


def deblur(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`deblur ARGS` as a user runs it (a process of its own: a hang fails at ``timeout``)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "deblurcli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _one_line_errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]




@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    PILImage.fromarray(textured_rgb(40, 48)).save(path)
    return path


# ---------------------------------------------------------------- #1: paths that are not regular files


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    return path


def test_paths_that_are_not_regular_files_are_refused_unread(fifo: Path, photo: Path, tiny_model: Path, tmp_path: Path) -> None:
    """A FIFO hangs the reader for ever and /dev/zero never ends: every command refuses both before
    opening them (issue 16 #1: `score /dev/zero` read 22 GB; a FIFO named .jpg hung)."""
    video_fifo = tmp_path / "pipe.mp4"
    os.mkfifo(video_fifo)
    model_fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(model_fifo)
    out = tmp_path / "out"
    cases = [  # (exit status, command): an input fails (1); a --model that cannot be one is usage (2)
        (1, ("score", fifo)),
        (1, ("score", "/dev/zero")),
        (1, ("fix", fifo, "-o", out, "--model", tiny_model)),
        (2, ("fix", photo, "-o", out, "--model", model_fifo)),
        (1, ("make-pairs", video_fifo, "-o", out)),
        (1, ("make-pairs", "--from-stills", "/dev/zero", "-o", out)),
    ]
    for code, args in cases:
        r = deblur(*args, timeout=60)
        assert r.returncode == code, (args, r.stderr)
        errors = _one_line_errors(r.stderr)
        assert any("not a regular file" in e for e in errors), (args, r.stderr)
        assert not out.exists(), args  # nothing was written for inputs that all failed


def test_junk_is_refused_from_its_header_without_reading_the_file(tmp_path: Path) -> None:
    """A 1 GB junk '.jpg' (sparse: no disk used) is refused after its header, not read whole."""
    junk = tmp_path / "junk.jpg"
    with open(junk, "wb") as f:
        f.write(b"definitely not a JPEG header")
        f.truncate(1 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="not an image"):
            read_image(junk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6, peak


# ---------------------------------------------------------------- #7: every option that takes a number


def _float_options() -> list[tuple[str, str, list[str]]]:
    """(command, option, the command's required arguments with dummy values) for every float option."""
    group = typer.main.get_command(app)
    found = []
    for name, command in group.commands.items():
        required: list[str] = []
        for p in command.params:
            if p.required:
                required += ["x"] if p.param_type_name == "argument" else [p.opts[0], "x"]
        for p in command.params:
            if p.param_type_name == "option" and p.type_descriptor.annotation in (float, float | None):
                found.append((name, p.opts[0], required))
    return found


def test_every_float_option_refuses_inf_and_nan() -> None:
    """`score --threshold inf --json` crashed in json.dumps (#7); nan passes every range check."""
    options = _float_options()
    assert {("score", "--threshold"), ("train", "--lr"), ("make-pairs", "--max-blur")} <= {(c, o) for c, o, _ in options}
    for command, option, required in options:
        for bad in ("inf", "-inf", "nan", "1e400"):
            code, _, stderr = _run(command, *required, option, bad)
            assert code == 2, (command, option, bad, stderr)
            assert option in stderr and "Traceback" not in stderr, (command, option, bad, stderr)


# ---------------------------------------------------------------- #2-#6, #19: train checks all it writes


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        PILImage.fromarray(textured_rgb(48, 64, seed=i)).save(d / f"p{i}.png")
    return d


@pytest.mark.parametrize(
    "blocker",
    ["checkpoints is a file", "model.safetensors is a folder", "metrics.jsonl is a folder", "curves.png is a folder",
     "out is below a file"],
)
def test_train_refuses_an_out_it_cannot_fill_before_step_1(blocker: str, photos: Path, tmp_path: Path) -> None:
    """Every file train writes is checked before the first step (#3: FileExistsError traceback;
    #4: IsADirectoryError after the whole run)."""
    out = tmp_path / "run"
    out.mkdir()
    name, _, kind = blocker.partition(" is ")
    if name == "out":
        (tmp_path / "afile").write_bytes(b"x")
        out = tmp_path / "afile" / "run"
    elif kind == "a file":
        (out / name).write_bytes(b"keep me")
    else:
        (out / name).mkdir()
    before = sorted(p.name for p in out.parent.rglob("*"))
    code, _, stderr = _run("train", "--data", photos, "--out", out, *TINY_TRAIN)
    assert code == 2, stderr
    assert len(_one_line_errors(stderr)) == 1
    assert (name if name != "out" else "afile") in stderr
    assert sorted(p.name for p in out.parent.rglob("*")) == before  # nothing made, nothing lost


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_train_refuses_a_read_only_out(photos: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, stderr = _run("train", "--data", photos, "--out", ro / "run", *TINY_TRAIN)
    finally:
        ro.chmod(0o755)
    assert code == 2 and "cannot create" in stderr and "Traceback" not in stderr


def test_train_refuses_a_crop_larger_than_the_data_and_unreadable_files(photos: Path, tmp_path: Path) -> None:
    """#5: --crop 100000 made cv2 ask for 120 GB; #6: a text file named .jpg failed at step 1 in a
    loader worker. Both are found before anything is written."""
    out = tmp_path / "run"
    code, _, stderr = _run("train", "--data", photos, "--out", out, *TINY_TRAIN, "--crop", "100000")
    assert code == 2 and "--crop 100000 is larger than every training image (the largest is 64x48)" in stderr
    (photos / "notes.jpg").write_text("not a photo\n")
    code, _, stderr = _run("train", "--data", photos, "--out", out, *TINY_TRAIN, "--workers", "1")
    assert code == 2 and len(_one_line_errors(stderr)) == 1 and "notes.jpg" in stderr
    assert not out.exists()


def test_train_data_that_fails_inside_a_loader_worker_is_one_line(tmp_path: Path) -> None:
    """A pair whose header reads but whose pixels are cut off fails in a loader worker: torch
    re-raises that as a RuntimeError holding the worker's traceback; it is shown as one line."""
    pairs = tmp_path / "pairs"
    for sub in ("blurred", "targets"):
        (pairs / sub).mkdir(parents=True)
        for i in range(2):
            PILImage.fromarray(textured_rgb(48, 64, seed=i)).save(pairs / sub / f"p{i}.png")
    for sub in ("blurred", "targets"):
        data = (pairs / sub / "p0.png").read_bytes()
        (pairs / sub / "p0.png").write_bytes(data[: len(data) // 2])
    code, _, stderr = _run("train", "--data", pairs, "--out", tmp_path / "run", *TINY_TRAIN,
                           "--workers", "1", "--val-fraction", "0")
    assert code == 1, stderr
    errors = _one_line_errors(stderr)
    assert len(errors) == 1 and "p0.png" in errors[0] and "truncated" in errors[0], stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---------------------------------------------------------------- #8, #15: long file names


def test_long_file_names(tiny_model: Path, tmp_path: Path) -> None:
    """#8: a 250-byte name plus --suffix crashed the batch; #15: a legal 251-byte name failed
    because the temp file name added 14 bytes. Now: the first fails alone with one line, the
    second is written, and make-pairs shortens its pair names."""
    src = tmp_path / "in"
    src.mkdir()
    long_name = "a" * 246 + ".png"  # 250 bytes
    for name in (long_name, "ok.png"):
        PILImage.fromarray(textured_rgb(24, 32)).save(src / name)
    code, stdout, stderr = _run("fix", src, "-o", tmp_path / "o1", "--model", tiny_model, "--suffix", "_sharpened", "--json")
    assert code == 1
    rows = {Path(r["path"]).name: r for r in _json_lines(stdout)}
    assert rows["ok.png"]["status"] == "done" and rows[long_name]["status"] == "failed"
    assert "over the file system's limit of 255" in rows[long_name]["error"]
    assert "1 fixed, 0 skipped (output exists), 1 failed" in stderr and len(_one_line_errors(stderr)) == 1

    code, _, stderr = _run("fix", src / long_name, "-o", tmp_path / "o2", "--model", tiny_model)
    assert code == 0, stderr
    assert read_image(tmp_path / "o2" / long_name).pixels.shape == (24, 32, 3)
    assert [p.name for p in (tmp_path / "o2").iterdir()] == [long_name]  # no temp file left

    code, _, stderr = _run("make-pairs", "--from-stills", src / long_name, "-o", tmp_path / "pairs", "--max-blur", "4")
    assert code == 0, stderr
    assert len(list((tmp_path / "pairs" / "blurred").glob("*.png"))) == 1


# ---------------------------------------------------------------- #9-#11: every format, every orientation


def _oriented(path: Path, pixels: np.ndarray, orientation: int = 6) -> None:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    PILImage.fromarray(pixels).save(path, exif=exif.tobytes(), **({"quality": 95} if path.suffix == ".jpg" else {}))


def test_every_output_format_keeps_the_picture(tiny_model: Path, tmp_path: Path) -> None:
    """Each format read with an EXIF rotation (and float / 16-bit TIFFs) is fixed into a readable,
    upright file of the same size, and --compare puts the input beside the result. TIFF copied the
    source's width/height/sample-format tags into the output: encoder error -8 for a rotated TIFF
    (#9), a compare file that was the input alone (#10), a float tag on 16-bit samples (#11)."""
    src = tmp_path / "in"
    src.mkdir()
    rgb = textured_rgb(40, 64, seed=5)
    for ext in ("jpg", "png", "tif", "webp"):
        _oriented(src / f"rot6_{ext}.{ext}", rgb)
    PILImage.fromarray(np.linspace(0, 1, 30 * 20, dtype=np.float32).reshape(30, 20), "F").save(src / "float32.tif")
    rgb16 = (textured_rgb(30, 20, seed=6).astype(np.uint16) * 257)
    cv2.imwrite(str(src / "rgb16.tif"), rgb16[:, :, ::-1])
    out = tmp_path / "out"
    code, stdout, stderr = _run("fix", src, "-o", out, "--model", tiny_model, "--compare", "--json")
    assert code == 0, stderr
    assert len(_json_lines(stdout)) == 6
    for inp in sorted(src.iterdir()):
        a = read_image(inp)
        b = read_image(out / inp.name)
        assert (b.format, b.pixels.shape, b.pixels.dtype) == (a.format, a.pixels.shape, a.pixels.dtype), inp.name
        c = read_image(out / f"{inp.stem}_compare{inp.suffix}")
        h, w = a.pixels.shape[:2]
        assert c.pixels.shape[:2] == (h, 2 * w), inp.name
        left = c.pixels[:, :w].astype(np.int64)
        tol = 0 if a.format in ("PNG", "TIFF") else 12  # JPEG / WebP re-encode a noisy texture
        assert np.abs(left - a.pixels.astype(np.int64)).mean() <= tol, inp.name
        if inp.name.startswith("rot6_") and inp.suffix != ".webp":
            tags = PILImage.open(out / inp.name).getexif()
            assert tags.get(0x010F) == "TestCam" and tags.get(0x0112, 1) == 1, inp.name
    assert read_image(out / "rot6_tif.tif").pixels.shape == (64, 40, 3)  # upright


# ---------------------------------------------------------------- #12, #13, #20: outputs of one run


def test_outputs_never_clash_within_a_run_and_are_never_inputs(tiny_model: Path, tmp_path: Path) -> None:
    """#12: c1/x.png and c2/x.png into one -o: the second was 'skipped', or with --force overwrote
    the first. #13: a rerun of `fix nest -r -o nest/out` fixed its own outputs. #20: a folder
    where an output goes counted as 'output exists'."""
    for d, seed in (("c1", 1), ("c2", 2)):
        (tmp_path / d).mkdir()
        PILImage.fromarray(textured_rgb(24, 32, seed=seed)).save(tmp_path / d / "x.png")
    out = tmp_path / "o"
    for extra in ((), ("--force",)):
        code, stdout, stderr = _run("fix", tmp_path / "c1" / "x.png", tmp_path / "c2" / "x.png", "-o", out,
                                    "--model", tiny_model, "--json", *extra)
        rows = _json_lines(stdout)
        assert code == 1 and [r["status"] for r in rows] == ["done", "failed"], stderr
        assert "is also the output of" in rows[1]["error"] and str(tmp_path / "c1" / "x.png") in rows[1]["error"]
    fixed_first = read_image(out / "x.png").pixels
    code, _, _ = _run("fix", tmp_path / "c1" / "x.png", "-o", tmp_path / "ref", "--model", tiny_model)
    assert np.array_equal(read_image(tmp_path / "ref" / "x.png").pixels, fixed_first)  # c1's result, not c2's

    nest = tmp_path / "nest"
    (nest / "sub").mkdir(parents=True)
    PILImage.fromarray(textured_rgb(24, 32, seed=3)).save(nest / "a.png")
    PILImage.fromarray(textured_rgb(24, 32, seed=4)).save(nest / "sub" / "b.png")
    for _ in range(2):
        code, stdout, _ = _run("fix", nest, "-r", "-o", nest / "out", "--model", tiny_model, "--json")
        assert code == 0 and sorted(Path(r["path"]).name for r in _json_lines(stdout)) == ["a.png", "b.png"]
    assert sorted(str(p.relative_to(nest / "out")) for p in (nest / "out").rglob("*.png")) == ["a.png", "sub/b.png"]
    stills = tmp_path / "stills"
    (stills / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        (stills / name).write_bytes((nest / name).read_bytes())
    for _ in range(2):
        code, stdout, stderr = _run("make-pairs", "--from-stills", stills, "-r", "-o", stills / "pairs", "--max-blur", "4", "--json")
        assert code == 0, stderr
        sources = [r["source"] for r in _json_lines(stdout) if "summary" not in r]
        assert sorted(Path(x).name for x in sources) == ["a.png", "b.png"], sources  # not its own pairs
    assert len(list((stills / "pairs" / "blurred").glob("*.png"))) == 2

    (tmp_path / "o3" / "x.png").mkdir(parents=True)
    code, stdout, _ = _run("fix", tmp_path / "c1" / "x.png", "-o", tmp_path / "o3", "--model", tiny_model, "--json")
    assert code == 1 and "exists and is not a file" in _json_lines(stdout)[0]["error"]


# ---------------------------------------------------------------- #14: symlink loops


def test_recursive_globs_end_on_symlink_loops(photo: Path, tmp_path: Path) -> None:
    """`score 'loop/**/*.png' --recursive` with self -> . and sub/up -> .. ran for ever (#14)."""
    loop = tmp_path / "loop"
    (loop / "sub").mkdir(parents=True)
    (loop / "a.png").write_bytes(photo.read_bytes())
    (loop / "sub" / "b.png").write_bytes(photo.read_bytes())
    (loop / "self").symlink_to(".")
    (loop / "sub" / "up").symlink_to("..")
    for args in (("score", f"{loop}/**/*.png", "--recursive", "--json"), ("score", loop, "--recursive", "--json")):
        r = deblur(*args, timeout=60)
        assert r.returncode == 0, r.stderr
        assert sorted(Path(row["path"]).name for row in _json_lines(r.stdout)) == ["a.png", "b.png"]


# ---------------------------------------------------------------- #16: the Hub out of reach


def test_unreachable_hub_says_so_at_once(photo: Path, tmp_path: Path) -> None:
    """hf:// with the Hub out of reach: ~23 s of retry lines, then "not found (404)" (#16)."""
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf")}
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        env[proxy] = ""
    r = deblur("fix", photo, "-o", tmp_path / "out", "--model", "hf://someone/model/m.safetensors@main", env=env)
    assert r.returncode == 1
    assert _one_line_errors(r.stderr) and "cannot reach the Hub" in r.stderr and "404" not in r.stderr
    assert "Retry" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- #17: --json says what README says


def test_train_json_prints_train_rows(photos: Path, tmp_path: Path) -> None:
    """README: `--json` prints the events as JSON lines, `train` rows with losses, lr, it/s (#17)."""
    code, stdout, stderr = _run("train", "--data", photos, "--out", tmp_path / "run", *TINY_TRAIN[:-2],
                                "--steps", "2", "--log-every", "1", "--json")
    assert code == 0, stderr
    rows = _json_lines(stdout)
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2]
    assert all({"g_loss", "d_loss", "lr", "it_s"} <= set(r) for r in train_rows)
    assert [r["kind"] for r in rows][0] == "start" and rows[-1]["kind"] == "done"


# ---------------------------------------------------------------- #18: fix's own extra files


def test_evaluate_pred_leaves_out_fix_compare_files(tiny_model: Path, tmp_path: Path) -> None:
    """`evaluate --pred OUT --gt GT` paired fix's NAME_compare.EXT with NAME's ground truth: size
    errors and a polluted mean (#18)."""
    blurred, gt = tmp_path / "blurred", tmp_path / "gt"
    blurred.mkdir(), gt.mkdir()
    for i in range(2):
        PILImage.fromarray(textured_rgb(24, 32, seed=i)).save(gt / f"im{i}.png")
        PILImage.fromarray(cv2.GaussianBlur(textured_rgb(24, 32, seed=i), (5, 5), 1.5)).save(blurred / f"im{i}.png")
    code, _, stderr = _run("fix", blurred, "-o", tmp_path / "out", "--model", tiny_model, "--compare")
    assert code == 0 and len(list((tmp_path / "out").glob("*_compare.png"))) == 2, stderr
    code, stdout, stderr = _run("evaluate", "--pred", tmp_path / "out", "--gt", gt, "--json")
    assert code == 0, stderr
    rows = _json_lines(stdout)
    assert sorted(r["name"] for r in rows if "name" in r) == ["im0", "im1"] and rows[-1]["count"] == 2


# ---------------------------------------------------------------- #21: one exit-code rule


def test_the_same_kind_of_error_has_the_same_exit_code(photo: Path, tiny_model: Path, tmp_path: Path) -> None:
    """README's rule: 2 when the command line cannot be used as given (nothing is processed), 1 when
    some items failed. These disagreed: a bad --model file 1 but an unknown name 2; `-o afile` 2
    but `-o afile/sub` 1; `evaluate --gt emptydir` 1 with a line per prediction; DEBLUR_MAX_PIXELS=abc
    an error per file, -5 silently no limit, 100 "0 MP" (#21)."""
    afile, empty = tmp_path / "afile", tmp_path / "empty"
    afile.write_bytes(b"x")
    empty.mkdir()
    (tmp_path / "notmodel.safetensors").write_bytes(b"not a model")
    usage = [
        ("fix", photo, "-o", tmp_path / "o", "--model", "nope"),
        ("fix", photo, "-o", tmp_path / "o", "--model", tmp_path / "missing.safetensors"),
        ("fix", photo, "-o", tmp_path / "o", "--model", tmp_path / "notmodel.safetensors"),
        ("fix", photo, "-o", afile, "--model", tiny_model),
        ("fix", photo, "-o", afile / "sub", "--model", tiny_model),
        ("make-pairs", "--from-stills", photo, "-o", afile / "sub"),
        ("evaluate", "--pred", empty, "--gt", photo.parent),
        ("evaluate", "--pred", photo.parent, "--gt", empty),
        ("train", "--data", empty, "--out", tmp_path / "run", *TINY_TRAIN),
        ("train", "--data", photo.parent, "--out", afile / "sub", *TINY_TRAIN),
    ]
    for args in usage:
        code, _, stderr = _run(*args)
        assert code == 2 and len(_one_line_errors(stderr)) == 1, (args, stderr)
    assert not (tmp_path / "o").exists() and not (tmp_path / "run").exists()

    for value, says in (("abc", "got 'abc'"), ("-5", "got '-5'")):
        r = deblur("score", photo, photo, env={"DEBLUR_MAX_PIXELS": value})
        assert r.returncode == 2 and _one_line_errors(r.stderr) == [f"error: DEBLUR_MAX_PIXELS: must be a whole number of pixels (0 = no limit), {says}"]
    r = deblur("score", photo, env={"DEBLUR_MAX_PIXELS": "100"})
    assert r.returncode == 1 and "100 pixel decompression-bomb limit" in r.stderr and "0 MP" not in r.stderr


# ---------------------------------------------------------------- #22: Ctrl-C


def test_interrupted_fix_says_how_to_resume(tiny_model: Path, tmp_path: Path) -> None:
    """SIGINT exited 130 with no message (#22). Sent once the first file is done (read from the
    --json stream, so the test does not depend on timing); the rerun finishes the rest."""
    import signal

    src = tmp_path / "in"
    src.mkdir()
    picture = PILImage.fromarray(textured_rgb(32, 32))
    for i in range(300):
        picture.save(src / f"f{i:03d}.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", "NO_COLOR": "1"}
    args = [sys.executable, "-m", "deblurcli", "fix", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=ctrl_c_reaches_child)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert json.loads(first)["status"] == "done", first
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert _one_line_errors(stderr)[-1].startswith("error: interrupted; run the same command again to resume"), stderr
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no half-written file
    r = deblur(*args[3:])
    rows = _json_lines(r.stdout)
    assert r.returncode == 0 and len(rows) == 300 and rows[0]["status"] == "skipped"


# ---------------------------------------------------------------- #23, #24: make-pairs on the wrong input


def _mkv(path: Path, frames: int) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(frames):
            rgb = np.roll(textured_rgb(32, 48, seed=1), 2 * i, axis=1)
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_make_pairs_warns_about_truncated_videos_and_suggests_stills(photo: Path, tmp_path: Path) -> None:
    """A truncated video gave pairs and exit 0 with no warning (#23); a photo said "only 1 frames,
    fewer than --frames 8" (#24)."""
    whole = _mkv(tmp_path / "whole.mkv", 40)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    code, stdout, stderr = _run("make-pairs", whole, cut, "-o", tmp_path / "pairs", "--frames", "4", "--samples", "2", "--json")
    assert code == 0, stderr
    rows = {Path(r["source"]).name: r for r in _json_lines(stdout) if "source" in r}
    assert "warning" not in rows["whole.mkv"]
    assert rows["cut.mkv"]["pairs_written"] > 0 and "ends early" in rows["cut.mkv"]["warning"]
    assert "warning:" in stderr and "ends early" in stderr and "Traceback" not in stderr

    code, _, stderr = _run("make-pairs", photo, "-o", tmp_path / "p2")
    assert code == 1 and "only 1 frame, fewer than --frames 8; for photos, use --from-stills" in stderr


# ---------------------------------------------------------------- #25: --help of every command


def test_every_help_shows_values_plainly_and_keeps_sentences_whole() -> None:
    """--help showed `<bool>` for flags, `<list[str]>` for lists, and cut sentences where the
    docstring's lines ended, whatever the terminal's width (#25)."""
    import inspect

    group = typer.main.get_command(app)
    root = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}, terminal_width=400)
    assert root.exit_code == 0 and "<bool>" not in root.output, root.output
    for name, command in group.commands.items():
        if command.hidden:
            continue
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}, terminal_width=400)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "<list[" not in result.output, (name, result.output)
        lines = result.output.splitlines()
        func = app.registered_commands[[c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands].index(name)].callback
        for paragraph in inspect.cleandoc(func.__doc__).split("\n\n"):
            text = " ".join(paragraph.split())
            if len(text) < 350:
                assert any(text in line for line in lines), (name, text)
