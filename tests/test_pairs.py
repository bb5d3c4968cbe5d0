"""Tests of deblurcli.pairs: the stills engine, the video pipeline, and `deblur make-pairs`."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import textured_rgb
from deblurcli.blur import blur_score
from deblurcli.pairs import StillSample, camera_psf, synthesize_from_still


def _gray8(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


# ------------------------------------------------------------------------------------------------
# Stills engine
# ------------------------------------------------------------------------------------------------


def test_still_contract_shapes_and_range() -> None:
    rgb = textured_rgb(96, 128, seed=1).astype(np.float32) / 255
    s = synthesize_from_still(rgb, np.random.default_rng(3), max_blur=20.0)
    assert isinstance(s, StillSample)
    for a in (s.blurred, s.sharp):
        assert a.shape == rgb.shape and a.dtype == np.float32
        assert a.min() >= 0.0 and a.max() <= 1.0
    assert 0 < s.blur_px <= 20.0 * 1.001


def test_still_is_deterministic_and_blurrier() -> None:
    rgb = textured_rgb(64, 64, seed=2).astype(np.float32) / 255
    a = synthesize_from_still(rgb, np.random.default_rng(7), max_blur=15.0)
    b = synthesize_from_still(rgb, np.random.default_rng(7), max_blur=15.0)
    np.testing.assert_array_equal(a.blurred, b.blurred)
    assert a.blur_px == b.blur_px
    assert blur_score(_gray8(a.blurred)) < 0.8 * blur_score(_gray8(a.sharp))


def test_still_sharp_is_the_input_without_objects() -> None:
    rgb = textured_rgb(48, 64, seed=3).astype(np.float32) / 255
    s = synthesize_from_still(rgb, np.random.default_rng(0), max_blur=10.0, moving_objects=False)
    np.testing.assert_array_equal(s.sharp, rgb)
    assert s.objects == 0


def test_still_has_no_black_borders() -> None:
    # A flat picture stays flat whatever the motion: samples outside the frame come from its mirror
    # image, so no edge is darkened (a constant border would pull the edges to black).
    rgb = np.full((64, 96, 3), 0.6, np.float32)
    for seed in range(6):
        s = synthesize_from_still(rgb, np.random.default_rng(seed), max_blur=40.0)
        assert np.abs(s.blurred - 0.6).max() < 1e-3
        assert np.abs(s.sharp - 0.6).max() < 1e-3


def test_still_streak_length_matches_blur_px() -> None:
    # Sparse bright dots on black: each dot is smeared along its own streak, so the longest smear
    # must not exceed blur_px (plus the bilinear footprint) and must be a good part of it.
    rgb = np.zeros((192, 192, 3), np.float32)
    rgb[32::64, 32::64] = 1.0
    for seed in range(4):
        s = synthesize_from_still(rgb, np.random.default_rng(seed), max_blur=30.0, min_blur=20.0, moving_objects=False)
        lit = s.blurred.max(axis=2) > 0.02
        extents = []
        for cy in range(32, 192, 64):
            for cx in range(32, 192, 64):
                ys, xs = np.nonzero(lit[max(cy - 40, 0) : cy + 40, max(cx - 40, 0) : cx + 40])
                if len(xs):
                    extents.append(np.hypot(xs.max() - xs.min(), ys.max() - ys.min()))
        assert max(extents) <= s.blur_px + 4
        assert max(extents) >= 0.4 * s.blur_px


def test_still_blur_lengths_cover_the_range() -> None:
    rgb = textured_rgb(64, 64, seed=4).astype(np.float32) / 255
    rng = np.random.default_rng(11)
    lengths = [synthesize_from_still(rgb, rng, max_blur=50.0).blur_px for _ in range(24)]
    assert max(lengths) <= 50.0 * 1.001
    assert min(lengths) < 20.0 and max(lengths) > 35.0


def test_still_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        synthesize_from_still(np.zeros((32, 32), np.float32), rng)
    with pytest.raises(ValueError):
        synthesize_from_still(np.zeros((32, 32, 3), np.uint8), rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        synthesize_from_still(np.zeros((8, 8, 3), np.float32), rng)


def test_highlights_brighter_than_white_leave_long_saturated_streaks() -> None:
    """A small white lamp on a dark scene: stored white blurred in linear light makes a faint streak;
    as a light many times brighter than white (clipped after the blur, as a sensor clips) it makes a
    streak that stays saturated over much of its length. The sharp image keeps the lamp white, the
    scene away from it is untouched, and ``highlights=0`` draws nothing (samples as before)."""
    rgb = np.full((96, 96, 3), 0.1, np.float32)
    rgb[44:52, 44:52] = 1.0  # the lamp
    plain = synthesize_from_still(rgb, np.random.default_rng(1), max_blur=40.0, min_blur=40.0, moving_objects=False)
    default = synthesize_from_still(rgb, np.random.default_rng(1), max_blur=40.0, min_blur=40.0, moving_objects=False, highlights=0.0)
    np.testing.assert_array_equal(plain.blurred, default.blurred)
    assert (plain.blurred.min(axis=2) > 0.99).sum() == 0  # 8 px of white spread over a 40 px streak
    for seed in range(4):  # the factor is drawn: 2x-20x
        plain = synthesize_from_still(rgb, np.random.default_rng(seed), max_blur=40.0, min_blur=40.0, moving_objects=False)
        lamp = synthesize_from_still(rgb, np.random.default_rng(seed), max_blur=40.0, min_blur=40.0, moving_objects=False,
                                     highlights=1.0)
        # The bright streak (over half white) covers at least twice the area.
        assert (lamp.blurred > 0.5).sum() >= 2 * (plain.blurred > 0.5).sum(), seed
        np.testing.assert_allclose(lamp.sharp, rgb, atol=1e-6)  # white stays white, dark stays dark
        far = np.s_[:16, :16]  # beyond the streak: the same scene either way
        np.testing.assert_allclose(lamp.blurred[far], plain.blurred[far], atol=1e-6)
    with pytest.raises(ValueError, match="highlights"):
        synthesize_from_still(rgb, np.random.default_rng(1), highlights=1.5)


def test_content_score_is_pyscenedetects_formula() -> None:
    """The OpenCV implementation against the plain formula: mean |dH| (wrapped on the 180-step hue
    circle), |dS| and |dV| (mean-removed), averaged; hue differences on both sides of 90."""
    from deblurcli.pairs import _hsv_features, content_score

    rng = np.random.default_rng(5)
    for _ in range(4):
        a, b = (_hsv_features(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)) for _ in range(2))
        d = np.abs(a.astype(np.float64) - b)
        expected = (np.minimum(d[..., 0], 180 - d[..., 0]).mean() + d[..., 1].mean() + d[..., 2].mean()) / 3
        assert (d[..., 0] > 90).any() and (d[..., 0] < 90).any()
        assert content_score(a, b) == pytest.approx(expected, rel=1e-5)
    same = _hsv_features(textured_rgb(36, 64))
    assert content_score(same, same) == 0.0


def test_camera_psf_is_the_blur_the_engine_renders() -> None:
    """The kernel traced from the recorded camera path matches a rendered dot (the engine's own
    blur of a point, γ 1.0 so no light conversion): same mass in the same places. And it is the
    blur of a photo: the sharp frame convolved with it gives the blurred frame near that pixel."""
    import cv2

    h, w, g = 160, 224, 64
    dots = np.zeros((h, w, 3), np.float32)
    dots[g // 2 :: g, g // 2 :: g] = 1.0
    rgb = textured_rgb(h, w, seed=11).astype(np.float32) / 255
    for seed in (0, 1, 2):
        d = synthesize_from_still(dots, np.random.default_rng(seed), max_blur=24.0, gamma=1.0, moving_objects=False)
        p = synthesize_from_still(rgb, np.random.default_rng(seed), max_blur=24.0, gamma=1.0, moving_objects=False)
        assert d.camera is not None and d.camera.shape == (d.subframes, 3, 3)
        np.testing.assert_array_equal(d.camera, p.camera)  # the path does not depend on the content
        size = 2 * 28 + 1
        for y in range(g // 2, h, g):
            for x in range(g // 2, w, g):
                k = camera_psf(d.camera, x, y, size)
                rendered = d.blurred[y - 28 : y + 29, x - 28 : x + 29, 0]
                assert k.shape == (size, size) and abs(float(k.sum()) - 1) < 1e-5
                assert np.abs(k - rendered / rendered.sum()).sum() < 0.05, (seed, x, y)  # flipped: > 0.7
        # Forward model: sharp (*) kernel == blurred, on a window around the frame's centre.
        k = camera_psf(p.camera, w / 2, h / 2, size)
        reblurred = cv2.filter2D(p.sharp, -1, k[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT_101)
        win = (slice(h // 2 - 12, h // 2 + 12), slice(w // 2 - 12, w // 2 + 12))
        assert np.abs(reblurred[win] - p.blurred[win]).mean() < 0.1 * np.abs(p.sharp[win] - p.blurred[win]).mean()
    with pytest.raises(ValueError, match="odd"):
        camera_psf(d.camera, 10, 10, 8)
    with pytest.raises(ValueError, match=r"\(N, 3, 3\)"):
        camera_psf(np.eye(3), 10, 10, 9)


# ------------------------------------------------------------------------------------------------
# Videos (generated with PyAV: tiny, a few dozen frames)
# ------------------------------------------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from deblurcli.images import read_image  # noqa: E402
from deblurcli.pairs import PairsConfig, expand_video_inputs, make_pairs  # noqa: E402

W, H = 96, 64
ROOT = Path(__file__).resolve().parents[1]


def _scene(seed: int, w: int = 3 * W, h: int = 3 * H) -> np.ndarray:
    """A picture larger than the frame, to pan over: smooth colour regions (what the cut detector
    looks at) plus a fine grey texture (what motion blur removes)."""
    import cv2

    r = np.random.default_rng(seed)
    base = r.uniform(0, 255, size=(h // 24, w // 24, 3)).astype(np.float32)
    big = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    big += r.normal(0, 6, size=(h, w, 1)).astype(np.float32)
    return np.clip(big, 0, 255).astype(np.uint8)


def _pan(seed: int, n: int, step: tuple[int, int] = (3, 2)) -> list[np.ndarray]:
    scene = _scene(seed)
    x0, y0 = (scene.shape[1] - W) // 2, (scene.shape[0] - H) // 2  # start mid-scene: room both ways
    return [
        np.ascontiguousarray(scene[y0 + i * step[1] : y0 + i * step[1] + H, x0 + i * step[0] : x0 + i * step[0] + W])
        for i in range(n)
    ]


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 25, fmt: str | None = None) -> Path:
    import av

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuv444p"  # no chroma subsampling: decoded frames stay close to the sources
        s.options = {"crf": "8", "preset": "ultrafast"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _decode_all(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]


def _run(videos: list[Path], out: Path, **kw) -> "object":
    return make_pairs(expand_video_inputs([str(v) for v in videos]), out, PairsConfig(**kw))


def test_join_of_two_clips_no_window_spans_it(tmp_path: Path) -> None:
    join = 20
    video = _write_video(tmp_path / "joined.mp4", _pan(1, join) + _pan(2, 20, step=(-2, 3)))
    rep = _run([video], tmp_path / "out", frames=5, samples=1000)
    (res,) = rep.results
    assert res.error is None
    assert res.cuts == [join]
    rows = _rows(tmp_path / "out")
    spans = [tuple(r["frames"]) for r in rows]
    assert all(not (s < join <= e) for s, e in spans), spans
    # Every window that does not straddle the join is used (samples > windows); the first
    # straddling window examined is rejected and the search jumps past the cut.
    assert res.rejected["cut"] == 1
    assert sorted(spans) == [(s, s + 4) for s in range(36) if not (s < join <= s + 4)]


def test_blurred_is_linear_light_mean_within_1_255(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "pan.mp4", _pan(3, 24, step=(4, 1)))
    gamma = 2.2
    _run([video], tmp_path / "out", frames=7, samples=6, gamma=gamma)
    decoded = _decode_all(video)
    rows = _rows(tmp_path / "out")
    assert len(rows) == 6
    for r in rows:
        s, e = r["frames"]
        ref = np.mean([(f.astype(np.float64) / 255) ** gamma for f in decoded[s : e + 1]], axis=0) ** (1 / gamma)
        got = read_image(tmp_path / "out" / "blurred" / f"{r['name']}.png").pixels.astype(np.float64) / 255
        assert np.abs(got - ref).max() <= 1 / 255 + 1e-9
        target = read_image(tmp_path / "out" / "targets" / f"{r['name']}.png").pixels
        assert r["target_frame"] == s + 3
        np.testing.assert_array_equal(target, decoded[s + 3])
        assert r["blurred_score"] < r["target_score"]


def test_static_flash_and_fade_are_rejected(tmp_path: Path) -> None:
    still = _write_video(tmp_path / "still.mp4", [_pan(4, 1)[0]] * 16)
    flash = _pan(5, 24)
    flash[12] = np.clip(flash[12].astype(np.int32) + 90, 0, 255).astype(np.uint8)  # a one-frame flash
    flashy = _write_video(tmp_path / "flash.mp4", flash)
    fade = [np.rint(f * (1 - 0.06 * max(0, i - 8))).astype(np.uint8) for i, f in enumerate(_pan(6, 20))]
    fading = _write_video(tmp_path / "fade.mp4", fade)
    rep = _run([still, flashy, fading], tmp_path / "out", frames=5, samples=1000)
    r_still, r_flash, r_fade = rep.results
    assert r_still.pairs_written == 0 and r_still.rejected["static"] > 0
    assert r_flash.rejected["flash"] > 0
    names = [r for r in _rows(tmp_path / "out") if r["source"] == str(flashy)]
    assert names and all(not (s <= 12 <= e) for s, e in (r["frames"] for r in names))
    assert r_fade.rejected["fade"] > 0
    fade_rows = [r for r in _rows(tmp_path / "out") if r["source"] == str(fading)]
    assert fade_rows and all(e <= 10 for s, e in (r["frames"] for r in fade_rows))


def test_resume_keeps_pairs_and_never_duplicates_rows(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "pan.mp4", _pan(7, 20))
    out = tmp_path / "out"
    first = _run([video], out, frames=4, samples=5).results[0]
    assert first.pairs_written == 5
    rows = _rows(out)
    (out / "blurred" / f"{rows[0]['name']}.png").unlink()  # one pair lost
    with open(out / "pairs.jsonl", "a") as f:
        f.write('{"name": "torn')  # a crash mid-append
    second = _run([video], out, frames=4, samples=5).results[0]
    assert (second.pairs_written, second.pairs_kept) == (1, 4)
    again = _rows(out)
    assert [r["name"] for r in again] == [r["name"] for r in rows]
    assert (out / "blurred" / f"{rows[0]['name']}.png").is_file()
    # Other settings into the same folder: a clear error instead of mixing pairs.
    third = _run([video], out, frames=6, samples=5).results[0]
    assert third.error and "other settings" in third.error


def test_write_error_mid_run_leaves_rows_only_for_complete_pairs(tmp_path: Path) -> None:
    """Pairs are encoded on worker threads; a write failure (here: a folder squatting on one
    target's name) must still end that input with a one-line error, rows only for the pairs
    before it (each with both images), no temp files, and a rerun that completes the set."""
    video = _write_video(tmp_path / "pan.mp4", _pan(12, 40))
    _run([video], tmp_path / "dry", frames=4, samples=8)
    names = [r["name"] for r in _rows(tmp_path / "dry")]
    assert len(names) == 8
    out = tmp_path / "out"
    (out / "targets" / f"{names[3]}.png").mkdir(parents=True)
    (res,) = _run([video], out, frames=4, samples=8).results
    assert res.error and f"{names[3]}.png" in res.error and "cannot write" in res.error
    assert "\n" not in res.error
    assert [r["name"] for r in _rows(out)] == names[:3] and res.pairs_written == 3
    for n in names[:3]:
        assert (out / "blurred" / f"{n}.png").is_file() and (out / "targets" / f"{n}.png").is_file()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    (out / "targets" / f"{names[3]}.png").rmdir()
    (again,) = _run([video], out, frames=4, samples=8).results
    assert again.error is None and (again.pairs_kept, again.pairs_written) == (3, 5)
    assert sorted(r["name"] for r in _rows(out)) == sorted(names)
    for n in names:  # the same bytes as the uninterrupted run
        for sub in ("blurred", "targets"):
            assert (out / sub / f"{n}.png").read_bytes() == (tmp_path / "dry" / sub / f"{n}.png").read_bytes()


def test_bad_videos_fail_alone(tmp_path: Path) -> None:
    import av

    good = _write_video(tmp_path / "good.mp4", _pan(8, 12))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    short = _write_video(tmp_path / "short.mp4", _pan(9, 3))
    # Resolution change: two raw H.264 streams of different sizes, back to back.
    a = _write_video(tmp_path / "a.h264", _pan(10, 10), fmt="h264")
    b = _write_video(tmp_path / "b.h264", [np.ascontiguousarray(f[:48, :64]) for f in _pan(11, 10)], fmt="h264")
    resized = tmp_path / "resized.h264"
    resized.write_bytes(a.read_bytes() + b.read_bytes())
    assert av  # PyAV wrote the streams above
    rep = _run([empty, junk, short, resized, good], tmp_path / "out", frames=5, samples=3)
    errors = [r.error for r in rep.results]
    assert "empty file" in errors[0]
    assert errors[1] and "junk.mp4" in errors[1]
    assert "fewer than --frames 5" in errors[2]
    assert "resolution changes mid-stream at frame 10 (96x64 -> 64x48)" in errors[3]
    assert errors[4] is None and rep.results[4].pairs_written == 3
    assert rep.failed == 4


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "deblurcli", "make-pairs", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_videos_json_and_exit_code(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "pan.mp4", _pan(12, 16))
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    p = _cli(str(tmp_path / "*.mp4"), "-o", str(tmp_path / "out"), "--frames", "4", "--samples", "3", "--json")
    assert p.returncode == 1, p.stderr
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    by_src = {d.get("source"): d for d in lines}
    assert by_src[str(video)]["pairs_written"] == 3
    assert "error" in by_src[str(tmp_path / "bad.mp4")]
    assert lines[-1]["summary"]["pairs_written"] == 3 and lines[-1]["summary"]["failed"] == 1
    assert "error:" in p.stderr and "bad.mp4" in p.stderr
    assert len(list((tmp_path / "out" / "blurred").glob("*.png"))) == 3


def test_seed_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    """NumPy refuses negative seeds: the CLI says so up front (exit 2, nothing written) instead of
    a traceback from the sampler; the library config refuses them too."""
    video = _write_video(tmp_path / "pan.mp4", _pan(13, 12))
    for bad in ("-1", str(2**32)):
        p = _cli(str(video), "-o", str(tmp_path / "out"), "--seed", bad)
        assert p.returncode == 2 and "--seed" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="seed"):
        PairsConfig(seed=-1)
    assert _cli(str(video), "-o", str(tmp_path / "out"), "--frames", "4", "--samples", "1", "--seed", str(2**32 - 1)).returncode == 0


def test_manifest_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "pan.mp4", _pan(14, 12))
    out = tmp_path / "out"
    (out / "pairs.jsonl").mkdir(parents=True)  # a folder where the manifest should be
    p = _cli(str(video), "-o", str(out), "--frames", "4", "--samples", "1")
    assert p.returncode == 1 and "cannot read the manifest" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (out / "blurred").exists()  # folders are made with the first pair (issue 16 #19)


def test_new_files_follow_the_umask(tmp_path: Path) -> None:
    """Pairs and manifest get what open() would give under the user's umask (here 002: group
    writable), not fixed bits (the manifest was created 0o644 whatever the umask)."""
    video = _write_video(tmp_path / "pan.mp4", _pan(15, 12))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-m", "deblurcli", "make-pairs", str(video), "-o", str(tmp_path / "out"), "--frames", "4", "--samples", "2"]
    # A process of its own: the umask is per process (and read once per process by deblurcli.images).
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, preexec_fn=lambda: os.umask(0o002))
    assert p.returncode == 0, p.stderr
    files = [tmp_path / "out" / "pairs.jsonl", *(tmp_path / "out").glob("*/*.png")]
    assert len(files) == 5
    assert {f.stat().st_mode & 0o777 for f in files} == {0o664}


def test_cli_from_stills(tmp_path: Path) -> None:
    from deblurcli.images import Image, write_image

    write_image(tmp_path / "a.png", Image(pixels=textured_rgb(64, 80, seed=5)))
    p = _cli(str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--from-stills", "--samples", "3", "--max-blur", "12")
    assert p.returncode == 0, p.stderr
    assert "blur length px" in p.stdout
    rows = _rows(tmp_path / "out")
    assert len(rows) == 3 and all(0 < r["blur_px"] <= 12.01 for r in rows)
    assert all(r["blur_ratio"] < 1 for r in rows)


def test_interpolation_approaches_continuous_blur(tmp_path: Path) -> None:
    # A pan of 4 px per frame; with 3 interpolated frames between neighbours the average should
    # approach the average of the same pan rendered at 1 px per frame (continuous blur), much closer
    # than the plain average of 4 ghost copies.
    from deblurcli.pairs import average_frames, average_frames_interpolated

    coarse = _decode_all(_write_video(tmp_path / "pan.mp4", _pan(13, 4, step=(4, 0))))
    fine = _pan(13, 13, step=(1, 0))
    truth = average_frames(fine).astype(np.float64)
    plain = average_frames(coarse).astype(np.float64)
    interp = average_frames_interpolated(coarse, 3).astype(np.float64)
    inner = np.s_[8:-8, 8:-8]
    err_plain = np.abs(plain - truth)[inner].mean()
    err_interp = np.abs(interp - truth)[inner].mean()
    assert err_interp < 0.6 * err_plain, (err_interp, err_plain)


def test_cli_help_keeps_torch_out() -> None:
    code = "import sys, deblurcli.pairs; from deblurcli.cli import app; assert 'torch' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3, 3), (7, 1, 3), (360, 640, 3)])
def test_pair_png_is_a_valid_lossless_png(shape: tuple[int, int, int]) -> None:
    """make-pairs writes its own PNG container around ISA-L's zlib stream: every chunk CRC must
    check (Pillow's verify) and both Pillow and OpenCV must read back the exact pixels."""
    import io

    import cv2
    from PIL import Image as PILImage

    from deblurcli.pairs import _encode_png

    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = _encode_png(rgb)
    PILImage.open(io.BytesIO(data)).verify()
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB" and im.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(im), rgb)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1], rgb)
    with pytest.raises(ValueError, match="8-bit RGB"):
        _encode_png(rgb.astype(np.uint16))


def test_average_frames_is_exact_across_threads_and_shapes() -> None:
    """average_frames reuses per-thread scratch images: results must not depend on which thread ran
    it, on what it ran before (another shape, grey or colour), or on other threads running at once."""
    from concurrent.futures import ThreadPoolExecutor

    from deblurcli.pairs import average_frames

    rng = np.random.default_rng(7)
    # Frames large enough (and windows long enough) that the threads really overlap.
    shapes = [(240, 320, 3), (31, 17, 3), (240, 320), (240, 320, 3)]
    frames = {shape: [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(12)] for shape in shapes}
    windows = [frames[shape][i % 4 : i % 4 + 8 - i % 3] for i, shape in enumerate(shapes * 8)]

    def reference(frames: list[np.ndarray], gamma: float) -> np.ndarray:
        mean = np.mean([(f.astype(np.float64) / 255) ** gamma for f in frames], axis=0)
        return mean ** (1 / gamma) * 255

    sequential = [average_frames(w, 2.2) for w in windows]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(lambda w: average_frames(w, 2.2), windows))
    for w, a, b in zip(windows, sequential, threaded):
        assert a.shape == w[0].shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - reference(w, 2.2)).max() <= 0.5 + 1e-3  # rounded once, at the end
    with pytest.raises(ValueError):
        average_frames([windows[0][0], windows[1][0]], 2.2)
