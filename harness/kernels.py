"""Which CPU kernels torch runs: the native ones (fastest here) or portable ones (the same sums on any x86
CPU with AVX2).

torch's own kernels, oneDNN (convolutions) and MKL (matrix products) each pick vector code for the CPU
they find. AVX-512 and AVX2 code add floats in other orders, and whether a backdoor survives SEAM can turn
on that (docs/robust-seam.md, "The demo on one set of round files"). `SEAM_HARNESS_KERNELS=portable` holds
all three to their AVX2 code paths, MKL in its conditional-numerical-reproducibility mode. It is read from
the environment because the kernels are fixed when torch loads: harness/__init__.py applies it before
anything imports torch, and worker processes inherit it. This module must not import torch at its top.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import MutableMapping
from pathlib import Path

SWITCH = "SEAM_HARNESS_KERNELS"
PORTABLE_SETTINGS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
X86 = ("x86_64", "amd64", "i686", "i386")


def has_avx2(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's flags list AVX2 and FMA (the AVX2 code paths use both)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return {"avx2", "fma"} <= flags
    return False


def read_cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def apply_kernel_choice(
    environ: MutableMapping[str, str] = os.environ, machine: str | None = None, cpuinfo: str | None = None
) -> str | None:
    """Set the portable kernels' variables in `environ` when the switch asks for them and the CPU can run
    them; returns a warning to print, or None."""
    choice = environ.get(SWITCH, "native")
    if choice == "native":
        return None
    if choice != "portable":
        return f"{SWITCH}={choice!r} is neither native nor portable: using the native kernels"
    machine = (machine or platform.machine()).lower()
    if machine not in X86:
        return f"{SWITCH}=portable needs an x86 CPU, this one is {machine}: using the native kernels"
    if not has_avx2(read_cpuinfo() if cpuinfo is None else cpuinfo):
        return f"{SWITCH}=portable: AVX2 not found in /proc/cpuinfo: using the native kernels"
    if "torch" in sys.modules:
        return f"{SWITCH}=portable: torch was imported before harness, its kernels are already chosen"
    environ.update(PORTABLE_SETTINGS)
    return None


def kernels_in_effect() -> str:
    """For the result rows: "portable", or "native" and the vector code torch uses (e.g. "native AVX512")."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    pinned = all(os.environ.get(name) == value for name, value in PORTABLE_SETTINGS.items())
    return "portable" if pinned and capability == "AVX2" else f"native {capability}"
