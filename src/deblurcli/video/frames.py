"""The input side of a video: a demux-only probe (frame count, first frame, audio codecs), the
rotation (display matrix) and colour tags, and how swscale converts YUV <-> RGB as the input means it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deblurcli.errors import VideoError
from deblurcli.video.formats import ffmpeg_reason, open_video

#: swscale flags of the two conversions, chosen by measuring round trips (a 4:2:0 clip -> RGB ->
#: 4:2:0, identity in between, planes compared). Swscale's default (its fast path) biased luma by ~1
#: level everywhere. Bicubic chroma upsampling with full horizontal interpolation and accurate
#: rounding on the way in, area-averaged chroma with accurate rounding on the way out: luma within
#: 0.04 levels (mean), chroma within ~0.5-1.3. Nearest-neighbour ("point") chroma in 16-bit RGB was
#: exact (0.04-0.07) but hands the model 2-pixel chroma steps, which it would "sharpen".
SWS_TO_RGB = 4 | 8192 | 262144  # BICUBIC | FULL_CHR_H_INT | ACCURATE_RND
SWS_TO_YUV = 32 | 262144  # AREA | ACCURATE_RND

#: swscale ranges: what "unspecified" means for YUV (tv range, as FFmpeg assumes) and RGB (full).
RANGE_MPEG, RANGE_JPEG = 1, 2


@dataclass
class Probe:
    """What a demux-only pass and the first decoded frame tell about a video."""

    pts: list[int]  # presentation timestamps of the video packets, sorted (frame i has pts[i])
    first: Any  # the first decoded av.VideoFrame
    time_base: Any  # fractions.Fraction of the video stream
    audio_codecs: list[str]


def probe_video(path: Path) -> Probe:
    """Count the video's frames from its packets (demux only, ~1% of decoding) and decode the first.

    Raises:
        VideoError: unreadable, zero frames, a file shorter than its header declares (truncated),
            or undecodable.
    """
    import av

    container = open_video(path)
    try:
        stream = container.streams.video[0]
        pts: list[int] = []
        first = None
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    pts.append(int(packet.pts))
                if first is None and (packet.size or pts):
                    # Decode until the first frame comes out (the decoder may hold a few packets).
                    for frame in packet.decode():
                        first = frame
                        break
        except av.FFmpegError as e:
            raise VideoError(f"{path}: corrupt video, demuxing failed after {len(pts)} packets ({ffmpeg_reason(e)})") from None
        if not pts:
            raise VideoError(f"{path}: zero-length video (no frames)")
        if first is None:
            raise VideoError(f"{path}: corrupt video, no frame could be decoded from {len(pts)} packets")
        declared = int(stream.frames or 0)
        # mp4/mov headers give an exact frame count: fewer packets means the file was cut short
        # (a mid-file cut keeps the moov atom only when it was written first, "faststart").
        if declared and len(pts) < declared:
            raise VideoError(f"{path}: truncated video: {len(pts)} frames of the {declared} its header declares")
        return Probe(sorted(pts), first, stream.time_base, [s.codec_context.name for s in container.streams.audio])
    finally:
        container.close()


def display_matrix(frame: Any, stream: Any) -> list[int] | None:
    """The input's display matrix (9 int32 in FFmpeg's layout), from the frame's side data (FFmpeg
    attaches the stream's to each decoded frame) or else the old ``rotate`` tag; ``None`` if none."""
    for sd in frame.side_data:
        if sd.type.name == "DISPLAYMATRIX":
            return [int(v) for v in np.frombuffer(bytes(sd), dtype=np.int32)[:9]]
    rotate = stream.metadata.get("rotate")
    if rotate:
        try:
            # The tag is clockwise degrees; a display matrix of -angle (counter-clockwise) is the same turn.
            return rotation_matrix(-float(rotate))
        except ValueError:
            return None
    return None


def rotation_matrix(degrees_ccw: float) -> list[int]:
    """FFmpeg's ``av_display_rotation_set``: 16.16 fixed point, last column 2.30."""
    r = math.radians(degrees_ccw)
    c, s = math.cos(r), math.sin(r)
    fx = lambda v: int(round(v * (1 << 16)))  # noqa: E731
    return [fx(c), fx(-s), 0, fx(s), fx(c), 0, 0, 0, 1 << 30]


def matrix_rotation(m: list[int] | None) -> float:
    """Counter-clockwise rotation (degrees) of a display matrix, as ``av_display_rotation_get``."""
    if not m:
        return 0.0
    sx, sy = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if not sx or not sy:
        return 0.0
    deg = -math.degrees(math.atan2(m[1] / sy, m[0] / sx))
    return float(round(deg, 6)) + 0.0  # +0.0: no "-0.0" in --json


@dataclass
class Colour:
    """Colour tags of the input, and what swscale needs to convert YUV <-> RGB as the input means it."""

    color_range: int
    colorspace: int
    color_primaries: int
    color_trc: int
    high_depth: bool  # more than 8 bits per sample: convert through 16-bit RGB

    @classmethod
    def of(cls, frame: Any) -> Colour:
        name = frame.format.name
        rng = int(frame.color_range)
        if not rng:
            # yuvj* formats are full range by definition; other YUV is tv range unless tagged.
            rng = RANGE_JPEG if name.startswith("yuvj") else RANGE_MPEG
        bits = max((c.bits for c in frame.format.components), default=8)
        return cls(rng, int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc), bits > 8)

    @property
    def rgb_format(self) -> str:
        return "rgb48le" if self.high_depth else "rgb24"

    @property
    def scale(self) -> float:
        return 65535.0 if self.high_depth else 255.0

    def sws_colorspace(self) -> int | None:
        # Unspecified (2) or RGB/unknown matrices: swscale's default (BT.601) both ways, a round trip.
        return self.colorspace if self.colorspace in (1, 4, 5, 6, 7, 9, 10) else None


def pix_fmt(enc: Any, src_fmt: str) -> str:
    """The encoder's pixel format: the input's where the encoder takes it, else yuv420p, else its first.
    ``yuvj*`` (deprecated) becomes ``yuv*`` tagged full range."""
    fmts = [f.name for f in (enc.video_formats or [])]
    want = src_fmt.replace("yuvj", "yuv")
    if not fmts or want in fmts:
        return want
    return "yuv420p" if "yuv420p" in fmts else fmts[0]

