"""Dataset layouts -> pairs: GoPro (root / split / scene), make-pairs, flat, Levin's naming, --pred/--gt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deblurcli.errors import DatasetError
from deblurcli.layouts import find_pairs, match_folders, scan_pairs


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")  # pairing looks at names only


@pytest.fixture
def gopro(tmp_path: Path) -> Path:
    root = tmp_path / "GOPRO_Large"
    for split, scenes in (("train", ["GOPR0372_07_00", "GOPR0374_11_00"]), ("test", ["GOPR0384_11_00"])):
        for scene in scenes:
            for i in (1, 2):
                for sub in ("blur", "blur_gamma", "sharp"):
                    _touch(root, f"{split}/{scene}/{sub}/{i:06d}.png")
    return root


def test_gopro_root_defaults_to_test_and_offers_train(gopro: Path) -> None:
    test = find_pairs(gopro)
    assert [p.name for p in test] == ["GOPR0384_11_00/000001", "GOPR0384_11_00/000002"]
    assert test[0].blurred == gopro / "test/GOPR0384_11_00/blur/000001.png"
    assert test[0].sharp == gopro / "test/GOPR0384_11_00/sharp/000001.png"
    train = find_pairs(gopro, split="train")
    assert len(train) == 4 and train[0].name == "GOPR0372_07_00/000001"
    gamma = find_pairs(gopro, blur_dir="blur_gamma")
    assert gamma[0].blurred.parent.name == "blur_gamma"
    assert scan_pairs(gopro).layout == "gopro"


def test_gopro_split_and_scene_folders(gopro: Path) -> None:
    assert len(find_pairs(gopro / "train")) == 4
    scene = find_pairs(gopro / "train" / "GOPR0374_11_00")
    assert [p.name for p in scene] == ["000001", "000002"]
    with pytest.raises(DatasetError, match="is the test split"):
        find_pairs(gopro / "test", split="train")
    (gopro / "test").rename(gopro / "elsewhere")
    assert len(find_pairs(gopro)) == 4  # only train/ left: it is used
    with pytest.raises(DatasetError, match="without a test/ split"):
        find_pairs(gopro, split="test")


def test_make_pairs_and_flat_layouts(tmp_path: Path) -> None:
    mp = tmp_path / "mp"
    _touch(mp, "blurred/clip_0001.png", "targets/clip_0001.png", "blurred/clip_0002.png", "targets/clip_0002.png")
    (mp / "pairs.jsonl").write_text("{}\n")
    scan = scan_pairs(mp)
    assert scan.layout == "make-pairs" and [p.name for p in scan.pairs] == ["clip_0001", "clip_0002"]
    flat = tmp_path / "flat"
    _touch(flat, "blur/a.jpg", "sharp/a.png", "blur/sub/b.png", "sharp/sub/b.png", "blur/orphan.png", "sharp/extra.png")
    scan = scan_pairs(flat)
    assert scan.layout == "flat"
    assert [(p.name, p.sharp.name) for p in scan.pairs] == [("a", "a.png"), ("sub/b", "b.png")]
    assert [(u.name, u.reason.split(" in ")[0]) for u in scan.unpaired] == [("orphan", "no ground truth")]


def test_levin_prefix_rule_picks_the_longest_prefix_at_a_separator(tmp_path: Path) -> None:
    root = tmp_path / "levin"
    _touch(root, "sharp/im1.png", "sharp/im10.png", "blur/im1_kernel3_img.png", "blur/im10_kernel1_img.png")
    _touch(root, "blur/im1x_kernel1_img.png")  # 'im1' followed by 'x' is not a prefix match
    scan = scan_pairs(root)
    assert {p.name: p.sharp.name for p in scan.pairs} == {"im1_kernel3_img": "im1.png", "im10_kernel1_img": "im10.png"}
    assert [u.name for u in scan.unpaired] == ["im1x_kernel1_img"]


def test_real_levin2009_pairs(shared_data: Path) -> None:
    pairs = find_pairs(shared_data / "levin2009")
    assert len(pairs) == 32
    assert all(p.sharp.stem == p.name.split("_")[0] for p in pairs)


def test_match_folders_by_relative_path_then_stem(tmp_path: Path) -> None:
    _touch(tmp_path, "pred/s1/x.png", "gt/s1/x.jpg", "pred/y.png", "gt/deep/y.png", "pred/z.png")
    _touch(tmp_path, "gt/s2/w.png", "gt/s3/w.png", "pred/w.png")  # two candidates: ambiguous
    scan = match_folders(tmp_path / "pred", tmp_path / "gt")
    assert {p.name: p.sharp.relative_to(tmp_path / "gt").as_posix() for p in scan.pairs} == {
        "s1/x": "s1/x.jpg",
        "y": "deep/y.png",
    }
    reasons = {u.name: u.reason for u in scan.unpaired}
    assert reasons["z"].startswith("no ground truth") and "several" in reasons["w"]


def test_unknown_layouts_raise_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        find_pairs(tmp_path / "missing")
    _touch(tmp_path, "photos/a.png")
    with pytest.raises(DatasetError, match="not a dataset layout deblur knows") as e:
        find_pairs(tmp_path / "photos")
    assert "\n" not in str(e.value)
    _touch(tmp_path, "ds/blur/a.png", "ds/sharp/a.png")
    with pytest.raises(DatasetError, match="no blur_gamma/ folder"):
        find_pairs(tmp_path / "ds", blur_dir="blur_gamma")
    (tmp_path / "empty" / "blur").mkdir(parents=True)
    (tmp_path / "empty" / "sharp").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        find_pairs(tmp_path / "empty")


def test_layouts_module_is_torch_free() -> None:
    code = "import sys, deblurcli.layouts; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(Path(__file__).parents[1] / "src")})
