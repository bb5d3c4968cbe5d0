"""deblur evaluate: identity / predictions / model scoring, per-file failures, report files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from conftest import textured_rgb
from deblurcli.cli import app
from deblurcli.errors import InputError
from deblurcli.evaluate import PSNR_CAP, evaluate

runner = CliRunner()


def _save(path: Path, a: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(a).save(path)
    return path


def _blur(a: np.ndarray) -> np.ndarray:
    return np.rint(ndimage.uniform_filter(a.astype(np.float64), size=(1, 7, 1))).astype(np.uint8)


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    """blur/ + sharp/ with three good pairs (48x64 RGB)."""
    root = tmp_path / "ds"
    for i in range(3):
        sharp = textured_rgb(48, 64, seed=i)
        _save(root / "sharp" / f"p{i}.png", sharp)
        _save(root / "blur" / f"p{i}.png", _blur(sharp))
    return root


def _sk(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    p = peak_signal_noise_ratio(gt, pred, data_range=255)
    s = structural_similarity(
        gt, pred, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    return float(p), float(s)


def test_identity_on_levin2009_matches_scikit_image(shared_data: Path) -> None:
    root = shared_data / "levin2009"
    report = evaluate(root, identity=True, ssim_convention="skimage")
    assert report.summary["count"] == 32 and report.summary["failed"] == 0
    ps, ss = [], []
    for row in report.rows:  # independent: Pillow + scikit-image on the same files
        b = np.asarray(PILImage.open(row.blurred).convert("RGB"))
        s = np.asarray(PILImage.open(row.sharp).convert("RGB"))
        p, q = _sk(b, s)
        ps.append(p)
        ss.append(q)
        assert row.psnr == pytest.approx(p, abs=1e-4) and row.ssim == pytest.approx(q, abs=1e-4)
    assert report.summary["psnr"] == pytest.approx(np.mean(ps), abs=0.01)
    assert report.summary["ssim"] == pytest.approx(np.mean(ss), abs=0.001)
    assert report.summary["psnr_gain"] == 0.0


def test_failures_are_reported_per_file_and_left_out(flat: Path) -> None:
    _save(flat / "blur" / "orphan.png", textured_rgb(48, 64, seed=9))  # no ground truth
    _save(flat / "blur" / "small.png", textured_rgb(40, 64, seed=9))  # size mismatch
    _save(flat / "sharp" / "small.png", textured_rgb(48, 64, seed=9))
    (flat / "blur" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # unreadable
    _save(flat / "sharp" / "broken.png", textured_rgb(48, 64, seed=9))
    result = runner.invoke(app, ["evaluate", str(flat), "--identity", "--json"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    errors = {x["name"]: x["error"] for x in lines[:-1] if "error" in x}
    assert set(errors) == {"orphan", "small", "broken"}
    assert "no ground truth" in errors["orphan"]
    assert "size mismatch" in errors["small"] and "64x40" in errors["small"]
    assert "broken.png" in errors["broken"]
    summary = lines[-1]
    assert summary["count"] == 3 and summary["failed"] == 3
    good = [x for x in lines[:-1] if "error" not in x]
    assert summary["psnr"] == pytest.approx(np.mean([x["psnr"] for x in good]))


def test_predictions_matched_to_dataset_and_to_gt_folder(flat: Path, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    sharp0 = np.asarray(PILImage.open(flat / "sharp" / "p0.png"))
    _save(pred / "p0.png", sharp0)  # perfect: capped PSNR
    half = (np.asarray(PILImage.open(flat / "blur" / "p1.png")).astype(int) + _sharp(flat, 1)) // 2  # half-way
    _save(pred / "p1.png", half.astype(np.uint8))  # p2 has no prediction
    rep = evaluate(flat, pred=pred)
    rows = {r.name: r for r in rep.rows}
    assert rows["p0"].psnr == PSNR_CAP and rows["p0"].ssim == pytest.approx(1.0)
    assert rows["p1"].psnr_gain is not None and rows["p1"].psnr_gain > 0
    assert rows["p1"].psnr == pytest.approx(_sk(half.astype(np.uint8), _sharp(flat, 1))[0], abs=1e-4)
    assert "no prediction" in (rows["p2"].error or "")
    assert rep.summary["capped"] == 1 and rep.summary["failed"] == 1

    # --pred DIR --gt DIR: no blurred input, so no gain; matched by stem.
    rep = evaluate(pred=pred, gt=flat / "sharp", ssim_convention="matlab")
    assert [r.name for r in rep.scored] == ["p0", "p1"] and rep.summary["psnr_gain"] is None
    assert rep.rows[1].input_psnr is None


def _sharp(flat: Path, i: int) -> np.ndarray:
    return np.asarray(PILImage.open(flat / "sharp" / f"p{i}.png")).astype(np.uint8)


class UnsharpMask:
    """A real (if crude) deblurrer with the Deblurrer interface: x + 1.5 * (x - box3(x))."""

    name = "unsharp"

    def deblur(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.full((3, 1, 1, 7), 1 / 7)
        smooth = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (3, 3, 0, 0), mode="replicate"), k, groups=3)
        return (x + 1.5 * (x - smooth)).clamp(0, 1)


def test_model_outputs_are_scored_as_saved(flat: Path) -> None:
    rep = evaluate(flat, model=UnsharpMask(), extremes=1)
    row = rep.rows[0]
    assert row.seconds is not None and row.seconds >= 0 and rep.summary["model"] == "unsharp"
    # Reference: the same output, rounded to 8 bits as `deblur fix` would save it, via scikit-image.
    x = torch.from_numpy(np.asarray(PILImage.open(row.blurred)).transpose(2, 0, 1)[None] / 255.0).float()
    y = np.rint(UnsharpMask().deblur(x)[0].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    p, _ = _sk(y, _sharp(flat, 0))
    assert row.psnr == pytest.approx(p, abs=1e-4)
    assert len(rep.best) == 1 and len(rep.worst) == 1 and rep.summary["ranked_by"] == "psnr_gain"
    assert rep.best[0].key >= rep.worst[0].key


def test_cli_report_files_and_table(flat: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    rows = tmp_path / "rows.jsonl"
    result = runner.invoke(
        app, ["evaluate", str(flat), "--identity", "--ssim", "skimage", "--report", str(out), "--rows", str(rows)]
    )
    assert result.exit_code == 0, result.output
    assert "SSIM convention: skimage" in result.stdout and "mean" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert names == {"rows.csv", "rows.jsonl", "summary.json", "best_worst.png", "psnr_gain_hist.png"}
    assert PILImage.open(out / "best_worst.png").size[0] > 3 * 64
    assert PILImage.open(out / "psnr_gain_hist.png").format == "PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ssim_convention"] == "skimage" and "per-channel" in summary["ssim_convention_text"]
    assert (out / "rows.csv").read_text().splitlines()[0].startswith("name,sharp,blurred,output")
    assert len(rows.read_text().splitlines()) == 3


def test_cli_report_that_cannot_be_written_is_one_line(flat: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    (out / "summary.json").mkdir(parents=True)  # a folder where the file must go: the rename fails
    result = runner.invoke(app, ["evaluate", str(flat), "--identity", "--report", str(out)])
    assert result.exit_code == 1, result.output
    assert "cannot write the report" in result.output and "summary.json" in result.output
    assert "Traceback" not in result.output
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temp file left


def test_cli_published_numbers_are_marked(flat: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(flat), "--identity", "--published"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "NOT measured" in text and "CW-SSIM, not SSIM" in text and "33.71" in text
    result = runner.invoke(app, ["evaluate", str(flat), "--identity", "--json", "--published"])
    summary = json.loads(result.stdout.splitlines()[-1])
    assert {"psnr", "ssim"} <= set(summary) and all(not p["measured"] for p in summary["published_gopro"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of"),
        (["--identity", "--pred", "x"], "exactly one of"),
        (["--identity", "--gt", "x"], "--gt DIR goes with --pred"),
    ],
)
def test_cli_usage_errors_exit_2(flat: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["evaluate", str(flat), *args])
    assert result.exit_code == 2 and message in result.stderr


def test_cli_unknown_layout_is_one_line(tmp_path: Path) -> None:
    _save(tmp_path / "photos" / "a.png", textured_rgb(16, 16))
    result = runner.invoke(app, ["evaluate", str(tmp_path / "photos"), "--identity"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and "not a dataset layout" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_model_weights_file_via_deblurrer(flat: Path, tmp_path: Path) -> None:
    from deblurcli.inference import Deblurrer
    from deblurcli.models import create_model
    from deblurcli.weights import save_model

    weights = save_model(tmp_path / "tiny.safetensors", create_model("deblurgan", ngf=4, n_blocks=1))
    result = runner.invoke(app, ["evaluate", str(flat), "--model", str(weights), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    summary = lines[-1]
    assert summary["what"] == "model" and summary["model"] == str(weights) and summary["count"] == 3
    assert summary["model_seconds_per_image"] > 0 and all(x["seconds"] > 0 for x in lines[:-1])
    # Same numbers as running the Deblurrer by hand and scoring the 8-bit output with scikit-image.
    x = torch.from_numpy(np.asarray(PILImage.open(flat / "blur" / "p0.png")).transpose(2, 0, 1)[None] / 255.0).float()
    y = Deblurrer(weights, device="cpu").deblur(x)
    y8 = np.rint(y[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    assert lines[0]["psnr"] == pytest.approx(_sk(y8, _sharp(flat, 0))[0], abs=1e-3)


def test_cli_unknown_model_is_a_usage_error(flat: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(flat), "--model", "no-such-model", "--offline"])
    assert result.exit_code == 2 and result.stderr.startswith("error:")


def test_align_scores_offset_captures_at_their_best_shift(tmp_path: Path) -> None:
    """A captured 'blurred' image offset from its ground truth: without --align the offset costs
    PSNR; with it, the input and a prediction are each scored at their own shift."""
    big = textured_rgb(70, 90, seed=7)
    root = tmp_path / "ds"
    sharp = big[6:60, 6:80]
    _save(root / "sharp" / "im1.png", sharp)
    _save(root / "blur" / "im1.png", _blur(big[8:62, 5:79]))  # blurred and offset by (-2, +1)
    _save(tmp_path / "pred" / "im1.png", big[7:61, 6:80])  # sharp but offset by (-1, 0)
    plain = evaluate(root, pred=tmp_path / "pred")
    aligned = evaluate(root, pred=tmp_path / "pred", align=3)
    (row,) = aligned.rows
    assert (row.shift, row.input_shift) == ((-1, 0), (-2, 1))
    assert row.psnr == PSNR_CAP  # the prediction is the ground truth, moved
    assert row.input_psnr > plain.rows[0].input_psnr + 3
    assert plain.rows[0].psnr < 25 and aligned.summary["align"] == 3
    res = runner.invoke(app, ["evaluate", str(root), "--pred", str(tmp_path / "pred"), "--align", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0])["shift"] == [-1, 0]
    csv_path = tmp_path / "rows.csv"
    res = runner.invoke(app, ["evaluate", str(root), "--pred", str(tmp_path / "pred"), "--align", "3", "--rows", str(csv_path)])
    header, line = csv_path.read_text().splitlines()
    cells = dict(zip(header.split(","), line.split(",")))
    assert (cells["shift"], cells["input_shift"]) == ("-1 0", "-2 1")
    res = runner.invoke(app, ["evaluate", str(root), "--identity", "--align", "-1"])
    assert res.exit_code == 2


class UnsharpModule(torch.nn.Module):
    """UnsharpMask as an nn.Module, for the paths where evaluate builds the Deblurrer itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return UnsharpMask().deblur(x)


