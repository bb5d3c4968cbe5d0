"""Training: schedule, resume continuity, SIGKILL + resume, the CLI, and a real 2-process gloo run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import ROOT, textured_rgb
from deblurcli.train import TrainConfig, TrainError, TrainEvent, export_checkpoint, list_checkpoints, load_checkpoint, lr_factor, plot_metrics, read_metrics, train

# Tiny networks and crops: a step (5 critic updates + 1 generator update) takes a few ms.
TINY = ["--crop", "32", "--hparam", "ngf=4", "--hparam", "n_blocks=1", "--critic-hparam", "ndf=4", "--content", "l1fft",
        "--workers", "0", "--device", "cpu", "--val-count", "2", "--val-crop", "32", "--log-every", "1"]


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A make-pairs folder of 10 small pairs (blurred = Gaussian-blurred texture)."""
    root = tmp_path_factory.mktemp("pairs")
    for sub in ("blurred", "targets"):
        (root / sub).mkdir()
    for i in range(10):
        s = textured_rgb(40, 48, seed=i)
        b = cv2.GaussianBlur(s, (7, 7), 2.5)
        cv2.imwrite(str(root / "targets" / f"p{i}.png"), s[..., ::-1])
        cv2.imwrite(str(root / "blurred" / f"p{i}.png"), b[..., ::-1])
    return root


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=[str(data)], out=str(out), steps=40, crop=32, content="l1fft", workers=0, device="cpu",
        hparams={"ngf": 4, "n_blocks": 1}, critic_hparams={"ndf": 4}, save_every=5, val_every=20,
        log_every=1, val_count=2, val_crop=32,
    )
    base.update(kw)
    return TrainConfig(**base)


