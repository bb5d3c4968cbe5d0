"""Tests of deblurcli.pairs: the stills engine, the video pipeline, and `deblur make-pairs`."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import textured_rgb
from deblurcli.blur import blur_score
from deblurcli.pairs import StillSample, synthesize_from_still


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
