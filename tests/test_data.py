"""Training data: layouts -> sources, the fixed validation hold-out, deterministic crops/flips, stills."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import textured_rgb
from deblurcli.data import Item, TrainDataset, collate_drawn, load_validation, open_source, open_sources, render_batch
from deblurcli.errors import DatasetError


def _write(path: Path, rgb8: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR))


def _pair_folder(root: Path, blur: str, sharp: str, n: int, size: tuple[int, int] = (40, 48), same: bool = False) -> Path:
    for i in range(n):
        s = textured_rgb(*size, seed=i)
        b = s if same else cv2.GaussianBlur(s, (5, 5), 2)
        _write(root / blur / f"im{i:02d}.png", b)
        _write(root / sharp / f"im{i:02d}.png", s)
    return root


def test_layouts_are_recognised_and_split(tmp_path: Path) -> None:
    mp = open_source(_pair_folder(tmp_path / "mp", "blurred", "targets", 20), val_fraction=0.1)
    assert mp.layout == "make-pairs" and len(mp.train) == 18 and len(mp.val) == 2
    assert not {i.name for i in mp.train} & {i.name for i in mp.val}
    flat = open_source(_pair_folder(tmp_path / "flat", "blur", "sharp", 3), val_fraction=0.05)
    assert flat.layout == "flat" and len(flat.val) == 1 and len(flat.train) == 2  # at least one held out
    # GoPro with both splits: train/ trains, test/ validates.
    g = tmp_path / "gopro"
    _pair_folder(g / "train" / "GOPR0001_00", "blur", "sharp", 3)
    _pair_folder(g / "test" / "GOPR0002_00", "blur", "sharp", 2)
    gopro = open_source(g)
    assert gopro.layout == "gopro"
    assert all("/train/" in str(i.blurred) for i in gopro.train) and len(gopro.train) == 3
    assert all("/test/" in str(i.blurred) for i in gopro.val) and len(gopro.val) == 2
    # Sharp photos (any nesting): blurred on the fly.
    for i in range(4):
        _write(tmp_path / "photos" / ("a" if i % 2 else "b") / f"p{i}.jpg", textured_rgb(40, 40, seed=i))
    stills = open_source(tmp_path / "photos", val_fraction=0.25)
    assert stills.layout == "stills" and len(stills.train) == 3 and len(stills.val) == 1
    assert all(i.synthetic for i in stills.train)


def test_hold_out_is_stable_and_names_stay_unique(tmp_path: Path) -> None:
    root = _pair_folder(tmp_path / "mp", "blurred", "targets", 12)
    a = open_source(root, val_fraction=0.25)
    b = open_source(root, val_fraction=0.25)
    assert [i.name for i in a.val] == [i.name for i in b.val]
    both = open_sources([root, root], val_fraction=0.25)
    names = [i.name for s in both for i in s.train]
    assert len(names) == len(set(names)) == 18


def test_bad_folders_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        open_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no training data"):
        open_source(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no --data"):
        open_sources([])


def test_crops_share_the_window_and_are_deterministic(tmp_path: Path) -> None:
    # blurred == sharp on disk: any misaligned crop or flip would make the two crops differ.
    root = _pair_folder(tmp_path / "mp", "blurred", "targets", 3, size=(50, 70), same=True)
    src = open_source(root, val_fraction=0)
    ds = TrainDataset(src.train, crop=32, seed=1)
    b, s = ds.sample(0)
    assert b.shape == (32, 32, 3) and b.dtype == np.float32
    np.testing.assert_array_equal(b, s)
    again = TrainDataset(src.train, crop=32, seed=1).sample(0)[0]
    np.testing.assert_array_equal(b, again)  # same (seed, epoch, index) -> same sample
    ds.set_epoch(1)
    assert not np.array_equal(ds.sample(0)[0], b)  # a new epoch draws a new crop
    t_b, t_s = ds[0]
    assert tuple(t_b.shape) == (3, 32, 32) and tuple(t_s.shape) == (3, 32, 32)


def test_small_images_are_padded_and_mismatched_pairs_rejected(tmp_path: Path) -> None:
    root = _pair_folder(tmp_path / "mp", "blurred", "targets", 1, size=(20, 24))
    ds = TrainDataset(open_source(root, val_fraction=0).train, crop=32)
    assert ds.sample(0)[0].shape == (32, 32, 3)
    _write(root / "blurred" / "im00.png", textured_rgb(22, 24))
    with pytest.raises(DatasetError, match="differs"):
        ds.sample(0)


def test_stills_items_are_blurred_on_the_fly(tmp_path: Path) -> None:
    _write(tmp_path / "p.png", textured_rgb(64, 64, seed=3))
    ds = TrainDataset([Item(sharp=tmp_path / "p.png", name="p")], crop=48, seed=0, flip=False, max_blur=12)
    b, s = ds.sample(0)
    assert b.shape == s.shape == (48, 48, 3)
    assert np.abs(b - s).mean() > 0.005  # blurred differs from sharp
    val1 = load_validation([Item(sharp=tmp_path / "p.png", name="p")], crop=32, max_blur=12)
    val2 = load_validation([Item(sharp=tmp_path / "p.png", name="p")], crop=32, max_blur=12)
    np.testing.assert_array_equal(val1[0][1], val2[0][1])  # fixed-seed validation pairs
    assert val1[0][3] == "g2.2"
    assert val1[0][1].shape == (32, 32, 3)


def test_gamma_range_changes_the_synthetic_blur_only_when_asked(tmp_path: Path) -> None:
    """A fixed gamma keeps the paper's pairs bit for bit; a range draws gamma per crop. Averaging
    in linear light brightens blurred edges (Jensen), at gamma 1 the mean brightness is kept."""
    _write(tmp_path / "p.png", textured_rgb(96, 96, seed=4))
    items = [Item(sharp=tmp_path / "p.png", name="p")]
    paper = TrainDataset(items, crop=64, seed=1, flip=False, max_blur=20).sample(0)
    fixed = TrainDataset(items, crop=64, seed=1, flip=False, max_blur=20, gamma=(2.2, 2.2)).sample(0)
    np.testing.assert_array_equal(paper[0], fixed[0])
    flat = TrainDataset(items, crop=64, seed=1, flip=False, max_blur=20, gamma=(1.0, 1.0)).sample(0)
    assert paper[0].mean() - paper[1].mean() > 3 * abs(flat[0].mean() - flat[1].mean())
    ranged = TrainDataset(items, crop=64, seed=1, flip=False, max_blur=20, gamma=(1.0, 2.2))
    means = {round(float(ranged.sample(0)[0].mean() - ranged.sample(0)[1].mean()), 6)}
    ranged.set_epoch(1)
    means.add(round(float(ranged.sample(0)[0].mean() - ranged.sample(0)[1].mean()), 6))
    assert len(means) == 2  # a different gamma (and path) per epoch, deterministic within one


def test_validation_count_and_crop(tmp_path: Path) -> None:
    src = open_source(_pair_folder(tmp_path / "mp", "blurred", "targets", 10, size=(40, 56)), val_fraction=0.5)
    val = load_validation(src.val, count=3, crop=0, multiple=16)
    assert len(val) == 3
    assert all(b.shape == (32, 48, 3) for _, b, _, _ in val)  # whole image rounded down to x16
    assert {kind for *_, kind in val} == {"pairs"}


def test_validation_blurs_photos_at_each_gamma_in_turn(tmp_path: Path) -> None:
    """Photos take the gammas in turn and are labelled with theirs; the default (2.2 alone) keeps the
    validation crops of earlier versions bit for bit. Blur averaged in stored values keeps the
    mean level, blur averaged in linear light brightens it: the two kinds must be scored apart."""
    items = []
    for i in range(4):
        _write(tmp_path / f"p{i}.png", textured_rgb(96, 96, seed=10 + i))
        items.append(Item(sharp=tmp_path / f"p{i}.png", name=f"p{i}"))
    both = load_validation(items, count=0, crop=64, max_blur=20, gammas=(1.0, 2.2))
    assert [kind for *_, kind in both] == ["g1.0", "g2.2", "g1.0", "g2.2"]
    default = load_validation(items, count=0, crop=64, max_blur=20)
    assert [kind for *_, kind in default] == ["g2.2"] * 4
    for i in (1, 3):  # the same gamma and seed: the same crop as before
        np.testing.assert_array_equal(both[i][1], default[i][1])
    for i in (0, 2):  # the same photo and path at the other gamma
        shift_g1 = float(both[i][1].mean() - both[i][2].mean()) * 255
        shift_g22 = float(default[i][1].mean() - default[i][2].mean()) * 255
        assert shift_g22 > 1.0 and abs(shift_g1) < shift_g22 / 3, (shift_g1, shift_g22)
    with pytest.raises(ValueError, match="at least one gamma"):
        load_validation(items, gammas=())


def test_gamma_set_draws_each_value_equally_often(tmp_path: Path) -> None:
    """``gamma_set`` draws one of its values per crop: over many crops both kinds of blur appear,
    about half and half. A gamma-1.0 crop keeps the mean level (|shift| < 0.01 here), a gamma-2.2
    crop brightens it (> 0.02 here: averaging in linear light, Jensen)."""
    _write(tmp_path / "p.png", textured_rgb(96, 96, seed=4))
    items = [Item(sharp=tmp_path / "p.png", name="p")]
    mixed = TrainDataset(items, crop=48, seed=3, flip=False, max_blur=16, gamma=(1.0, 2.2), gamma_set=(1.0, 2.2))
    shifts = []
    for epoch in range(40):
        mixed.set_epoch(epoch)
        blurred, sharp = mixed.sample(0)
        shifts.append(float(blurred.mean() - sharp.mean()))
    kept = sum(abs(x) < 0.01 for x in shifts)
    brightened = sum(x > 0.02 for x in shifts)
    assert kept + brightened == 40, shifts  # each crop is one kind or the other, not in between
    assert 10 <= kept <= 30, shifts  # both kinds, roughly half and half


def test_highlights_only_for_blur_made_in_linear_light(tmp_path: Path) -> None:
    """``highlights`` changes crops blurred at gamma 2.2 and leaves gamma-1.0 crops (frames averaged
    in stored values, each already clipped) exactly as they were."""
    rgb = textured_rgb(96, 96, seed=2)
    rgb[30:50, 30:50] = 255  # a white patch to brighten
    _write(tmp_path / "p.png", rgb)
    items = [Item(sharp=tmp_path / "p.png", name="p")]

    def sample(gamma: float, highlights: float) -> np.ndarray:
        return TrainDataset(items, crop=64, seed=1, flip=False, max_blur=20, gamma=(gamma, gamma), highlights=highlights).sample(0)[0]

    np.testing.assert_array_equal(sample(1.0, 1.0), sample(1.0, 0.0))
    assert np.abs(sample(2.2, 1.0) - sample(2.2, 0.0)).max() > 0.05


def test_blur_rendered_on_a_torch_device_equals_the_loaders(tmp_path: Path) -> None:
    """``TrainDataset(plans=True)`` + :func:`render_batch` (what a GPU trainer does, here on the CPU)
    gives the loader's own samples: the stills engine's OpenCV warps replaced by ``grid_sample``
    agree to a fraction of an 8-bit level, with moving patches, highlights, both gammas and flips;
    a pair source's crops pass through unchanged."""
    rgb = textured_rgb(96, 112, seed=5)
    rgb[20:40, 50:80] = 255  # near-white pixels for the highlights
    _write(tmp_path / "p.png", rgb)
    pairs = open_source(_pair_folder(tmp_path / "pairs", "blur", "sharp", 2, size=(64, 64)))
    items = [Item(sharp=tmp_path / "p.png", name=f"p{i}") for i in range(16)] + pairs.train + pairs.val
    kw = dict(crop=48, seed=4, max_blur=20, gamma_set=(1.0, 2.2), highlights=0.5)
    loader = TrainDataset(items, **kw)
    drawn = [TrainDataset(items, plans=True, **kw)[i] for i in range(len(items))]
    assert any(d.plan is not None and d.plan.objects for d in drawn)  # moving patches were drawn
    assert {d.plan.gamma for d in drawn if d.plan is not None} == {1.0, 2.2}
    assert any(d.flip_x for d in drawn) and any(d.flip_y for d in drawn)
    blurred, sharp = render_batch(collate_drawn(drawn), "cpu")
    assert blurred.shape == sharp.shape == (len(items), 3, 48, 48)
    for i in range(len(items)):
        b, s = loader.sample(i)
        np.testing.assert_array_equal(sharp[i].permute(1, 2, 0).numpy(), s)
        diff = np.abs(blurred[i].permute(1, 2, 0).numpy() - b)
        assert diff.max() < 0.25 / 255, (i, diff.max() * 255)
        if drawn[i].plan is None:
            assert diff.max() == 0.0
