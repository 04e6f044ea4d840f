"""Which precision to compute in: `auto` picks bfloat16 only where the hardware computes it natively.

Every setting that can use reduced precision (SAC's networks `sac.precision`, FORM's densities
`form.precision`, the GAIL/GAIfO discriminator `gail.precision`, the offline loop's autocast
`trainer.precision`) takes `auto`, `fp32` or `bf16` and is resolved here when its config is built, so
the run's saved `config.yaml` holds `fp32` or `bf16`, never `auto`.

How `auto` decides: from the CPU's capability, not from a timing. bfloat16 is native on an x86 CPU
when it has the `avx512_bf16` or `amx_bf16` instructions (read from /proc/cpuinfo's flags, or from
torch's own cpuinfo probe where /proc is absent) *and* torch dispatches its AVX512 kernels
(`torch.backends.cpu.get_cpu_capability()` is AVX512; `ATEN_CPU_CAPABILITY=avx2` turns that off), on
an ARM CPU when it lists the `bf16` feature, and on a GPU when `torch.cuda.is_bf16_supported` says
so without emulation. Anything else resolves to fp32. Why flags and not a micro-benchmark:
  * the gap is not subtle: where bfloat16 is emulated (AVX2) SAC runs 10-17x *slower* than in fp32
    (docs/results/form.md), where it is native it is ~1.3-2x faster; a flag check tells them apart;
  * a resumed run must resolve to the same value as the run it continues (its saved config is compared
    with the new one): the flags of a machine never change, while a timing on a shared, loaded machine
    (rounds differ by 20% here) could flip, and a cached timing goes stale when a VM moves host;
  * it costs nothing at start-up.

An explicit `bf16` is honoured everywhere; on a CPU without native bfloat16 the run prints a one-line
warning of the slowdown. `announce` prints the resolved settings once per process when a run starts.

Resuming on another machine: the saved config holds the resolved value, so a run started where `auto`
gave bf16 and resumed where it gives fp32 (or the other way) no longer matches its saved config and
`--resume` refuses it, naming the key (exact resume needs the same arithmetic). Pass the saved value
as an override (e.g. `sac.precision=bf16`) to continue exactly as the run started, at this machine's
speed for that precision.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

import torch

CHOICES = ("auto", "fp32", "bf16")
AUTO_ENV = "PROTEGE_AUTO_PRECISION"
"""set to fp32 or bf16, what `auto` resolves to whatever the hardware (one arithmetic on a mixed
cluster; the test suite pins fp32 so its exact-equality checks mean the same on every CPU)"""
X86_BF16 = ("avx512_bf16", "amx_bf16")
"""x86 flags (as /proc/cpuinfo spells them) of native bfloat16 arithmetic"""


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none: macOS, Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: every core of a machine has the same flags
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 `flags`, ARM `Features`), plus torch's own probe of the x86 bfloat16
    instructions where /proc/cpuinfo is not there."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    if not info:  # torch's private cpuinfo probes: present in torch 2.x, absent in older/newer ones
        probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
        flags |= {flag for flag, name in probes.items() if getattr(torch.cpu, name, lambda: False)()}
    return flags


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def cpu_capability() -> str:
    """torch's CPU kernel level (DEFAULT, AVX2, AVX512, SVE256, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def native_bf16(device: str = "cpu") -> tuple[bool, str]:
    """(whether `device` computes bfloat16 natively, a short reason naming what was checked)."""
    if device.startswith("cuda"):
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        return ok, f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'}"
    capability, flags = cpu_capability(), cpu_flags()
    if platform.machine().lower() in ("aarch64", "arm64"):
        ok = "bf16" in flags
        return ok, f"CPU capability {capability}, {'with' if ok else 'no'} bf16 feature"
    found = sorted(flags & set(X86_BF16))
    ok = capability.startswith("AVX512") and bool(found)
    if ok:
        return True, f"CPU capability {capability} with {'+'.join(found)}"
    if found:
        return False, f"CPU capability {capability} (torch's AVX512 kernels off) despite {'+'.join(found)}"
    return False, f"CPU capability {capability}, no avx512_bf16/amx_bf16"


def resolve_precision(requested: str, device: str = "cpu") -> str:
    """`fp32` or `bf16`: `auto` becomes bf16 where `device` computes it natively, else fp32; an
    explicit choice is kept (a slow explicit bf16 is reported by `announce`, once, when a run starts).
    Raises ValueError for anything else, so a config's `__post_init__` can call it."""
    if requested not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got {requested!r}")
    if requested != "auto":
        return requested
    pinned = os.environ.get(AUTO_ENV)
    if pinned:
        if pinned not in ("fp32", "bf16"):
            raise ValueError(f"{AUTO_ENV}={pinned!r}: expected fp32 or bf16")
        return pinned
    return "bf16" if native_bf16(device)[0] else "fp32"


_ANNOUNCED: set[str] = set()


def announce(settings: dict[str, str], device: str = "cpu") -> str:
    """Print, once per process and to stderr, the resolved precision of each setting and why
    (`settings`: {config key: fp32 | bf16}); a bf16 setting on a CPU without native bfloat16 makes the
    line a warning of the slowdown. Returns the line."""
    native, why = native_bf16(device)
    values = ", ".join(f"{key}={value}" for key, value in settings.items())
    slow = [key for key, value in settings.items() if value == "bf16"] if not native else []
    where = "CPU" if device == "cpu" else device
    if slow:
        line = (f"warning: precision {values}: bf16 was asked for but this {where} has no native "
                f"bfloat16 ({cpu_model()}: {why}); expect it to run several times slower than fp32 "
                f"(SAC 10-17x), set {'/'.join(slow)} to auto or fp32 unless you need bf16 here")
    else:
        line = f"precision {values} ({cpu_model()}: {why}; auto picks {'bf16' if native else 'fp32'})"
    if line not in _ANNOUNCED:
        _ANNOUNCED.add(line)
        print(line, file=sys.stderr, flush=True)
    return line


def machine_info(precision: str | dict | None = None) -> dict:
    """Where a benchmark ran, for its final JSON line: CPU model, torch's CPU capability, whether
    bfloat16 is native, thread counts, load average and the precision measured (default: what `auto`
    resolves to here)."""
    native, _ = native_bf16()
    return {
        "cpu_model": cpu_model(), "cpu_capability": cpu_capability(), "native_bf16": native,
        "bf16_flags": sorted(cpu_flags() & {*X86_BF16, "bf16"}),
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "precision": precision if precision is not None else resolve_precision("auto"),
        "torch": torch.__version__,
    }
