"""README's first command, run as written, on the example photo the repository ships.

The command is read from README itself (the first line of its first ``bash`` block), so the test
and the README cannot drift apart. Only its ``deblur`` part runs (the ``pip install .`` part is what
made this checkout importable); it runs in a temp folder holding a copy of the example at the same
relative path, so the command's relative paths are used verbatim and nothing is written into the
checkout. No shared data is needed: the example is in the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from deblurcli.blur import score_image
from deblurcli.images import read_image


def readme_first_command() -> str:
    """The first line of README's first ```bash block: the install-and-run command."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README has no ```bash block"
    return block.group(1).strip().splitlines()[0]


def test_ci_runs_the_test_command_readme_shows() -> None:
    """README's second ```bash block is the test command; ``.ci/run`` installs the test extra and
    runs exactly that as its last step, so a change to one is a change to both."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2, "README has no test command block"
    command = blocks[1].strip()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    steps = [line for line in ci if line and not line.startswith("#")]
    assert steps[-1] == command
    assert any(line.startswith("python -m pip install") and "'.[test]'" in line.replace('"', "'") for line in steps)


def test_readme_first_command_is_install_then_fix_an_example() -> None:
    install, sep, run = readme_first_command().partition(" && ")
    assert (install, sep) == ("pip install .", " && ")
    args = shlex.split(run)
    assert args[:2] == ["deblur", "fix"] and "--compare" in args
    example = Path(args[2])
    assert example.parts[0] == "examples" and (ROOT / example).is_file()
    # A few hundred kB at most: it lives in every clone.
    assert (ROOT / example).stat().st_size < 500_000
    assert (ROOT / "examples" / "ATTRIBUTION.md").is_file()
    assert example.name in (ROOT / "examples" / "ATTRIBUTION.md").read_text(encoding="utf-8")


def test_readme_first_command_deblurs_the_example(tmp_path: Path) -> None:
    args = shlex.split(readme_first_command().partition(" && ")[2])
    example = Path(args[2])
    out_dir = Path(args[args.index("-o") + 1])
    (tmp_path / example).parent.mkdir(parents=True)
    shutil.copy(ROOT / example, tmp_path / example)
    # `python -m deblurcli` is the `deblur` console script of this checkout; offline, as a fresh
    # install must work without the network (the default model is bundled).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "deblurcli", *args[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr

    before = read_image(tmp_path / example)
    after = read_image(tmp_path / out_dir / example.name)
    compare = read_image(tmp_path / out_dir / f"{example.stem}_compare{example.suffix}")
    assert after.pixels.shape == before.pixels.shape
    assert compare.width == 2 * before.width and compare.height == before.height
    # What README tells the user they will see: the blur score before -> after on stderr, and the
    # output file sharper than the input (variance of the Laplacian; an identity model gives ~1.0x).
    shown = re.search(rf"{re.escape(example.name)}\s+blur score ([\d.]+) -> ([\d.]+)", proc.stderr)
    assert shown, proc.stderr
    assert float(shown.group(1)) == round(score_image(before), 1)
    assert score_image(after) > 1.1 * score_image(before)


def test_readme_blind_claim_on_the_example(tmp_path: Path) -> None:
    """README: with ``--model blind`` the example's blur score goes from 11.9 to one of the README's
    numbers (they differ by CPU kind), as the CLI shows it. That it is the same on any number of
    threads is test_blind's (one CLI run here: a second took the suite 70 s more)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    claim = re.search(r"add `--model blind`.*?the example goes from ([\d.]+) to ([\d.]+).*?it goes to ([\d.]+)", text, re.S)
    assert claim, "README no longer states what --model blind does to the example"
    example = ROOT / "examples" / "blurry_dogs.jpg"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "deblurcli", "fix", str(example), "-o", str(tmp_path),
                           "--model", "blind", "--threads", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    row = re.search(r"blurry_dogs\.jpg\s+blur score ([\d.]+) -> ([\d.]+)", proc.stderr)
    assert row, proc.stderr
    before, after = float(row.group(1)), float(row.group(2))
    assert before == float(claim.group(1)) == round(score_image(read_image(example)), 1)
    # The kernel search's L0 thresholds turn a CPU's own FFT rounding into other kernels: README gives
    # the number on each CPU kind measured (Intel Xeon, AMD EPYC); one more kind may need a line there.
    # The Xeon's 68.6 was measured before `fix` scored the written JPEG (on the EPYC that moved 75.4 to
    # 77.5, 2.8%); a Xeon run that lands just outside 3% needs README's number re-measured, not a wider band.
    assert any(abs(after - float(c)) < 0.03 * float(c) for c in claim.group(2, 3)), (after, claim.group(2, 3))
