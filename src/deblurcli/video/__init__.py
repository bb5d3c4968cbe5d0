"""Video files <-> frames, with PyAV (FFmpeg): deblur every frame of a video, keeping the rest.

:func:`deblur_video` decodes a video, hands its frames in small batches to a callable (a
:class:`deblurcli.inference.Deblurrer`'s ``deblur``, say) as (B, 3, H, W) float RGB in [0, 1], and
encodes what comes back. It is streamed: memory holds one batch (plus the codecs' own look-ahead),
whatever the video's length. What is kept from the input:

- **audio**: every audio stream is copied packet for packet (remuxed, never re-encoded);
- **timing**: each frame keeps its timestamp (pts, in the input stream's time base; a container
  with a coarser clock, Matroska's 1 ms, rounds to it), so variable frame rate stays variable;
- **rotation**: the display matrix (or an old-style ``rotate`` tag) is written back as a display
  matrix; the pixels are not turned;
- **colour**: range (tv/pc), matrix (colorspace), primaries and transfer tags, and the RGB <-> YUV
  conversions use that matrix and range (a BT.709 video is not converted as BT.601);
- **metadata**: container tags (``creation_time``, ``title``, ``location`` ...) and stream tags
  (``language``, ``handler_name``), less those that describe the old encoding.

- **subtitles**: copied packet for packet where the output container holds their codec (the input's
  own container does; with ``frames``, the cues that start inside the range).

Data streams (GoPro telemetry, QuickTime timecode tracks: the video stream's ``timecode`` tag is kept,
and the muxer writes its own track from it) and attachments are not written; the result names them
(:attr:`VideoResult.dropped_streams`).

This module imports neither torch nor OpenCV at import time (:func:`is_video` is what the CLI needs
to route inputs); :func:`deblur_video` imports torch when call

Modules: :mod:`~deblurcli.video.formats` (which files are videos, encoders, containers, opening),
:mod:`~deblurcli.video.frames` (probe, rotation, colour), :mod:`~deblurcli.video.writer` (the output
file and its streams), :mod:`~deblurcli.video.deblur` (:func:`deblur_video`).
"""

from deblurcli.video.deblur import (
    DeblurFrames,
    VideoProgress,
    VideoResult,
    deblur_video,
)
from deblurcli.video.formats import (
    MUXERS,
    VIDEO_EXTENSIONS,
    container_holds,
    encoder_for,
    is_video,
    open_video,
    output_suffix,
)

__all__ = [
    "MUXERS",
    "VIDEO_EXTENSIONS",
    "DeblurFrames",
    "VideoProgress",
    "VideoResult",
    "container_holds",
    "deblur_video",
    "encoder_for",
    "is_video",
    "open_video",
    "output_suffix",
]
