"""What this machine's CPU can do, and how many threads a run should use. Torch-free.

* bf16: oneDNN runs bf16 convolutions on AMX tiles (Intel Sapphire Rapids and later) and on the
  AVX512-BF16 dot-product instructions (Intel Cooper Lake, AMD Zen 4 and later). On those CPUs bf16
  autocast is 2-4x faster than fp32 for the dense convolutions our models use (``bench/precision.py``);
  elsewhere bf16 is emulated and slower, so ``--precision auto`` stays fp32 there.
* threads: torch's OpenMP threads wait for each other at every operation; when another program
  holds one of the cores, each step waits for the thread that is not running, and a run with as
  many threads as cores becomes 10-50x slower than with one thread fewer. The default is therefore
  the number of cores not already busy (the 1-minute load average), at least 1.
"""

from __future__ import annotations

import os
from functools import lru_cache

#: /proc/cpuinfo flags that mean native bf16 matrix arithmetic.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=4)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (empty where there is none)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AMX-BF16 or AVX512-BF16)."""
    return any(f in cpu_flags() for f in BF16_FLAGS)


def available_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Compute threads for a run: the cores not already busy, at least 1 (see the module docstring)."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, cores - int(busy + 0.5)))


def resolve_threads(threads: int) -> int:
    """``threads`` when positive, else :func:`default_threads`."""
    return threads if threads > 0 else default_threads()