def test_linear_runs_the_model_on_encoded_values_and_scores_as_stored(flat: Path) -> None:
    # The fixture's blur is an average of the stored values: linear data, as Levin's.
    rep = evaluate(flat, model=UnsharpModule(), linear=True, device="cpu", precision="fp32")
    assert rep.summary["linear"] is True and rep.summary["count"] == 3
    x = torch.from_numpy(np.asarray(PILImage.open(flat / "blur" / "p0.png")).transpose(2, 0, 1)[None] / 255.0).float()
    y = UnsharpMask().deblur(x.pow(1 / 2.2)).clamp(0, 1).pow(2.2)
    y8 = np.rint(y[0].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    assert rep.rows[0].psnr == pytest.approx(_sk(y8, _sharp(flat, 0))[0], abs=1e-3)
    assert rep.rows[0].psnr != pytest.approx(evaluate(flat, model=UnsharpModule(), device="cpu", precision="fp32").rows[0].psnr, abs=0.01)
    with pytest.raises(InputError, match="linear=True"):
        evaluate(flat, model=UnsharpMask(), linear=True)
    result = runner.invoke(app, ["evaluate", str(flat), "--identity", "--linear"])
    assert result.exit_code == 2 and "--linear changes how a model is run" in result.stderr


def test_level_shift_is_the_mean_brightness_difference_in_8bit_levels(flat: Path, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    for i in range(3):  # 3 levels brighter than the ground truth, clipped at 255
        s = _sharp(flat, i).astype(int)
        _save(pred / f"p{i}.png", np.clip(s + 3, 0, 255).astype(np.uint8))
    rep = evaluate(flat, pred=pred)
    for i, row in enumerate(rep.rows):
        s = _sharp(flat, i).astype(float)
        want = (np.clip(s + 3, 0, 255) - s).mean()  # +3 except where clipping at 255 takes some
        assert row.level_shift == pytest.approx(want, abs=1e-4) and 2.0 < want <= 3.0
        b = np.asarray(PILImage.open(flat / "blur" / f"p{i}.png")).astype(float)
        assert row.input_level_shift == pytest.approx((b - s).mean(), abs=1e-4)
    assert rep.summary["level_shift"] == pytest.approx(np.mean([r.level_shift for r in rep.rows]))