def _train_rows(out: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"}


LOSSES = ("g_loss", "g_content", "g_adv", "d_loss", "wasserstein", "gp")


def test_lr_schedule_constant_then_linear() -> None:
    f = [lr_factor(s, 10, 0.5) for s in range(10)]
    assert f[:5] == [1.0] * 5 and f[5:] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert lr_factor(0, 4, 1.0) == 1.0 and lr_factor(3, 4, 0.0) == pytest.approx(0.25)


class _Crash(Exception):
    pass


@pytest.fixture(scope="module")
def straight(pairs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 40-step run: the reference that interrupted + resumed runs must equal."""
    out = tmp_path_factory.mktemp("straight")
    result = train(_cfg(pairs_dir, out))
    assert result["steps"] == 40 and Path(result["model"]).is_file()
    return out


def test_resume_after_a_crash_continues_exactly(pairs_dir: Path, straight: Path, tmp_path: Path) -> None:
    crashed = tmp_path / "crashed"

    def crash_at_25(e: TrainEvent) -> None:
        if e.kind == "step" and e.step == 23:
            raise _Crash  # dies mid-run, after the step-25 checkpoint (saved before the report)

    with pytest.raises(_Crash):
        train(_cfg(pairs_dir, crashed), crash_at_25)
    assert list_checkpoints(crashed)[-1].name == "step_0000020.pt"  # 23 is not a multiple of 5
    events: list[TrainEvent] = []
    train(_cfg(pairs_dir, crashed, resume=True), events.append)
    assert events[0].kind == "start" and events[0].info["resumed_from"] == 20
    a, b = _train_rows(straight), _train_rows(crashed)
    assert sorted(b) == list(range(1, 41))  # rows 21-23 of the crashed attempt were dropped
    for step in range(1, 41):  # bit-identical losses and learning rates: same data, RNG, optimiser state
        for k in (*LOSSES, "lr"):
            assert a[step][k] == b[step][k], (step, k)
    ga = load_checkpoint(list_checkpoints(straight)[-1])["generator"]
    gb = load_checkpoint(list_checkpoints(crashed)[-1])["generator"]
    assert all(torch.equal(ga[k], gb[k]) for k in ga)


def test_export_checkpoint_gives_the_model_the_run_ends_with(straight: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from deblurcli.weights import read_metadata

    path = export_checkpoint(list_checkpoints(straight)[-1], tmp_path / "exported.safetensors")
    final, exported = load_file(str(straight / "model.safetensors")), load_file(str(path))
    assert final.keys() == exported.keys() and all(torch.equal(final[k], exported[k]) for k in final)
    meta = read_metadata(path)
    assert meta["trained_steps"] == "40" and meta["architecture"] == "deblurgan"
    assert json.loads(meta["recipe"]) == json.loads(read_metadata(straight / "model.safetensors")["recipe"])
    with pytest.raises(TrainError, match="cannot read checkpoint|not a deblurcli training checkpoint"):
        export_checkpoint(path, tmp_path / "x.safetensors")  # a model file is not a checkpoint


def test_resume_20_then_40_keeps_counting_and_schedule(pairs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(pairs_dir, out, steps=20, save_every=0, decay_start=0.5))
    ck = load_checkpoint(list_checkpoints(out)[-1])  # weights_only=True
    assert ck["step"] == 20 and ck["config"]["steps"] == 20 and ck["opt_d"] is not None and len(ck["rng"]) == 1
    train(_cfg(pairs_dir, out, steps=40, save_every=0, resume=True))
    rows = _train_rows(out)
    assert sorted(rows) == list(range(1, 41))
    # Steps 21-40 follow the 40-step schedule (constant to 20, then linear), steps 1-20 the 20-step one.
    for s in range(21, 41):
        assert rows[s]["lr"] == pytest.approx(1e-4 * lr_factor(s - 1, 40, 0.5))
    assert rows[20]["lr"] == pytest.approx(1e-4 * lr_factor(19, 20, 0.5))
    assert load_checkpoint(list_checkpoints(out)[-1])["step"] == 40
    vals = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "val"]
    assert [v["step"] for v in vals] == [20, 40]
    assert vals[0]["val_psnr_blurred"] == vals[1]["val_psnr_blurred"] > 10  # the same held-out images


def test_no_gan_and_no_laplacian(pairs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "nogan"
    train(_cfg(pairs_dir, out, steps=3, gan=False, laplacian=False, save_every=0))
    rows = _train_rows(out)
    assert "d_loss" not in rows[3] and rows[3]["g_adv"] == 0.0
    ck = load_checkpoint(list_checkpoints(out)[-1])
    assert ck["critic"] is None and ck["generator"]["net.1.weight"].shape[1] == 3  # RGB only


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    env["OMP_NUM_THREADS"] = "1"  # the in-process reference runs with 1 thread too (conftest)
    return env


def test_blur_rendered_in_the_training_process(tmp_path: Path) -> None:
    """``blur_on="device"``: the loader workers only draw the photo crops' blur, the training
    process renders it (on a GPU in practice; the same code on the CPU here) and trains on it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        cv2.imwrite(str(photos / f"p{i}.png"), textured_rgb(64, 64, seed=i)[..., ::-1])
    events: list[TrainEvent] = []
    out = tmp_path / "run"
    train(_cfg(photos, out, steps=3, gan=False, blur_on="device", workers=1, save_every=0, max_blur=12), events.append)
    assert events[0].info["blur_on"] == "device"
    rows = _train_rows(out)
    assert sorted(rows) == [1, 2, 3] and all(r["g_content"] > 0 for r in rows.values())
    events.clear()
    train(_cfg(photos, tmp_path / "run2", steps=1, gan=False, save_every=0, max_blur=12), events.append)
    assert events[0].info["blur_on"] == "loader"  # auto on a CPU


def test_cli_sigkill_then_resume(pairs_dir: Path, straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deblurcli", "train", "--data", str(pairs_dir), "--out", str(out),
           "--steps", "40", "--save-every", "5", "--val-every", "20", *TINY]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "step_0000015.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]
    last = list_checkpoints(out)[-1]
    killed_at = load_checkpoint(last)["step"]
    assert 15 <= killed_at < 40

    # Resume without repeating the recipe: --content l1fft and the tiny sizes come from the checkpoint
    # (the default --content perceptual would otherwise ask for VGG19 weights).
    resume_cmd = [a for a in cmd if a not in ("--content", "l1fft")] + ["--resume", "--json"]
    res = subprocess.run(resume_cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines[0]["kind"] == "start" and lines[0]["resumed_from"] == killed_at
    assert lines[-1]["kind"] == "done" and lines[-1]["steps"] == 40
    # The killed-and-resumed run equals an uninterrupted one, step for step.
    a, b = _train_rows(straight), _train_rows(out)
    assert sorted(b) == list(range(1, 41))
    for step in range(1, 41):
        assert [a[step][k] for k in LOSSES] == [b[step][k] for k in LOSSES], step
    # Export: loadable by deblur fix's loader, with the recipe in its metadata; plot written.
    from deblurcli.weights import load_model

    model, info = load_model(out / "model.safetensors")
    assert info.architecture == "deblurgan" and info.hyperparameters["ngf"] == 4
    assert json.loads(info.metadata["recipe"])["label_noise"] == 0.1 and info.metadata["trained_steps"] == "40"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_process_gloo_keeps_ranks_identical(pairs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "deblurcli", "train", "--data", str(pairs_dir), "--out", str(out),
           "--steps", "6", "--save-every", "3", "--val-every", "0", "--procs", "2", *TINY]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    checks = [r for r in rows if r["kind"] == "checkpoint"]
    assert [c["step"] for c in checks] == [3, 6]
    assert all(c["rank_param_max_diff"] == 0.0 for c in checks)  # bit-identical across ranks
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert len(train_rows) == 6 and all(r["gp"] > 0 for r in train_rows)  # the penalty was on
    ck = load_checkpoint(list_checkpoints(out)[-1])
    assert ck["world_size"] == 2 and len(ck["rng"]) == 2
    assert not torch.equal(ck["rng"][0]["torch"], ck["rng"][1]["torch"])  # ranks drew their own noise


def _ddp_grad_worker(rank: int, port: int, result_path: str) -> None:
    """Critic gradient under DDP (2 ranks x 2 samples) vs the same loss on the full 4-sample batch."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from deblurcli.losses import critic_loss
    from deblurcli.models import create_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    critic = create_model("patchgan", ndf=4)
    reference = create_model("patchgan", ndf=4)
    reference.load_state_dict(critic.state_dict())
    g = torch.Generator().manual_seed(123)  # the same stream on both ranks: each takes its half
    real, fake = torch.rand(4, 3, 32, 32, generator=g), torch.rand(4, 3, 32, 32, generator=g)
    alpha, signs = torch.rand(4, generator=g), torch.tensor([1.0, -1.0, 1.0, 1.0])
    half = slice(2 * rank, 2 * rank + 2)
    ddp = DDP(critic)
    critic_loss(ddp, real[half], fake[half], alpha=alpha[half], signs=signs[half]).loss.backward()
    critic_loss(reference, real, fake, alpha=alpha, signs=signs).loss.backward()
    err = max(float((a.grad - b.grad).abs().max()) for a, b in zip(critic.parameters(), reference.parameters()))
    scale = max(float(b.grad.abs().max()) for b in reference.parameters())
    if rank == 0:
        Path(result_path).write_text(json.dumps({"err": err, "scale": scale}))
    dist.destroy_process_group()


def test_ddp_critic_gradient_equals_full_batch_gradient(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = tmp_path / "grad.json"
    # fork: the children inherit the imported modules (a spawn would re-import torch twice).
    mp.start_processes(_ddp_grad_worker, args=(port, str(result)), nprocs=2, join=True, start_method="fork")
    r = json.loads(result.read_text())
    assert r["scale"] > 1e-3
    assert r["err"] <= 1e-5 * r["scale"]


runner = CliRunner()


def test_cli_refuses_before_starting(pairs_dir: Path, tmp_path: Path) -> None:
    from deblurcli.cli import app

    out = tmp_path / "x"
    base = ["train", "--data", str(pairs_dir), "--out", str(out), "--steps", "2", *TINY]
    r = runner.invoke(app, [*[a for a in base if a not in ("--device", "cpu")], "--gpus", "2"])
    assert r.exit_code == 2 and "--gpus 2: this machine has 0 CUDA devices" in r.output
    assert not out.exists()  # nothing started, nothing written
    r = runner.invoke(app, [*base, "--resume"])
    assert r.exit_code == 2 and "no checkpoint" in r.output
    no_vgg = [a for a in base if a not in ("--content", "l1fft")] + ["--vgg-weights", str(tmp_path / "none.pth")]
    r = runner.invoke(app, no_vgg)
    assert r.exit_code == 2 and "--content l1fft" in r.output
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "nowhere"), "--out", str(out), "--steps", "2", *TINY])
    assert r.exit_code == 2 and "no such folder" in r.output
    r = runner.invoke(app, [*base, "--hparam", "ngf"])
    assert r.exit_code == 2
    r = runner.invoke(app, [*base, "--blur-on", "gpu"])
    assert r.exit_code == 2 and "unknown --blur-on 'gpu'" in r.output, r.output
    for bad in ("2.2-1.0", "x", "-1", "0", "1.0,x", "1.0,0", "1.0,inf", "1.0-2.2,3"):
        r = runner.invoke(app, [*base, "--gamma", bad])
        assert r.exit_code == 2 and "--gamma" in r.output, (bad, r.output)
    # NumPy refuses negative seeds: a usage error before anything is written, not a traceback
    # after the checkpoint folder was made.
    for bad in ("-1", str(2**32)):
        r = runner.invoke(app, [*base, "--seed", bad])
        assert r.exit_code == 2 and "--seed" in r.output, (bad, r.output)
    with pytest.raises(TrainError, match="--seed"):
        _cfg(pairs_dir, out, steps=2, seed=-1).validate()
    # Bad network hyperparameters are found by building the networks before anything starts
    # (they used to fail inside the run, after its folder was made, with exit 1).
    for opt, bad, says in (("--hparam", "foo=1", "foo"), ("--hparam", "n_blocks=-1", "n_blocks"),
                           ("--critic-hparam", "ndf=-2", "ndf=-2")):
        r = runner.invoke(app, [*base, opt, bad])  # TINY trains with the critic
        assert r.exit_code == 2 and says in r.output, (bad, r.output)
    assert not out.exists()
    (tmp_path / "a-file").write_bytes(b"")
    r = runner.invoke(app, [*base[:3], "--out", str(tmp_path / "a-file"), *base[5:]])
    assert r.exit_code == 2 and "exists and is not a folder" in r.output, r.output


def test_init_fine_tunes_from_given_weights(pairs_dir: Path, tmp_path: Path) -> None:
    """--init starts the generator from a model file, with this run's recipe (here γ 1.0)."""
    from safetensors.torch import load_file

    from deblurcli.cli import app
    from deblurcli.train import preflight
    from deblurcli.weights import read_metadata

    a = train(_cfg(pairs_dir, tmp_path / "a", steps=3, gan=False))
    # Learning rate 0: the weights must come out exactly as they went in.
    cfg = _cfg(pairs_dir, tmp_path / "b", steps=2, gan=False, lr=0.0, gamma=(1.0, 1.0), init=a["model"])
    preflight(cfg)
    b = train(cfg)
    sa, sb = load_file(a["model"]), load_file(b["model"])
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert read_metadata(b["model"])["initialised_from"] == str(Path(a["model"]))
    assert json.loads(read_metadata(b["model"])["recipe"])["gamma"] == [1.0, 1.0]
    # The same run without --init starts from its seed's random weights instead.
    sc = load_file(train(_cfg(pairs_dir, tmp_path / "c", steps=2, gan=False, lr=0.0))["model"])
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)

    out = tmp_path / "d"
    base = ["train", "--data", str(pairs_dir), "--out", str(out), "--steps", "2", *TINY]
    r = runner.invoke(app, [*base, "--init", a["model"], "--hparam", "ngf=8"])
    assert r.exit_code == 2 and "do not fit this generator" in r.output, r.output
    r = runner.invoke(app, [*base, "--init", a["model"], "--resume"])
    assert r.exit_code == 2 and "not both" in r.output
    r = runner.invoke(app, [*base, "--init", str(tmp_path / "none.safetensors")])
    assert r.exit_code == 2 and "none.safetensors" in r.output
    # A registered name with no published weights: the hint names --init, the option in use.
    r = runner.invoke(app, [*base, "--init", "deblurgan"], env={"HF_HUB_OFFLINE": "1"})
    assert r.exit_code == 2 and "no trained weights" in r.output, r.output
    assert "pass your own with --init" in " ".join(r.output.split()) and "--model" not in r.output, r.output
    assert not out.exists()


def test_plot_from_metrics(tmp_path: Path) -> None:
    m = tmp_path / "metrics.jsonl"
    rows = [{"kind": "train", "step": s, "g_content": 1 / s, "wasserstein": 0.1 * s, "g_adv": -s, "gp": 1.0} for s in range(1, 30)]
    rows += [{"kind": "val", "step": s, "val_psnr": 20 + s / 10, "val_psnr_blurred": 22.0} for s in (10, 20, 29)]
    m.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    png = plot_metrics(m, tmp_path / "curves.png")
    from PIL import Image

    im = np.asarray(Image.open(png).convert("RGB"))
    assert im.shape[0] == 4 * 180 and (im != 255).any(axis=2).mean() > 0.01  # four panels, something drawn
    # Per-kind validation metrics add a gain panel and a level-shift panel.
    rows += [{"kind": "val", "step": 30, "val_psnr": 23.0, "val_psnr_blurred": 22.0, "val_gain_g1.0": 0.1, "val_gain_g2.2": 0.5,
              "val_shift_g1.0": -0.2, "val_shift_g2.2": 2.0}]
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert np.asarray(Image.open(plot_metrics(m, tmp_path / "curves.png"))).shape[0] == 6 * 180


def test_clip_grad_is_logged_and_changes_the_update(pairs_dir: Path, tmp_path: Path) -> None:
    # Adam divides by its running gradient scale, so clipping every step to a tiny norm changes the
    # update only through Adam's epsilon and the moment estimates: the weights must still differ.
    runs = {}
    for clip in (0.0, 1e-9):
        out = tmp_path / f"clip{clip}"
        train(_cfg(pairs_dir, out, steps=3, save_every=0, val_every=0, gan=False, clip_grad=clip))
        rows = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"]
        assert all(r["g_grad_norm"] > 0 for r in rows)
        runs[clip] = load_checkpoint(list_checkpoints(out)[-1])["generator"]
    assert any(not torch.equal(runs[0.0][k], runs[1e-9][k]) for k in runs[0.0])
    with pytest.raises(TrainError, match="--clip-grad"):
        TrainConfig(data=["x"], out="o", steps=1, clip_grad=-1.0).validate()


def test_non_finite_metrics_are_written_as_null(tmp_path: Path) -> None:
    # A diverged loss (inf/NaN) must be recorded in the strict-JSON metrics file, not crash the run.
    from deblurcli.train.loop import _finite, _write_jsonl

    path = tmp_path / "metrics.jsonl"
    _write_jsonl(path, {"kind": "train", "step": 1, "g_loss": _finite(float("nan")), "g_grad_norm": _finite(float("inf")), "lr": _finite(1e-4)})
    (row,) = read_metrics(path)
    assert row["g_loss"] is None and row["g_grad_norm"] is None and row["lr"] == 1e-4
    plot_metrics(path, tmp_path / "curves.png")  # the plot skips the nulls


def test_validation_scores_each_kind_of_blur_apart(pairs_dir: Path, tmp_path: Path) -> None:
    """A run on γ 1.0 and 2.2 validates photos at both and scores each kind (and the file pairs)
    apart. c2f is the identity at init and lr 0 keeps it so: every gain is 0 and every shift is
    the blurred input's: small for γ 1.0 (stored values averaged), clearly positive for γ 2.2
    (linear light averaged brightens), the gap the shift metric exists to show."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        cv2.imwrite(str(photos / f"p{i}.png"), textured_rgb(96, 96, seed=40 + i)[..., ::-1])
    out = tmp_path / "run"
    cfg = _cfg(photos, out, steps=1, gan=False, lr=0.0, arch="c2f", precision="fp32", max_blur=20, val_crop=64, val_count=0,
               val_fraction=0.5, gamma=(1.0, 2.2), gamma_set=(1.0, 2.2),
               hparams={"width": 4, "levels": 2, "blocks": 1, "middle_blocks": 1, "scales": 2})
    cfg.data.append(str(pairs_dir))
    train(cfg)
    (val,) = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "val"]
    kinds = ("g1.0", "g2.2", "pairs")
    assert {k for k in val if k.startswith(("val_gain_", "val_shift_"))} == {f"val_{m}_{k}" for m in ("gain", "shift") for k in kinds}
    assert all(abs(val[f"val_gain_{k}"]) < 1e-6 for k in kinds)
    assert val["val_shift_g2.2"] > 1.0 and abs(val["val_shift_g1.0"]) < val["val_shift_g2.2"] / 3, val
    assert val["val_psnr"] == pytest.approx(val["val_psnr_blurred"])
