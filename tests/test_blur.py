"""The blur score and the generator's Laplacian channel agree with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import textured_rgb
from deblurcli.blur import blur_score, laplacian, score_image
from deblurcli.images import Image, read_image


def _cv2_score(path) -> float:
    gray = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
    return cv2.Laplacian(gray, cv2.CV_64F).var()


def test_blur_score_is_opencv_variance_of_laplacian() -> None:
    rng = np.random.default_rng(0)
    checker = (np.indices((64, 48)).sum(axis=0) % 2 * 255).astype(np.uint8)  # Laplacian +-1020: int16's reach
    for gray in (textured_rgb(50, 70)[:, :, 1], rng.integers(0, 256, (720, 1280), dtype=np.uint8), checker,
                 rng.integers(0, 256, (1, 1), dtype=np.uint8), rng.integers(0, 256, (2, 3), dtype=np.uint8)):
        assert blur_score(gray) == pytest.approx(cv2.Laplacian(gray, cv2.CV_64F).var(), rel=1e-12, abs=1e-12)
    assert blur_score(np.full((10, 10), 77, np.uint8)) == 0.0


def test_blur_score_drops_with_blur() -> None:
    gray = textured_rgb(64, 64)[:, :, 0]
    blurred = cv2.GaussianBlur(gray, (9, 9), 3)
    assert blur_score(blurred) < 0.2 * blur_score(gray)


def test_blur_score_rejects_wrong_input() -> None:
    with pytest.raises(ValueError):
        blur_score(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        blur_score(np.zeros((4, 4), np.float32))


def test_scores_equal_opencv_on_shared_images(shared_data) -> None:
    files = sorted((shared_data / "real-blur").iterdir()) + sorted((shared_data / "sharp" / "kodak24").iterdir())
    files += sorted((shared_data / "sharp" / "set14").iterdir())  # greyscale stored both ways
    assert len(files) > 30
    for f in files:
        assert score_image(read_image(f)) == pytest.approx(_cv2_score(f), rel=1e-12), f


def test_max_side_scores_a_downscaled_copy() -> None:
    img = Image(pixels=textured_rgb(200, 100))
    small = cv2.resize(img.gray8(), (50, 100), interpolation=cv2.INTER_AREA)
    assert score_image(img, max_side=100) == blur_score(small)
    assert score_image(img, max_side=500) == score_image(img)  # never upscaled


def test_16bit_scores_on_rounded_8bit_luma() -> None:
    rgb8 = textured_rgb(30, 30)
    img16 = Image(pixels=rgb8.astype(np.uint16) * 257)
    assert score_image(img16) == score_image(Image(pixels=rgb8))


def test_torch_laplacian_matches_opencv_on_luma() -> None:
    import torch

    rgb = textured_rgb(33, 47).astype(np.float32) / 255
    luma = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)
    expected = cv2.Laplacian(luma, cv2.CV_32F)  # BORDER_REFLECT_101, ksize=1: the 4-neighbour kernel
    got = laplacian(torch.from_numpy(rgb.transpose(2, 0, 1))[None])
    assert got.shape == (1, 1, 33, 47)
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=1e-5)


def test_torch_laplacian_shape_checks() -> None:
    import torch

    with pytest.raises(ValueError, match="B, 3, H, W"):
        laplacian(torch.zeros(1, 4, 8, 8))
    assert laplacian(torch.zeros(2, 3, 1, 1)).shape == (2, 1, 1, 1)  # degenerate sizes still work
