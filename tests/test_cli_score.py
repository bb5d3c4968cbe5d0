"""`deblur score` end to end, as a user runs it (a real subprocess on real files)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from PIL import Image as PILImage

from conftest import ROOT, textured_rgb


def deblur(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "deblurcli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def _cv2_score(path: str) -> float:
    gray = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY)
    return cv2.Laplacian(gray, cv2.CV_64F).var()


def test_json_scores_equal_opencv_and_real_blur_is_blurrier(shared_data: Path) -> None:
    real, kodak = shared_data / "real-blur", shared_data / "sharp" / "kodak24"
    r = deblur("score", str(real), str(kodak), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == len(list(real.iterdir())) + len(list(kodak.iterdir()))
    for row in rows:
        assert row["score"] == pytest.approx(_cv2_score(row["path"]), abs=1e-4)
        assert row["verdict"] in ("sharp", "blurry")
    med_real = statistics.median(r["score"] for r in rows if "real-blur" in r["path"])
    med_kodak = statistics.median(r["score"] for r in rows if "kodak24" in r["path"])
    assert med_real < med_kodak


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    d = tmp_path / "mixed"
    d.mkdir()
    PILImage.fromarray(textured_rgb(40, 40, seed=1)).save(d / "good.png")
    PILImage.fromarray(textured_rgb(30, 50, seed=2)).save(d / "good2.jpg", quality=90)
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.jpg").write_text("hello, not a picture\n")
    full = (d / "good2.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(full[: len(full) // 2])
    return d


def test_bad_files_each_get_one_line_and_the_rest_are_scored(mixed_folder: Path) -> None:
    r = deblur("score", str(mixed_folder), str(mixed_folder / "missing.png"), "--json")
    assert r.returncode == 1
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    scored = {Path(x["path"]).name for x in rows if "score" in x}
    errors = {Path(x["path"]).name: x["error"] for x in rows if "error" in x}
    assert scored == {"good.png", "good2.jpg"}
    assert set(errors) == {"empty.jpg", "notes.jpg", "cut.jpg", "missing.png"}
    assert "empty" in errors["empty.jpg"] and "not an image" in errors["notes.jpg"]
    assert "truncated" in errors["cut.jpg"] and "no such file" in errors["missing.png"]
    err_lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 4
    for name in errors:
        assert sum(name in line for line in err_lines) == 1


def test_table_output_sorting_and_exit_codes(mixed_folder: Path) -> None:
    good = mixed_folder / "good.png"
    blurred = mixed_folder / "soft.png"
    PILImage.open(good).filter(__import__("PIL.ImageFilter").ImageFilter.GaussianBlur(3)).save(blurred)
    r = deblur("score", str(good), str(blurred), "--sort", "score", "--threshold", "50")
    assert r.returncode == 0, r.stderr
    assert r.stdout.index("soft.png") < r.stdout.index("good.png")  # blurriest first
    assert "blurry" in r.stdout and "sharp" in r.stdout
    assert deblur("score").returncode == 2  # no input: usage error
    assert deblur("score", str(good), "--sort", "size").returncode == 2
    assert deblur("score", str(good), "--max-side", "2").returncode == 2


def test_quoted_globs_and_recursive_folders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for i, p in enumerate([tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "sub" / "c.png"]):
        PILImage.fromarray(textured_rgb(20, 20, seed=i)).save(p)
    names = lambda r: sorted(Path(json.loads(line)["path"]).name for line in r.stdout.splitlines())  # noqa: E731
    assert names(deblur("score", "*.png", "--json", cwd=tmp_path)) == ["a.png"]
    assert names(deblur("score", "**/*.png", "--recursive", "--json", cwd=tmp_path)) == ["a.png", "c.png"]
    assert names(deblur("score", str(tmp_path), "--json")) == ["a.png", "b.jpg"]
    assert names(deblur("score", str(tmp_path), "-r", "--json")) == ["a.png", "b.jpg", "c.png"]
    r = deblur("score", "*.gif", cwd=tmp_path)
    assert r.returncode == 1 and "matched no image files" in r.stderr


def test_max_side_changes_the_score_and_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    PILImage.fromarray(textured_rgb(300, 400)).save(p)
    full = json.loads(deblur("score", str(p), "--json").stdout)
    small = json.loads(deblur("score", str(p), "--json", "--max-side", "100").stdout)
    assert small["max_side"] == 100 and small["score"] != full["score"]
    assert (full["width"], full["height"]) == (400, 300)
