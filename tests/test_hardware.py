"""CPU capability detection, thread defaults, and what they make of --precision auto / --threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import textured_rgb
from deblurcli import hardware
from deblurcli.inference import Deblurrer, pick_dtype
from deblurcli.models import create_model

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2 avx2 avx512f {extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu
"""


@pytest.mark.parametrize(
    ("extra", "kind"),
    [("amx_bf16 amx_tile avx512_bf16", "amx"), ("avx512_bf16", "avx512_bf16"), ("avx512_vnni", None), ("", None)],
)
def test_bf16_detection_reads_the_first_processors_flags(tmp_path: Path, extra: str, kind: str | None) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format(extra=extra))
    flags = hardware.cpu_flags(str(info))
    assert "avx512f" in flags and "spectre_v1" not in flags
    assert any(f in flags for f in hardware.BF16_FLAGS) == (kind is not None)


def test_missing_cpuinfo_means_no_flags(tmp_path: Path) -> None:
    assert hardware.cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_thread_defaults() -> None:
    cores = hardware.available_cores()
    assert cores >= 1
    assert 1 <= hardware.default_threads() <= cores
    assert hardware.resolve_threads(3) == 3


def test_auto_precision_follows_the_cpu() -> None:
    want = torch.bfloat16 if hardware.cpu_has_bf16() else torch.float32
    assert pick_dtype("auto", torch.device("cpu")) == want
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16  # allowed on any CPU
    assert pick_dtype("fp32", torch.device("cpu")) == torch.float32


def test_deblurrer_sets_the_thread_count() -> None:
    before = torch.get_num_threads()
    try:
        Deblurrer(create_model("nafnet", width=4), device="cpu", threads=1)
        assert torch.get_num_threads() == 1
        if hardware.available_cores() > 1:
            Deblurrer(create_model("nafnet", width=4), device="cpu", threads=2)
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bf16_output_is_within_8bit_rounding_of_fp32() -> None:
    # The models add a residual to their fp32 input, so bf16 only rounds the residual's arithmetic.
    # The shipped model on a real-looking picture: outputs within half an 8-bit level on average.
    from deblurcli.weights import load_model

    model, _ = load_model("nafnet-s", offline=True)
    x = torch.from_numpy(textured_rgb(192, 256, 3)).permute(2, 0, 1)[None].float() / 255
    a = Deblurrer(model, precision="fp32").deblur(x)
    b = Deblurrer(model, precision="bf16").deblur(x)
    diff = (a - b).abs()
    assert 0 < float(diff.mean()) < 0.5 / 255
    psnr = -10 * np.log10(float((diff**2).mean()))
    assert psnr > 48.0
