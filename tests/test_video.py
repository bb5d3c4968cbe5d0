"""deblurcli.video: real clips made here with PyAV, deblurred, decoded back and compared."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from deblurcli.errors import VideoError
from deblurcli.video import VideoProgress, deblur_video, is_video, output_suffix

W, H = 64, 48
FAST = {"preset": "ultrafast"}


def identity(x):  # noqa: ANN001, ANN201 - a deblur callable that changes nothing
    return x


def sharpen(x):  # noqa: ANN001, ANN201 - a real (deterministic) sharpening: x - 0.5 * Laplacian
    from deblurcli.blur import laplacian

    return (x - 0.5 * laplacian(x)).clamp(0.0, 1.0)


def picture(i: int, w: int = W, h: int = H, patches: bool = False) -> np.ndarray:
    """Frame i of a moving test pattern: a gradient and a moving bright bar; ``patches``: saturated
    red and blue squares as well."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 96)], -1).astype(np.uint8)
    x0 = (i * 5) % (w - 8)
    img[:, x0 : x0 + 6] = 235
    if patches:
        # Saturated red and blue: a BT.601/709 or range mix-up moves them by 10-30 levels. (Their
        # sharp edges ring out of gamut in the codec, and RGB clips that, so they are kept out of
        # the round-trip precision test.)
        img[4:20, 4:20] = (220, 20, 20)
        img[4:20, 24:40] = (20, 20, 220)
    return img


def make_clip(
    path: Path,
    *,
    n: int = 12,
    size: tuple[int, int] = (W, H),
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 25),
    audio: tuple[str, ...] = ("aac",),
    rotation: tuple[int, bool] | None = None,
    colour: tuple[int, int, int, int] | None = None,
    patches: bool = False,
    tags: dict[str, str] | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> Path:
    """Write a clip: ``n`` frames at ``pts`` (default 0..n-1) in ``time_base``, a 440 Hz sine per audio codec."""
    pts = list(range(n)) if pts is None else pts
    out = av.open(str(path), "w", options=options or {})
    out.metadata.update(tags or {})
    v = out.add_stream(codec, rate=25, options={"crf": "1", **FAST} if codec == "libx264" else {})
    v.width, v.height = size
    v.pix_fmt = pix_fmt if codec != "mjpeg" else "yuvj420p"
    v.time_base = v.codec_context.time_base = time_base
    if colour:
        cc = v.codec_context
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = colour
    if rotation:
        v.set_display_rotation(rotation[0], hflip=rotation[1])
    astreams = []
    for k, name in enumerate(audio):
        a = out.add_stream(name, rate=48000)
        a.layout = "mono"
        a.metadata["language"] = ("fra", "eng")[k % 2]
        astreams.append(a)
    for i, p in enumerate(pts):
        f = av.VideoFrame.from_ndarray(picture(i, *size, patches=patches), format="rgb24")
        if colour:
            f = f.reformat(format=v.pix_fmt, dst_colorspace=colour[1], src_color_range=2, dst_color_range=colour[0])
        f.pts = p
        f.time_base = time_base
        out.mux(v.encode(f))
    out.mux(v.encode(None))
    seconds = float((pts[-1] + 1) * time_base)
    for a in astreams:
        fmt = a.codec_context.format.name
        t, step = 0, 960
        while t < seconds * 48000:
            s = (0.3 * np.sin(2 * np.pi * 440 * np.arange(t, t + step) / 48000)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(s if fmt == "fltp" else (s * 32767).astype(np.int16), format=fmt, layout="mono")
            af.sample_rate, af.pts = 48000, t
            out.mux(a.encode(af))
            t += step
        out.mux(a.encode(None))
    out.close()
    return path


def video_frames(path: Path) -> tuple[list[float], list[np.ndarray], list]:
    """(times in seconds, RGB arrays converted as the frames' tags say, frames)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    rgbs = [f.reformat(format="rgb24", src_color_range=f.color_range or 1, dst_color_range=2).to_ndarray() for f in frames]
    return [float(f.pts * f.time_base) for f in frames], rgbs, frames


def planes(frames: list) -> list[np.ndarray]:
    """The Y, U, V planes of 4:2:0 frames, stacked: what the file stores, before any RGB conversion."""
    out = []
    for k in range(3):
        rows = [np.frombuffer(f.planes[k], np.uint8).reshape(-1, f.planes[k].line_size) for f in frames]
        h, w = (H, W) if k == 0 else ((H + 1) // 2, (W + 1) // 2)
        out.append(np.stack([r[:h, :w] for r in rows]).astype(int))
    return out


def audio_packets(path: Path) -> list[tuple[str, str, list[tuple[float, int]]]]:
    """Per audio stream: (codec, language, [(time, size)] of its packets)."""
    with av.open(str(path)) as c:
        streams = {s.index: (s.codec_context.name, s.metadata.get("language", ""), []) for s in c.streams.audio}
        for p in c.demux(*c.streams.audio):
            if p.size:
                streams[p.stream.index][2].append((round(float(p.pts * p.time_base), 4), p.size))
    return list(streams.values())


def assert_no_temp(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- keeping things -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, audio", [(".mp4", ("aac",)), (".mkv", ("opus", "aac"))])
def test_identity_keeps_frames_timestamps_audio_and_tags(tmp_path: Path, suffix: str, audio: tuple[str, ...]) -> None:
    src = make_clip(tmp_path / f"clip{suffix}", audio=audio, tags={"title": "beach", "comment": "take 2"})
    dst = tmp_path / "out" / f"clip{suffix}"
    dst.parent.mkdir()
    reports: list[VideoProgress] = []
    r = deblur_video(src, dst, identity, crf=1, batch=5, encoder_options=FAST, on_progress=reports.append)

    t_in, _, f_in = video_frames(src)
    t_out, _, f_out = video_frames(dst)
    assert r.frames == len(t_out) == len(t_in) == 12
    assert t_out == pytest.approx(t_in, abs=1e-9)
    # Identity through YUV -> RGB -> YUV and a lossy codec at crf 1: within a few levels of the
    # input (luma within 0.1 on average, chroma ~0.5-1.3; a matrix or range mix-up moves 10+ levels).
    for k, (a, b) in enumerate(zip(planes(f_in), planes(f_out))):
        d = np.abs(a - b)
        assert d.mean() < (0.5 if k == 0 else 2.0) and np.percentile(d, 99) <= (4 if k == 0 else 12), (k, d.mean())
    assert audio_packets(dst) == audio_packets(src)  # codec, language, every packet's time and size
    assert r.audio_streams == len(audio) and r.audio_codecs == list(audio)
    with av.open(str(dst)) as c:
        tags = {k.lower(): v for k, v in c.metadata.items()}  # Matroska spells its tags in capitals
        assert tags["title"] == "beach" and tags["comment"] == "take 2"
        assert c.streams.video[0].codec_context.name == "h264"
    assert [p.frames_done for p in reports] == [5, 10, 12]
    assert all(p.frames_total == 12 for p in reports) and reports[-1].eta_seconds == 0.0
    assert r.blur_after_median == pytest.approx(r.blur_before_median, rel=0.02)
    json.dumps(r.row())
    assert_no_temp(dst.parent)


def test_variable_frame_rate_stays_variable(tmp_path: Path) -> None:
    pts = [0, 33, 50, 120, 125, 200, 333, 340, 400, 520]  # ms: irregular gaps
    src = make_clip(tmp_path / "vfr.mp4", pts=pts, time_base=Fraction(1, 1000))
    dst = tmp_path / "vfr_out.mp4"
    deblur_video(src, dst, identity, encoder_options=FAST)
    t_out, _, _ = video_frames(dst)
    assert t_out == pytest.approx([p / 1000 for p in pts], abs=1e-9)
    assert len(set(np.round(np.diff(t_out), 3))) > 3  # not rebuilt from a frame rate


@pytest.mark.parametrize("rotation", [(90, False), (-90, True), (180, False)])
def test_rotation_matrix_kept(tmp_path: Path, rotation: tuple[int, bool]) -> None:
    src = make_clip(tmp_path / "rot.mov", rotation=rotation, audio=())
    dst = tmp_path / "rot_out.mov"
    r = deblur_video(src, dst, identity, encoder_options=FAST)
    _, _, f_in = video_frames(src)
    _, _, f_out = video_frames(dst)

    def matrix(frame) -> bytes:  # noqa: ANN001
        return next(bytes(sd) for sd in frame.side_data if sd.type.name == "DISPLAYMATRIX")

    assert matrix(f_out[0]) == matrix(f_in[0])
    assert f_out[0].rotation == f_in[0].rotation
    assert r.rotation == pytest.approx(f_in[0].rotation)
    # The pixels are not turned: the display matrix does that at playback.
    assert (f_out[0].width, f_out[0].height) == (W, H)


@pytest.mark.parametrize(
    "colour",
    [(1, 1, 1, 1), (2, 6, 6, 6)],  # BT.709 tv range; BT.601 (SMPTE 170M) full range
    ids=["bt709-tv", "bt601-pc"],
)
def test_colour_tags_and_conversion_kept(tmp_path: Path, colour: tuple[int, int, int, int]) -> None:
    src = make_clip(tmp_path / "col.mp4", colour=colour, patches=True, audio=())
    dst = tmp_path / "col_out.mp4"
    deblur_video(src, dst, identity, crf=1, encoder_options=FAST)
    _, rgb_in, f_in = video_frames(src)
    _, rgb_out, f_out = video_frames(dst)
    assert (f_in[0].color_range, f_in[0].colorspace, f_in[0].color_primaries, f_in[0].color_trc) == colour
    assert (f_out[0].color_range, f_out[0].colorspace, f_out[0].color_primaries, f_out[0].color_trc) == colour
    # The saturated red patch: converted with the wrong matrix or range it moves by 10-30 levels.
    patch_in = np.stack(rgb_in)[:, 8:16, 8:16].astype(int)
    patch_out = np.stack(rgb_out)[:, 8:16, 8:16].astype(int)
    assert np.abs(patch_out - patch_in).max() <= 4


def test_ten_bit_video_stays_ten_bit(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "deep.mkv", pix_fmt="yuv420p10le", audio=())
    dst = tmp_path / "deep_out.mkv"
    deblur_video(src, dst, identity, crf=1, encoder_options=FAST)
    with av.open(str(src)) as c:
        y_in = np.stack([f.to_ndarray()[:H] for f in c.decode(video=0)]).astype(int)  # 10-bit luma
    with av.open(str(dst)) as c:
        frames = list(c.decode(video=0))
        y_out = np.stack([f.to_ndarray()[:H] for f in frames]).astype(int)
    assert frames[0].format.name == "yuv420p10le"
    assert np.abs(y_out - y_in).mean() < 2.0  # in 10-bit levels: under half an 8-bit level


def test_frame_range_and_its_audio(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=20)
    dst = tmp_path / "part.mp4"
    r = deblur_video(src, dst, identity, frames=(5, 15), encoder_options=FAST)
    t_in, rgb_in, _ = video_frames(src)
    t_out, rgb_out, _ = video_frames(dst)
    assert r.frames == len(t_out) == 10 and r.frame_range == [5, 15]
    assert t_out == pytest.approx([t - t_in[5] for t in t_in[5:15]], abs=1e-9)
    # Each output frame is the input frame 5 later (the bar moves 5 px a frame): the nearest one.
    ins = np.stack(rgb_in).astype(int)
    nearest = [int(np.argmin(np.abs(ins - f.astype(int)).mean(axis=(1, 2, 3)))) for f in rgb_out]
    assert nearest == list(range(5, 15))
    (_, _, pk_in), = audio_packets(src)
    (_, _, pk_out), = audio_packets(dst)
    start, end = t_in[5], t_in[15]
    expected = [(t - start, s) for t, s in pk_in if start <= t < end]
    assert [s for _, s in pk_out] == [s for _, s in expected]  # the same packets, byte counts equal
    assert [t for t, _ in pk_out] == pytest.approx([t for t, _ in expected], abs=1e-3)
    assert r.duration == pytest.approx(0.4)


def test_blur_score_sampled_before_and_after(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=12, audio=())
    r = deblur_video(src, tmp_path / "sharp.mp4", sharpen, samples=4, encoder_options=FAST)
    assert r.sample_every == 3 and len(r.blur_before) == len(r.blur_after) == 4
    assert all(a > b for a, b in zip(r.blur_after, r.blur_before))


def test_existing_output_replaced_only_at_the_end_and_no_temp_left(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=12, audio=())
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "clip.mp4"
    dst.write_bytes(b"the previous result")
    calls = []

    def interrupted(x):  # noqa: ANN001, ANN202 - stops the run at the second batch, as Ctrl-C would
        calls.append(x.shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        deblur_video(src, dst, interrupted, batch=4, encoder_options=FAST)
    assert dst.read_bytes() == b"the previous result"
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]


def test_output_may_replace_the_input(tmp_path: Path) -> None:
    """``fix --overwrite`` into the input's folder: the input is read to the end, then replaced."""
    src = make_clip(tmp_path / "clip.mp4", n=8)
    t_in, _, _ = video_frames(src)
    r = deblur_video(src, src, identity, encoder_options=FAST, compare=tmp_path / "clip_compare.mp4")
    assert r.frames == 8 and video_frames(src)[0] == pytest.approx(t_in, abs=1e-9)
    assert len(video_frames(tmp_path / "clip_compare.mp4")[0]) == 8
    assert_no_temp(tmp_path)


def test_the_shared_real_video(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "videos" / "shaky_handheld.mp4"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    dst = tmp_path / "shaky_handheld.mp4"
    r = deblur_video(src, dst, identity, encoder_options=FAST, batch=8)
    with av.open(str(src)) as c:
        t_in = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    with av.open(str(dst)) as c:
        t_out = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert r.frames == len(t_out) == len(t_in) == 245
    assert t_out == pytest.approx(t_in, abs=1e-9)
    assert audio_packets(dst) == audio_packets(src)
    with av.open(str(dst)) as c:
        assert c.metadata.get("creation_time") == "2020-07-08T18:26:41.000000Z"


# --- other streams ------------------------------------------------------------------------------------

SRT = "1\n00:00:00,000 --> 00:00:00,100\nfirst\n\n2\n00:00:00,240 --> 00:00:00,400\nsecond\n\n3\n00:00:00,440 --> 00:00:00,460\nthird\n"


def add_subtitles(clip: Path, srt_text: str, dst: Path) -> Path:
    """``clip`` remuxed into ``dst`` (Matroska) with an SRT subtitle track made from ``srt_text``."""
    srt = clip.with_suffix(".srt")
    srt.write_text(srt_text)
    with av.open(str(clip)) as cin, av.open(str(srt)) as sin, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in cin.streams}
        sub = out.add_stream_from_template(sin.streams.subtitles[0])
        sub.metadata["language"] = "deu"
        for p in cin.demux():
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                out.mux(p)
        for p in sin.demux():
            if p.size:
                p.stream = sub
                out.mux(p)
    return dst


def subtitle_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as c:
        assert [s.metadata.get("language") for s in c.streams.subtitles] == ["deu"]
        return [(round(float(p.pts * p.time_base), 3), bytes(p)) for p in c.demux(*c.streams.subtitles) if p.size]


def test_subtitles_copied_and_cut_with_a_range(tmp_path: Path) -> None:
    src = add_subtitles(make_clip(tmp_path / "plain.mkv", n=12), SRT, tmp_path / "clip.mkv")
    r = deblur_video(src, tmp_path / "out.mkv", identity, encoder_options=FAST)
    assert r.subtitle_codecs == ["srt"] and r.dropped_streams == []
    assert subtitle_packets(tmp_path / "out.mkv") == subtitle_packets(src) == [(0.0, b"first"), (0.24, b"second"), (0.44, b"third")]
    assert audio_packets(tmp_path / "out.mkv") == audio_packets(src)
    # Frames 5-10 (0.20-0.40 s): the cue that starts inside, moved to the range's start; not the others.
    deblur_video(src, tmp_path / "part.mkv", identity, frames=(5, 10), encoder_options=FAST)
    assert subtitle_packets(tmp_path / "part.mkv") == [(0.04, b"second")]


def make_timecode_clip(src: Path) -> Path:
    """A QuickTime clip of 4 frames with a timecode: FFmpeg writes it as a data stream (tmcd)."""
    out = av.open(str(src), "w")
    v = out.add_stream("libx264", rate=25, options=FAST)
    v.width, v.height, v.pix_fmt = W, H, "yuv420p"
    v.metadata["timecode"] = "01:02:03:04"
    for i in range(4):
        f = av.VideoFrame.from_ndarray(picture(i), format="rgb24")
        f.pts = i
        out.mux(v.encode(f))
    out.mux(v.encode(None))
    out.close()
    return src


def test_streams_not_written_are_named(tmp_path: Path) -> None:
    """A QuickTime timecode track is a data stream: not copied, but named in the result; the video
    stream's timecode tag is kept, from which the muxer writes a timecode track of its own."""
    src = make_timecode_clip(tmp_path / "tc.mov")
    r = deblur_video(src, tmp_path / "out.mov", identity, encoder_options=FAST)
    assert r.dropped_streams == ["#1 data (TimeCodeHandler)"] and r.row()["dropped_streams"] == r.dropped_streams
    with av.open(str(tmp_path / "out.mov")) as c:
        assert c.streams.video[0].metadata.get("timecode") == "01:02:03:04"


# --- the side-by-side video (--compare) -------------------------------------------------------------


def invert(x):  # noqa: ANN001, ANN201 - a deblur callable whose result cannot be mistaken for its input
    return 1.0 - x


def on_screen(rgb: np.ndarray, matrix: list[int] | None) -> np.ndarray:
    """The picture a player shows: FFmpeg's display matrix maps a stored pixel (p, q) to
    (a*p + c*q, b*p + d*q) on screen (libavutil/display.h), moved to start at (0, 0)."""
    if not matrix:
        return rgb
    a, b, c, d = (round(v / 65536) for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    h, w = rgb.shape[:2]
    q, p = np.mgrid[0:h, 0:w]
    x, y = a * p + c * q, b * p + d * q
    x, y = x - x.min(), y - y.min()
    out = np.zeros((y.max() + 1, x.max() + 1, 3), rgb.dtype)
    out[y, x] = rgb
    return out


def display_matrix_of(frame) -> list[int] | None:  # noqa: ANN001
    sd = next((sd for sd in frame.side_data if sd.type.name == "DISPLAYMATRIX"), None)
    return None if sd is None else [int(v) for v in np.frombuffer(bytes(sd), dtype=np.int32)[:9]]


@pytest.mark.parametrize("rotation", [None, (-90, False), (90, False), (180, False), (-90, True), (0, True)],
                         ids=["none", "portrait-cw", "portrait-ccw", "upside-down", "cw-flipped", "mirrored"])
def test_compare_shows_input_left_and_result_right_on_screen(tmp_path: Path, rotation: tuple[int, bool] | None) -> None:
    """The compare video keeps timing, audio and the display matrix, and on screen (the matrix
    applied as FFmpeg defines it) shows each input frame on the left and its result on the right."""
    src = make_clip(tmp_path / "clip.mov", n=6, rotation=rotation)
    dst, cmp = tmp_path / "out.mov", tmp_path / "out_compare.mov"
    r = deblur_video(src, dst, invert, crf=1, encoder_options=FAST, compare=cmp)
    assert r.compare == str(cmp) and r.row()["compare"] == str(cmp)
    t_in, rgb_in, f_in = video_frames(src)
    t_cmp, rgb_cmp, f_cmp = video_frames(cmp)
    assert t_cmp == pytest.approx(t_in, abs=1e-9) and len(t_cmp) == 6
    assert audio_packets(cmp) == audio_packets(src) == audio_packets(dst)
    matrix = display_matrix_of(f_in[0])
    assert display_matrix_of(f_cmp[0]) == matrix
    for stored_in, stored_cmp in zip(rgb_in, rgb_cmp):
        shown_in, shown_cmp = on_screen(stored_in, matrix), on_screen(stored_cmp, matrix)
        h, w = shown_in.shape[:2]
        assert shown_cmp.shape == (h, 2 * w, 3)
        left, right = shown_cmp[:, :w].astype(int), shown_cmp[:, w:].astype(int)
        assert np.abs(left - shown_in).mean() < 3  # the input, within the codec's loss
        assert np.abs(right - (255 - shown_in.astype(int))).mean() < 3  # the result
    assert_no_temp(tmp_path)


def test_compare_failure_leaves_neither_file(tmp_path: Path) -> None:
    """Interrupted while writing both: neither the output nor the compare video appears, and an
    existing output is kept."""
    src = make_clip(tmp_path / "clip.mp4", n=12, audio=())
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mp4").write_bytes(b"previous")
    calls = []

    def interrupted(x):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        deblur_video(src, out / "clip.mp4", interrupted, batch=4, encoder_options=FAST, compare=out / "clip_compare.mp4")
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"] and (out / "clip.mp4").read_bytes() == b"previous"
    with pytest.raises(VideoError, match="cannot write a video with extension '.png'"):
        deblur_video(src, out / "x.mp4", identity, compare=out / "x_compare.png")
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]


# --- choosing the output container ------------------------------------------------------------------


def test_output_suffix_rule(tmp_path: Path) -> None:
    mp4 = make_clip(tmp_path / "a.MP4", n=3)
    webm_like = make_clip(tmp_path / "b.webm", n=3, codec="libvpx-vp9", audio=("opus",))
    avi = make_clip(tmp_path / "c.avi", n=3, codec="mjpeg", audio=("pcm_s16le",))
    assert output_suffix(mp4) == ".MP4"  # same container, spelt as given
    assert output_suffix(webm_like) == ".mp4"  # WebM cannot hold H.264: MP4 (with Opus) can
    assert output_suffix(webm_like, codec="libvpx-vp9") == ".webm"
    assert output_suffix(avi) == ".avi"


@pytest.mark.parametrize(
    "name, expected",
    [("a.mp4", True), ("B.MOV", True), ("c.mkv", True), ("d.webm", True), ("e.avi", True), ("f.m4v", True),
     ("g.jpg", False), ("h.png", False), ("mp4", False), ("i.mp4.txt", False)],
)
def test_is_video(name: str, expected: bool) -> None:
    assert is_video(name) is expected


# --- bad input --------------------------------------------------------------------------------------


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_truncated_video_without_its_index(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])  # the moov index is at the end: gone
    with pytest.raises(VideoError) as e:
        deblur_video(cut, tmp_path / "out.mp4", identity)
    assert one_line(e).startswith(f"{cut}: not a video FFmpeg can read, corrupt or truncated")
    assert_no_temp(tmp_path)
    assert not (tmp_path / "out.mp4").exists()


def test_truncated_faststart_video(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=12, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.6)])
    with pytest.raises(VideoError) as e:
        deblur_video(cut, tmp_path / "out.mp4", identity)
    assert "truncated video:" in one_line(e) and "of the 12 its header declares" in str(e.value)


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="not a video FFmpeg can read") as e:
        deblur_video(bad, tmp_path / "out.mp4", identity)
    one_line(e)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: empty file \(0 bytes\)$"):
        deblur_video(tmp_path / "empty.mp4", tmp_path / "out.mp4", identity)


def make_audio_only(path: Path) -> Path:
    """A file with five frames of silent mono AAC and no video stream."""
    out = av.open(str(path), "w")
    a = out.add_stream("aac", rate=48000)
    a.layout = "mono"
    for k in range(5):
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 48000, k * 1024
        out.mux(a.encode(af))
    out.mux(a.encode(None))
    out.close()
    return path


def test_audio_only_file(tmp_path: Path) -> None:
    path = make_audio_only(tmp_path / "sound.mp4")
    with pytest.raises(VideoError) as e:
        deblur_video(path, tmp_path / "out.mp4", identity)
    assert one_line(e) == f"{path}: no video stream (an audio-only file)"


def test_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "none.avi"  # AVI keeps an empty video stream (MP4 and Matroska drop or refuse it)
    out = av.open(str(path), "w")
    v = out.add_stream("mjpeg", rate=25)
    v.width, v.height, v.pix_fmt = W, H, "yuvj420p"
    out.start_encoding()
    out.close()
    with pytest.raises(VideoError) as e:
        deblur_video(path, tmp_path / "out.avi", identity)
    assert one_line(e) == f"{path}: zero-length video (no frames)"


def test_resolution_change_mid_stream(tmp_path: Path) -> None:
    # MJPEG frames are independent pictures: packets of a second encoder at another size, muxed
    # into the same stream, make a file whose frames change size at frame 6.
    path = tmp_path / "sizes.mkv"
    out = av.open(str(path), "w")
    v = out.add_stream("mjpeg", rate=25)
    v.width, v.height, v.pix_fmt = W, H, "yuvj420p"
    other = av.CodecContext.create("mjpeg", "w")
    other.width, other.height, other.pix_fmt, other.time_base = 96, 64, "yuvj420p", Fraction(1, 25)
    for i in range(12):
        small = i < 6
        f = av.VideoFrame.from_ndarray(picture(i, *((W, H) if small else (96, 64))), format="rgb24")
        f = f.reformat(format="yuvj420p")
        f.pts, f.time_base = i, Fraction(1, 25)
        packets = v.encode(f) if small else other.encode(f)
        for p in packets:
            if not small:
                p.stream = v
                p.pts = p.dts = i
                p.time_base = Fraction(1, 25)
            out.mux(p)
    out.mux(v.encode(None))
    out.close()
    with av.open(str(path)) as c:
        sizes = [(f.width, f.height) for f in c.decode(video=0)]
    if len(set(sizes)) < 2:
        pytest.skip(f"FFmpeg did not decode a size change from this file ({sorted(set(sizes))})")
    dst = tmp_path / "out" / "sizes.mkv"
    dst.parent.mkdir()
    with pytest.raises(VideoError) as e:
        deblur_video(path, dst, identity, batch=2)
    assert one_line(e) == f"{path}: resolution changes mid-stream at frame 6 (64x48 -> 96x64)"
    assert list(dst.parent.iterdir()) == []  # no output, no temp file


@pytest.mark.parametrize(
    "codec, message",
    [("nope", "cannot write codec 'nope': FFmpeg has no encoder of that name (try libx264)"),
     ("aac", "cannot write codec 'aac': it encodes audio, not video (try libx264)")],
)
def test_unsupported_codec(tmp_path: Path, codec: str, message: str) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=3)
    with pytest.raises(VideoError) as e:
        deblur_video(src, tmp_path / "out.mp4", identity, codec=codec)
    assert one_line(e) == message


def test_container_that_cannot_hold_the_codec(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=3)
    dst = tmp_path / "clip.webm"
    with pytest.raises(VideoError) as e:
        deblur_video(src, dst, identity)
    assert one_line(e) == f"{dst}: the webm container cannot hold h264, aac (use .mp4)"
    assert_no_temp(tmp_path)


def test_encoder_refusing_the_frames(tmp_path: Path) -> None:
    # x264 needs even sizes for 4:2:0: an odd-sized MJPEG clip fails when encoding starts.
    src = make_clip(tmp_path / "odd.mkv", n=3, size=(W + 1, H + 1), codec="mjpeg", audio=())
    dst = tmp_path / "out" / "odd.mkv"
    dst.parent.mkdir()
    with pytest.raises(VideoError) as e:
        deblur_video(src, dst, identity)
    assert one_line(e).startswith(f"{dst}: encoding with libx264 failed")
    assert list(dst.parent.iterdir()) == []


def test_range_outside_the_video(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=5)
    with pytest.raises(VideoError) as e:
        deblur_video(src, tmp_path / "out.mp4", identity, frames=(7, None))
    assert one_line(e) == f"{src}: frame range starts at 7, but the video has 5 frames"
    with pytest.raises(ValueError):
        deblur_video(src, tmp_path / "out.mp4", identity, frames=(3, 2))


def test_deblur_callable_returning_another_shape(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=3)
    with pytest.raises(VideoError, match=r"the deblur function returned .*expected \(3, 3, 48, 64\)"):
        deblur_video(src, tmp_path / "out.mp4", lambda x: x[:, :, :-2], batch=3)
    assert_no_temp(tmp_path)
