"""Blur/sharp training pairs: from videos (frame averaging) and from stills (a virtual camera path).

Both follow the paper's recipe (its section 4) of averaging consecutive sharp frames in *linear
light*: every frame goes through g⁻¹(x) = x^γ, the frames are averaged, and the mean goes back
through g(x) = x^(1/γ) (γ = 2.2 by default). All arithmetic is float; pixels are rounded once, at
the end.

* Videos (:func:`make_pairs`, :func:`pairs_from_video`): decoded with PyAV, streaming, in constant
  memory. Windows of M consecutive frames are sampled over the video and rejected when they span a
  scene cut (adaptive rolling-statistics detector), contain a flash or a fade (luma tests), or are
  static (the average is barely blurrier than the target). ``interpolate=K`` inserts K optical-flow
  frames between neighbours before averaging (the REDS approach) to avoid ghosting at low fps.
* Stills (:func:`synthesize_from_still`): a short virtual video rendered from one photo by a random,
  smooth, curved camera path (a homography per sub-frame: translation, in-plane rotation, zoom,
  perspective) plus optional independently moving foreground patches, then the same averaging. It
  is fast enough to run for every training crop.

The library never prints; progress goes through an ``on_progress`` callback.

Where things live (each module imports only those above it in this list, and nothing of
:mod:`deblurcli.cli`; heavy libraries such as OpenCV and PyAV are imported inside the functions
that use them, and torch never):

* :mod:`~deblurcli.pairs.average`: linear light (g⁻¹ table, :func:`average_frames`), optical-flow
  interpolation (:func:`average_frames_interpolated`), :data:`DEFAULT_GAMMA`.
* :mod:`~deblurcli.pairs.stills`: the virtual camera (:func:`synthesize_from_still`; split into
  :func:`plan_from_still` and :func:`render_plan` for rendering elsewhere).
* :mod:`~deblurcli.pairs.detect`: cut, flash, fade and static tests.
* :mod:`~deblurcli.pairs.config`: :class:`PairsConfig`, :class:`PairsProgress`,
  :class:`SourceResult`, :class:`PairsReport`.
* :mod:`~deblurcli.pairs.store`: PNG encoding, the manifest (:class:`Manifest`), the writer pool.
* :mod:`~deblurcli.pairs.video`: decoding and the sampling pass (:func:`pairs_from_video`).
* :mod:`~deblurcli.pairs.make`: inputs, output names, :func:`make_pairs`, :func:`pairs_from_still`.

Every public name is importable from :mod:`deblurcli.pairs` itself.
"""

from deblurcli.pairs.average import (
    DEFAULT_GAMMA,
    average_frames,
    average_frames_interpolated,
    linear_table,
)
from deblurcli.pairs.config import REJECT_REASONS, PairsConfig, PairsProgress, PairsReport, SourceResult
from deblurcli.pairs.detect import (
    _hsv_features,  # noqa: F401 (tests use it)
    adaptive_ratio,
    content_score,
    luma_verdict,
    motion_fraction,
    transition_kind,
)
from deblurcli.pairs.make import VIDEO_EXTENSIONS, expand_video_inputs, make_pairs, pairs_from_still
from deblurcli.pairs.stills import (
    DEFAULT_MAX_BLUR,
    StillPlan,
    StillSample,
    camera_psf,
    plan_from_still,
    render_plan,
    synthesize_from_still,
)
from deblurcli.pairs.store import MANIFEST, PNG_LEVEL, Manifest, _encode_png  # noqa: F401 (tests use _encode_png)
from deblurcli.pairs.video import pairs_from_video

__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_MAX_BLUR",
    "MANIFEST",
    "PNG_LEVEL",
    "REJECT_REASONS",
    "VIDEO_EXTENSIONS",
    "Manifest",
    "PairsConfig",
    "PairsProgress",
    "PairsReport",
    "SourceResult",
    "StillPlan",
    "StillSample",
    "adaptive_ratio",
    "average_frames",
    "average_frames_interpolated",
    "camera_psf",
    "content_score",
    "expand_video_inputs",
    "linear_table",
    "luma_verdict",
    "make_pairs",
    "motion_fraction",
    "pairs_from_still",
    "pairs_from_video",
    "plan_from_still",
    "render_plan",
    "synthesize_from_still",
    "transition_kind",
]
