"""The output side of a video: a temp file renamed into place (:class:`Writer`), the output streams
set up from the input's (:func:`setup_output`), and audio and subtitle packets copied
(:func:`mux_copied`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from deblurcli.errors import VideoError
from deblurcli.video.formats import ffmpeg_reason
from deblurcli.video.frames import Colour, Probe, pix_fmt

#: Container tags not copied: they describe the input file's muxing, not the footage.
_DROP_CONTAINER_TAGS = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands"})
#: Stream tags not copied to the re-encoded video stream: they describe the old encoding (Matroska's
#: statistics tags would be wrong), or are written in another form (``rotate``: the display matrix).
_DROP_STREAM_TAGS = frozenset({"encoder", "duration", "bps", "number_of_frames", "number_of_bytes", "rotate", "vendor_id"})


def _copy_tags(dst: Any, src: dict[str, str], drop: frozenset[str]) -> None:
    for k, v in src.items():
        lk = k.lower()
        if lk in drop or lk.startswith("_statistics"):
            continue
        dst[k] = v


class Writer:
    """One output file: a temp file beside ``dst`` renamed over it by :meth:`commit`, so an
    interrupted run leaves no half-written output (:meth:`abort` removes the temp file)."""

    def __init__(self, dst: Path, muxer: str) -> None:
        import av

        self.dst = dst
        prefix = f".{dst.name[:200]}."
        try:
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=dst.parent)
        except OSError as e:
            raise VideoError(f"{dst}: cannot write: {e.strerror or e}") from None
        os.close(fd)
        self.tmp = Path(tmp)
        try:
            # The temp name ends in .tmp: the muxer is named, not guessed from it.
            self.container = av.open(str(self.tmp), "w", format=muxer)
        except (av.FFmpegError, OSError) as e:
            self.tmp.unlink(missing_ok=True)
            raise VideoError(f"{dst}: cannot write: {ffmpeg_reason(e)}") from None
        self.video: Any = None
        self.copied: dict[int, Any] = {}  # input stream index -> output stream (audio, subtitles)
        self.closed = False

    def mux(self, packets: Any) -> None:
        for p in packets:
            self.container.mux(p)

    def close(self) -> None:
        """Write the file's trailer (idempotent); it stays a temp file until :meth:`commit`."""
        if not self.closed:
            self.closed = True
            self.container.close()

    def commit(self) -> None:
        """Close the file, flush it to disk and rename it over ``dst``."""
        from deblurcli.images import new_file_mode

        self.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(self.tmp, new_file_mode(self.dst))
        os.replace(self.tmp, self.dst)

    def abort(self) -> None:
        """Close (if not closed) and remove the temp file."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a half-written file may fail; it is removed anyway
            pass
        self.tmp.unlink(missing_ok=True)


def setup_output(
    writer: Writer, container: Any, vin: Any, copied: list[Any], enc: Any, probe: Probe, colour: Colour,
    matrix: list[int] | None, crf: int | None, encoder_options: dict[str, str] | None, src: Path, dst: Path,
    size: tuple[int, int] | None = None,
) -> None:
    """Add the output's video stream (same size unless ``size`` (width, height) is given, time base,
    colour tags, display matrix) and one stream per input stream in ``copied`` (audio, subtitles),
    copied packet for packet; copy container and stream tags."""
    import av

    out = writer.container
    _copy_tags(out.metadata, dict(container.metadata), _DROP_CONTAINER_TAGS)
    rate = vin.average_rate or vin.guessed_rate
    options = dict(encoder_options or {})
    if crf is not None and enc.name in ("libx264", "libx265", "libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"):
        options.setdefault("crf", str(crf))
        if enc.name in ("libvpx-vp9", "libvpx"):
            options.setdefault("b", "0")  # constant quality, not capped by a default bit rate
    try:
        v = out.add_stream(enc.name, rate=rate, options=options)
    except (av.FFmpegError, ValueError) as e:
        raise VideoError(f"{dst}: cannot set up encoder {enc.name} ({ffmpeg_reason(e)})") from None
    v.width, v.height = size or (probe.first.width, probe.first.height)
    v.pix_fmt = pix_fmt(enc, probe.first.format.name)
    # The encoder and the stream count in the input's time base, so every pts is carried over as is.
    v.time_base = probe.time_base
    v.codec_context.time_base = probe.time_base
    cc = v.codec_context
    cc.color_range = colour.color_range
    cc.colorspace, cc.color_primaries, cc.color_trc = colour.colorspace, colour.color_primaries, colour.color_trc
    if vin.sample_aspect_ratio:
        cc.sample_aspect_ratio = vin.sample_aspect_ratio
    if matrix is not None:
        v.set_display_matrix(matrix)
    _copy_tags(v.metadata, dict(vin.metadata), _DROP_STREAM_TAGS)
    writer.video = v
    for s in copied:
        c = out.add_stream_from_template(s)
        c.time_base = s.time_base
        _copy_tags(c.metadata, dict(s.metadata), frozenset({"encoder"}))
        writer.copied[s.index] = c


def mux_copied(packet: Any, writers: list[Writer], *, tb_offset: float | None, t_end: float, left: set[int]) -> None:
    """Copy one audio or subtitle packet into each of ``writers`` if it starts before ``t_end``; with
    a range (``tb_offset`` seconds, the range's start), only packets from there on, shifted to start
    at 0. A stream's index leaves ``left`` at its first packet past ``t_end`` (or its end)."""
    import av

    if packet.dts is None or packet.pts is None:
        left.discard(packet.stream.index)  # the end-of-stream flush packet
        return
    tb = packet.time_base
    t = float(packet.pts * tb)
    if t >= t_end:
        left.discard(packet.stream.index)
        return
    if tb_offset is None:
        pass  # the whole video: every packet, timestamps as they are (AAC priming packets included)
    elif t < tb_offset:
        return
    else:
        shift = round(tb_offset / tb)
        packet.pts -= shift
        packet.dts -= shift
    index = packet.stream.index
    # Muxing hands the packet's data to the muxer, so every writer but the last gets a copy.
    for k, writer in enumerate(writers):
        p = packet
        if k < len(writers) - 1:
            p = av.Packet(bytes(packet))
            p.pts, p.dts, p.duration, p.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
            p.is_keyframe = packet.is_keyframe
        p.stream = writer.copied[index]
        writer.container.mux(p)
