"""`deblur fix` on videos, driven through the real CLI on clips made here with PyAV (64x48, 10 frames)
and the tiny random model of test_cli_fix.py; outputs are decoded back and compared."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import textured_rgb
from test_cli_fix import _json_lines, _run
from test_video import assert_no_temp, audio_packets, make_audio_only, make_clip, make_timecode_clip, video_frames


def _times(path: Path) -> list[float]:
    return video_frames(path)[0]


def test_mixed_folder_photo_and_clip_with_audio_then_resume(tiny_model: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    PILImage.fromarray(textured_rgb(40, 48)).save(src / "photo.png")
    clip = make_clip(src / "sub" / "clip.mp4", n=10, audio=("aac",))

    code, stdout, stderr = _run("fix", src, "-r", "-o", out, "--model", tiny_model, "--json", "--compare")
    assert code == 0, stderr
    rows = {Path(r["path"]).name: r for r in _json_lines(stdout)}
    assert set(rows) == {"photo.png", "clip.mp4"}
    assert rows["photo.png"]["status"] == "done" and rows["photo.png"]["kind"] == "image"
    v = rows["clip.mp4"]
    dst = out / "sub" / "clip.mp4"  # the tree mirrored, the same container
    assert v["status"] == "done" and v["kind"] == "video" and v["output"] == str(dst)
    assert (v["frames"], v["frame_range"], v["width"], v["height"]) == (10, [0, 10], 64, 48)
    assert v["audio_streams"] == 1 and v["audio_codecs"] == ["aac"] and v["codec"] == "libx264"
    assert v["blur_before_median"] > 0 and v["blur_after_median"] > 0 and len(v["blur_before"]) == 10
    assert v["before"] == v["blur_before_median"]
    # Decoded back: the same frames at the same times, the audio copied.
    assert len(_times(dst)) == 10 and _times(dst) == pytest.approx(_times(clip), abs=1e-6)
    assert audio_packets(dst) == audio_packets(clip)
    assert (out / "photo.png").is_file() and (out / "photo_compare.png").is_file()
    # The video's side-by-side copy: twice as wide, same frames, times and sound.
    cmp = out / "sub" / "clip_compare.mp4"
    assert v["compare"] == str(cmp)
    t_cmp, rgb_cmp, _ = video_frames(cmp)
    assert t_cmp == pytest.approx(_times(clip), abs=1e-6) and rgb_cmp[0].shape == (48, 128, 3)
    assert audio_packets(cmp) == audio_packets(clip)
    _, rgb_clip, _ = video_frames(clip)
    _, rgb_out, _ = video_frames(dst)
    # Input on the left, result on the right (the tiny random model's noisy result: both files are
    # lossy encodings of it, ~6 levels apart; the input is ~3x farther).
    left, right = rgb_cmp[3][:, :64].astype(int), rgb_cmp[3][:, 64:].astype(int)
    assert np.abs(left - rgb_clip[3]).mean() < 3
    assert np.abs(right - rgb_out[3]).mean() < 0.5 * np.abs(right - rgb_clip[3]).mean()
    assert "clip.mp4  blur score" in stderr and "(10 frames," in stderr
    assert_no_temp(out / "sub")

    # Rerun: both outputs exist and are skipped; the video file is not rewritten.
    mtime = dst.stat().st_mtime_ns
    code, stdout, stderr = _run("fix", src, "-r", "-o", out, "--model", tiny_model, "--json")
    assert code == 0, stderr
    rows = {Path(r["path"]).name: r for r in _json_lines(stdout)}
    assert rows["clip.mp4"]["status"] == "skipped" and rows["clip.mp4"]["kind"] == "video"
    assert rows["photo.png"]["status"] == "skipped" and dst.stat().st_mtime_ns == mtime
    # --force redoes it, here with another codec and container choice kept.
    code, stdout, _ = _run("fix", clip, "-o", out / "sub", "--model", tiny_model, "--json", "--force", "--crf", "30")
    assert code == 0 and _json_lines(stdout)[0]["status"] == "done" and dst.stat().st_mtime_ns != mtime


def test_frame_range(tiny_model: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mkv", n=10, audio=("opus",))
    code, stdout, stderr = _run("fix", clip, "-o", tmp_path / "out", "--model", tiny_model, "--json",
                                "--frames", "2:5", "--suffix", "_s")
    assert code == 0, stderr
    (row,) = _json_lines(stdout)
    dst = tmp_path / "out" / "clip_s.mkv"
    assert row["output"] == str(dst) and row["frames"] == 3 and row["frame_range"] == [2, 5]
    t_in, t_out = _times(clip), _times(dst)
    assert t_out == pytest.approx([t - t_in[2] for t in t_in[2:5]], abs=1e-3)  # Matroska: 1 ms clock
    assert [c for c, _, _ in audio_packets(dst)] == ["opus"]
    # A range starting past the end: that video fails with one line, exit 1.
    code, _, stderr = _run("fix", clip, "-o", tmp_path / "o2", "--model", tiny_model, "--frames", "20:")
    assert code == 1 and "frame range starts at 20, but the video has 10 frames" in stderr
    assert not (tmp_path / "o2").exists() or not list((tmp_path / "o2").iterdir())


def test_streams_not_copied_are_said(tiny_model: Path, tmp_path: Path) -> None:
    clip = make_timecode_clip(tmp_path / "tc.mov")
    code, stdout, stderr = _run("fix", clip, "-o", tmp_path / "out", "--model", tiny_model, "--json")
    assert code == 0, stderr
    assert "not copied: #1 data (TimeCodeHandler)" in " ".join(stderr.split())  # rich wraps at 80 columns
    assert _json_lines(stdout)[0]["dropped_streams"] == ["#1 data (TimeCodeHandler)"]


def test_bad_videos_fail_alone(tiny_model: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    good = make_clip(src / "good.mov", n=10)
    (src / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    make_audio_only(src / "sound.mp4")
    cut = src / "cut.mp4"
    whole = make_clip(tmp_path / "whole.mp4", n=10)
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    PILImage.fromarray(textured_rgb(24, 32)).save(src / "photo.jpg")

    code, stdout, stderr = _run("fix", src, "-o", out, "--model", tiny_model, "--json")
    assert code == 1
    rows = {Path(r["path"]).name: r for r in _json_lines(stdout)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "cut.mp4": "failed", "good.mov": "done", "noise.mp4": "failed", "photo.jpg": "done", "sound.mp4": "failed"}
    assert rows["sound.mp4"]["error"] == "no video stream (an audio-only file)"
    assert rows["noise.mp4"]["error"].startswith("not a video FFmpeg can read")
    for name in ("cut.mp4", "noise.mp4", "sound.mp4"):
        assert f"error: {src / name}: " in stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["good.mov", "photo.jpg"]
    assert len(_times(out / "good.mov")) == 10 and _times(out / "good.mov") == pytest.approx(_times(good), abs=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [(["--codec", "nope"], "--codec: cannot write codec 'nope': FFmpeg has no encoder of that name"),
     (["--codec", "aac"], "it encodes audio, not video"),
     (["--frames", "5:2"], "the end (2) must be greater than the start (5)"),
     (["--frames", "two"], "expected A:B"),
     (["--crf", "99"], "--crf")],
)
def test_usage_errors_write_nothing(tiny_model: Path, tmp_path: Path, args: list[str], message: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n=3)
    code, _, stderr = _run("fix", clip, "-o", tmp_path / "out", "--model", tiny_model, *args)
    assert code == 2 and message in stderr
    assert not (tmp_path / "out").exists()


def test_same_output_name_in_one_run_is_caught(tiny_model: Path, tmp_path: Path) -> None:
    # x.mts is written as x.mp4 (MPEG-TS is read, not written): the same name as x.mp4's output.
    a = make_clip(tmp_path / "x.mp4", n=3, audio=())
    b = make_clip(tmp_path / "x.mts", n=3, audio=())
    code, stdout, stderr = _run("fix", a, b, "-o", tmp_path / "out", "--model", tiny_model, "--json")
    assert code == 1
    rows = _json_lines(stdout)
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert "is also the output of" in rows[1]["error"] and len(_times(tmp_path / "out" / "x.mp4")) == 3


def test_score_skips_videos_in_folders_and_refuses_a_named_one(tmp_path: Path) -> None:
    PILImage.fromarray(textured_rgb(24, 32)).save(tmp_path / "p.png")
    clip = make_clip(tmp_path / "clip.mp4", n=3)
    code, stdout, _ = _run("score", tmp_path, "--json")
    assert code == 0 and [Path(r["path"]).name for r in _json_lines(stdout)] == ["p.png"]
    code, stdout, stderr = _run("score", clip, "--json")
    assert code == 1 and f"{clip}: a video; deblur score takes images" in stderr


def test_the_shared_real_video(tiny_model: Path, tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "videos" / "shaky_handheld.mp4"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    code, stdout, stderr = _run("fix", src, "-o", tmp_path, "--model", tiny_model, "--frames", "0:10", "--json")
    assert code == 0, stderr
    (row,) = _json_lines(stdout)
    dst = tmp_path / "shaky_handheld.mp4"
    assert row["frames"] == 10 and row["output"] == str(dst)
    with av.open(str(src)) as c:
        t_in = [float(f.pts * f.time_base) for _, f in zip(range(10), c.decode(video=0))]
        audio_in = len(c.streams.audio)
    assert _times(dst) == pytest.approx([t - t_in[0] for t in t_in], abs=1e-6)
    with av.open(str(dst)) as c:
        assert len(c.streams.audio) == audio_in


def test_ctrl_c_leaves_no_half_written_video(tiny_model: Path, tmp_path: Path) -> None:
    """SIGINT while a video is being written: the resume line, exit 130, no output and no temp file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, ctrl_c_reaches_child

    clip = make_clip(tmp_path / "long.mp4", n=400, audio=())
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "deblurcli", "fix", str(clip), "-o", str(out), "--model",
                             str(tiny_model), "--threads", "1"], stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=ctrl_c_reaches_child)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.name.endswith(".tmp") for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before writing its temp file"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted; run the same command again to resume" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == []
