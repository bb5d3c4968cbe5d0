"""Benchmark of `deblur make-pairs`: frames per second against decode-only on the same video.

    python bench/make_pairs.py [VIDEO] [--samples N] [--interpolate K] [--repeat R] [--long SECONDS]

Baseline: PyAV decoding every frame to an RGB array with swscale on the calling thread (the fastest
PyAV path, and how make-pairs converts the frames it averages), in the same process and run. Two
more reference rows: decoding without any conversion, and PyAV's default ``to_ndarray("rgb24")``,
whose swscale slice threads make it ~0.5 ms per 640x360 frame slower on 2 cores (earlier versions
of this bench used it as the baseline, which flattered every ratio). Measured: make_pairs on the
same video with the given settings (default: 100 samples, as the CLI), into a fresh temporary
folder, then with ``--interpolate K`` (default 7). Reports frames/s, the ratio to the baseline (the
issue's target: >= 0.7 without interpolation) and the process CPU time (all threads), splitting
the time into scanning (decode + detectors, no pairs) and pair making (averaging, scoring, PNG
writing). ``ceiling`` is the best ratio the run's CPU time would allow with every core busy all
the time: baseline seconds x cores / CPU seconds. Each timing is the best of ``--repeat`` runs.

The 100 pairs cost the same whatever the video's length, so on a 30 s clip they dominate; a second
table measures a ``--long`` video (default 2 minutes, made from the shared clips, with real cuts).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import av
import cv2

from deblurcli.inputs import InputItem
from deblurcli.pairs import PairsConfig, make_pairs

#: ../shared/data beside the project, as in tests/conftest.py (override with DEBLUR_SHARED_DATA).
SHARED_DATA = Path(os.environ.get("DEBLUR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DEFAULT_VIDEO = SHARED_DATA / "videos" / "shaky_forest_walk.mp4"


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (FFmpeg's and OpenCV's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def decode_only(path: Path, convert: str) -> tuple[int, int, float, float]:
    """Decode every frame; ``convert``: "none", "rgb" (swscale, 1 thread) or "default" (PyAV's
    ``to_ndarray("rgb24")``, threaded swscale)."""
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    t, c0 = time.perf_counter(), cpu_seconds()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            if convert == "rgb":
                reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
            elif convert == "default":
                frame.to_ndarray(format="rgb24")
            n += 1
    return n, 0, cpu_seconds() - c0, time.perf_counter() - t


def pairs_run(path: Path, cfg: PairsConfig) -> tuple[int, int, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t, c0 = time.perf_counter(), cpu_seconds()
        rep = make_pairs([InputItem(path, Path(path.name))], Path(tmp), cfg)
        dt, cpu = time.perf_counter() - t, cpu_seconds() - c0
    (r,) = rep.results
    if r.error:
        raise SystemExit(r.error)
    return r.frames, r.pairs_written, cpu, dt


def best(fn, repeat: int):
    runs = [fn() for _ in range(repeat)]
    return min(runs, key=lambda r: r[-1])


def long_video(path: Path, seconds: float) -> Path:
    """A longer test video of ``seconds``: the shared 640x360 forest and traffic clips, alternated
    until long enough (each join is a real scene cut), encoded once with libx264 at CRF 18."""
    sources = [DEFAULT_VIDEO, SHARED_DATA / "videos" / "slow_traffic_small.mp4"]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        n, need = 0, int(seconds * 30)
        while n < need:
            for src in sources:
                with av.open(str(src)) as c:
                    for frame in c.decode(video=0):
                        if n >= need:
                            break
                        for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                            out.mux(packet)
                        n += 1
        for packet in stream.encode():
            out.mux(packet)
    return path


def measure(video: Path, args: argparse.Namespace, interpolate: bool) -> None:
    base = best(lambda: decode_only(video, "rgb"), args.repeat)
    n, t_dec = base[0], base[-1]
    base_fps = n / t_dec
    rows = [
        ("decode only, no conversion", *best(lambda: decode_only(video, "none"), args.repeat)),
        ("decode only -> RGB (baseline)", *base),
        ("decode only -> RGB, PyAV default to_ndarray", *best(lambda: decode_only(video, "default"), args.repeat)),
    ]
    variants = [
        ("make-pairs, scan only (--samples 1)", PairsConfig(frames=args.frames, samples=1)),
        (f"make-pairs --samples {args.samples}", PairsConfig(frames=args.frames, samples=args.samples)),
    ]
    if interpolate:
        variants.append((
            f"make-pairs --samples {args.samples} --interpolate {args.interpolate}",
            PairsConfig(frames=args.frames, samples=args.samples, interpolate=args.interpolate),
        ))
    for label, cfg in variants:
        rows.append((label, *best(lambda cfg=cfg: pairs_run(video, cfg), args.repeat)))

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"video: {video} ({n} frames), best of {args.repeat}, {cores} cores, OpenCV threads {args.threads}")
    print(f"{'run':<52} {'frames':>7} {'pairs':>6} {'seconds':>8} {'CPU s':>6} {'frames/s':>9} {'ratio':>6} {'ceiling':>8}")
    for label, frames, pairs, cpu, dt in rows:
        fps = frames / dt
        ceiling = cores * frames / cpu / base_fps if cpu > 0 else float("nan")
        print(f"{label:<52} {frames:>7} {pairs:>6} {dt:>8.2f} {cpu:>6.2f} {fps:>9.1f} {fps / base_fps:>6.2f} {ceiling:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--interpolate", type=int, default=7)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1: comparable on a busy machine)")
    ap.add_argument("--long", type=float, default=120.0, metavar="SECONDS",
                    help="also measure a video this long made from the shared clips (0: skip)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    measure(args.video, args, interpolate=args.interpolate > 0)
    if args.long > 0:
        with tempfile.TemporaryDirectory() as tmp:
            print()
            measure(long_video(Path(tmp) / "long.mp4", args.long), args, interpolate=False)


if __name__ == "__main__":
    main()
