"""Which files are videos, which encoders and containers FFmpeg offers, and opening a video for
reading with a one-line error (:func:`open_video`). Imports PyAV only inside the functions."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deblurcli.errors import VideoError

#: File extensions treated as videos (lower case).
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts"})

#: Extensions written, mapped to FFmpeg's muxer names. MPEG-TS (.mts/.m2ts) is read but not written:
#: FFmpeg cannot tell which codecs its muxer holds, so such inputs get the fallback container.
MUXERS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video by its extension (:data:`VIDEO_EXTENSIONS`); torch-free.

    Args:
        path: a file name or path; the file need not exist.

    Returns:
        True for ``.mp4 .m4v .mov .mkv .webm .avi .mts .m2ts`` (any case).
    """
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def encoder_for(codec: str) -> Any:
    """The FFmpeg video encoder named ``codec``.

    Raises:
        VideoError: FFmpeg has no encoder of that name, or it does not encode video.
    """
    import av

    try:
        enc = av.codec.Codec(codec, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise VideoError(f"cannot write codec {codec!r}: FFmpeg has no encoder of that name (try libx264)") from None
    if enc.type != "video":
        raise VideoError(f"cannot write codec {codec!r}: it encodes {enc.type}, not video (try libx264)")
    return enc


def container_holds(muxer: str, codecs: Sequence[str]) -> bool:
    """Whether FFmpeg's muxer ``muxer`` can hold streams of every codec in ``codecs`` (codec names
    such as ``h264``, ``aac``; an encoder's name is turned into its codec's)."""
    import av

    out = av.open(io.BytesIO(), "w", format=muxer)
    try:
        supported = out.supported_codecs
    finally:
        out.close()
    return all(_codec_name(c) in supported for c in codecs)


def _codec_name(name: str) -> str:
    import av

    try:
        return av.codec.Codec(name, "w").canonical_name
    except (av.codec.codec.UnknownCodecError, ValueError):
        return name


def output_suffix(src: str | Path, codec: str = "libx264") -> str:
    """The extension of the output of ``src``: the same container where it can hold the new video
    codec and every audio codec copied, else ``.mp4`` where that can, else ``.mkv``. Among those, one
    that also holds the input's subtitle codecs is preferred (the input's own container does).

    The input's own extension is kept as written (``.MOV`` stays ``.MOV``). MPEG-TS inputs
    (``.mts``, ``.m2ts``) always take the fallback (see :data:`MUXERS`).

    Args:
        src: the input video (opened to read its audio and subtitle codecs).
        codec: the video encoder that will be used.

    Returns:
        An extension with its dot.

    Raises:
        VideoError: ``src`` cannot be opened as a video, or the codec is not a video encoder.
    """
    enc = encoder_for(codec)
    container = open_video(Path(src))
    try:
        audio = [s.codec_context.name for s in container.streams.audio]
        subtitles = [s.codec_context.name for s in container.streams.subtitles]
    finally:
        container.close()
    suffix = Path(src).suffix
    for wanted in ([enc.name, *audio, *subtitles], [enc.name, *audio]):
        for ext in (suffix, ".mp4", ".mkv"):
            muxer = MUXERS.get(ext.lower())
            if muxer and container_holds(muxer, wanted):
                return ext
    return ".mkv"  # pragma: no cover - Matroska holds every codec FFmpeg encodes


def open_video(path: Path) -> Any:
    """Open a video with PyAV (an ``av`` input container), or raise :class:`VideoError` with a
    one-line reason: missing, not a regular file, empty, unreadable, or without a video stream.
    ``deblur make-pairs`` opens its videos with it too."""
    import av

    from deblurcli.images import file_problem

    if not path.exists():
        raise VideoError(f"{path}: no such file")
    problem = file_problem(path, "video")
    if problem:  # a FIFO or device: FFmpeg would block on it or read for ever
        raise VideoError(f"{path}: {problem}")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{path}: not a video FFmpeg can read, corrupt or truncated ({ffmpeg_reason(e)})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        what = "an audio-only file" if kinds == ["audio"] else f"streams: {', '.join(kinds)}" if kinds else "no streams"
        raise VideoError(f"{path}: no video stream ({what})")
    return container


def ffmpeg_reason(e: BaseException) -> str:
    """FFmpeg's reason, without the file name PyAV appends (the message already starts with it)."""
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).splitlines()[0] if msg else type(e).__name__

