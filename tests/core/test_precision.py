"""`precision: auto` resolves by what the CPU computes natively (the capability check patched), explicit
choices are kept, configs hold the resolved value, and benchmarks' machine description is complete."""

import platform

import pytest
import torch

from protege.core import precision
from protege.core.config import from_dict
from protege.core.errors import UserError
from protege.rl.fit import TrainerConfig
from protege.rl.sac import SACConfig


@pytest.fixture(autouse=True)
def auto_follows_the_hardware(monkeypatch):
    """The suite pins `auto` to fp32 (tests/conftest.py); these tests are about `auto` itself."""
    monkeypatch.delenv("PROTEGE_AUTO_PRECISION", raising=False)



def pretend(monkeypatch, capability: str, flags: set[str], machine: str = "x86_64") -> None:
    """Make this process see another CPU: torch's capability, the CPU flags and the architecture."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(precision, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(precision, "_ANNOUNCED", set())


AVX2 = ("AVX2", {"avx2", "fma"})
SAPPHIRE_RAPIDS = ("AVX512", {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
COOPER_LAKE = ("AVX512", {"avx2", "avx512f", "avx512_bf16"})
SKYLAKE = ("AVX512", {"avx2", "avx512f"})  # AVX512 without bfloat16 instructions


@pytest.mark.parametrize("cpu, expected", [(AVX2, "fp32"), (SKYLAKE, "fp32"), (COOPER_LAKE, "bf16"),
                                           (SAPPHIRE_RAPIDS, "bf16")])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, cpu, expected):
    pretend(monkeypatch, *cpu)
    assert precision.resolve_precision("auto") == expected
    assert precision.native_bf16()[0] == (expected == "bf16")


def test_bf16_flags_without_torchs_avx512_kernels_resolve_to_fp32(monkeypatch):
    """ATEN_CPU_CAPABILITY=avx2 on a CPU with avx512_bf16: torch's bf16 kernels run emulated."""
    pretend(monkeypatch, "AVX2", SAPPHIRE_RAPIDS[1])
    ok, why = precision.native_bf16()
    assert precision.resolve_precision("auto") == "fp32" and not ok and "AVX512 kernels off" in why


def test_arm_needs_the_bf16_feature(monkeypatch):
    pretend(monkeypatch, "SVE256", {"fp", "asimd", "sve", "bf16"}, machine="aarch64")
    assert precision.resolve_precision("auto") == "bf16"
    pretend(monkeypatch, "DEFAULT", {"fp", "asimd"}, machine="aarch64")
    assert precision.resolve_precision("auto") == "fp32"


@pytest.mark.parametrize("cpu", [AVX2, SAPPHIRE_RAPIDS])
def test_an_explicit_choice_is_kept_on_any_cpu(monkeypatch, cpu):
    pretend(monkeypatch, *cpu)
    assert precision.resolve_precision("bf16") == "bf16"
    assert precision.resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        precision.resolve_precision("fp16")


def test_configs_hold_the_resolved_value(monkeypatch):
    from protege.systems.form.experiment import BCConfig, Config, FORMConfig, GAILConfig
    for cpu, expected in ((AVX2, "fp32"), (SAPPHIRE_RAPIDS, "bf16")):
        pretend(monkeypatch, *cpu)
        for cls in (SACConfig, TrainerConfig, FORMConfig, GAILConfig, BCConfig):
            assert cls().precision == expected, cls
        cfg = from_dict(Config, {"sac": {"precision": "auto"}, "gail": {"precision": "fp32"}}, "recipe.yaml")
        assert (cfg.sac.precision, cfg.form.precision, cfg.gail.precision) == (expected, expected, "fp32")
    assert SACConfig(precision="bf16").precision == "bf16"  # on the AVX512-BF16 CPU, and below on AVX2
    pretend(monkeypatch, *AVX2)
    assert SACConfig(precision="bf16").precision == "bf16"


def test_a_bad_precision_fails_at_load_in_one_line():
    with pytest.raises(UserError) as err:
        from_dict(TrainerConfig, {"precision": "half"}, "recipe.yaml")
    assert "precision must be one of auto, fp32, bf16" in str(err.value) and "\n" not in str(err.value)


def test_announce_prints_once_and_warns_of_an_emulated_bf16(monkeypatch, capsys):
    pretend(monkeypatch, *SAPPHIRE_RAPIDS)
    precision.announce({"sac.precision": "bf16"})
    precision.announce({"sac.precision": "bf16"})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "sac.precision=bf16" in err[0] and "warning" not in err[0]
    pretend(monkeypatch, *AVX2)
    precision.announce({"sac.precision": "fp32"})
    precision.announce({"sac.precision": "bf16", "form.precision": "fp32"})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "warning" not in err[0] and "auto picks fp32" in err[0]
    assert err[1].startswith("warning:") and "slower" in err[1] and "set sac.precision to auto or fp32" in err[1]


def test_machine_info_says_where_a_benchmark_ran(monkeypatch):
    pretend(monkeypatch, *COOPER_LAKE)
    info = precision.machine_info()
    for key in ("cpu_model", "cpu_capability", "torch_threads", "load_avg_1m", "precision", "native_bf16"):
        assert key in info, key
    assert info["cpu_capability"] == "AVX512" and info["precision"] == "bf16" and info["bf16_flags"] == ["avx512_bf16"]
    assert info["torch_threads"] == torch.get_num_threads() and isinstance(info["load_avg_1m"], float)
    assert precision.machine_info("fp32")["precision"] == "fp32"
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]


def test_this_machines_flags_are_read():
    """Without patching: on Linux the flags come from /proc/cpuinfo, and the answer matches them."""
    flags = precision.cpu_flags()
    if platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64"):
        assert "sse2" in flags
    native = precision.native_bf16()[0]
    assert precision.resolve_precision("auto") == ("bf16" if native else "fp32")


def test_the_environment_can_pin_what_auto_means(monkeypatch):
    from protege.core import precision
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": (True, "patched"))
    assert precision.resolve_precision("auto") == "bf16"
    monkeypatch.setenv("PROTEGE_AUTO_PRECISION", "fp32")
    assert precision.resolve_precision("auto") == "fp32" and precision.resolve_precision("bf16") == "bf16"
    monkeypatch.setenv("PROTEGE_AUTO_PRECISION", "fp16")
    with pytest.raises(ValueError, match="expected fp32 or bf16"):
        precision.resolve_precision("auto")
