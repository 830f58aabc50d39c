"""The precision policy (training.precision): bf16 autocast on a CPU only with native bf16 and a measurement that
says it is faster; forced choices; old manifests; the choice recorded in the experiment."""

import pytest
import torch

from explorer.config import RunConfig
from explorer.training import precision as P

AVX2_ONLY = frozenset({"avx", "avx2", "fma"})
NATIVE = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})


def never_measure():
    raise AssertionError("a CPU without native bf16 must not be measured")


@pytest.mark.parametrize("flags,measured,expect_bf16", [
    (AVX2_ONLY, None, False),              # no native bf16: fp32 without measuring
    (NATIVE, (10.0, 5.0), True),           # native and 2x faster: bf16
    (NATIVE, (10.0, 9.5), False),          # native but not 1.1x faster: fp32
    (NATIVE, (10.0, 20.0), False),         # native but slower: fp32
])
def test_auto_on_cpu_follows_capability_and_measurement(flags, measured, expect_bf16):
    p = P.resolve("auto", "cpu", flags=flags, measure=(lambda: measured) if measured else never_measure)
    assert p.bf16 is expect_bf16
    assert p.setting == "auto" and p.device == "cpu"
    if measured:
        assert (p.fp32_ms, p.bf16_ms) == measured
        assert f"{measured[1]:.2f} ms bf16" in p.reason
    else:
        assert "no native bf16" in p.reason and p.fp32_ms is None


@pytest.mark.parametrize("setting,flags,expect", [("true", AVX2_ONLY, True), ("false", NATIVE, False),
                                                  ("true", NATIVE, True)])
def test_forced_choices_win_and_warn_where_slow(setting, flags, expect):
    p = P.resolve(setting, "cpu", flags=flags, measure=never_measure)
    assert p.bf16 is expect
    assert ("far slower" in p.reason) == (setting == "true" and flags == AVX2_ONLY)


@pytest.mark.parametrize("value,expect", [(True, "true"), (False, "false"), ("AUTO", "auto"), ("yes", "true"),
                                          ("0", "false")])
def test_settings_normalise_including_old_manifests(value, expect):
    assert P.normalise(value) == expect
    assert RunConfig.from_dict({"bf16": value if isinstance(value, bool) else expect}).bf16 == expect


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="auto, true or false"):
        P.normalise("maybe")


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_tile\n")
    flags = P.cpu_flags(f)
    assert {"avx2", "avx512_bf16"} <= flags and P.native_bf16(flags)
    assert P.cpu_flags(tmp_path / "missing") == frozenset()


def test_measurement_returns_two_positive_timings():
    fp32, bf16 = P.measure_cpu(rows=64, d_in=16, d_out=32, reps=3)
    assert fp32 > 0 and bf16 > 0


def test_autocast_really_changes_the_matmul_dtype():
    """What the policy switches on is real: under the chosen autocast a linear layer computes in bf16."""
    from explorer.training.loop import autocast_for

    lin = torch.nn.Linear(4, 4)
    with autocast_for(lin, True):
        assert lin(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast_for(lin, False):
        assert lin(torch.ones(1, 4)).dtype == torch.float32


def test_a_run_records_its_precision_in_the_manifest(tiny_experiment):
    from explorer.experiment.layout import Experiment

    rec = Experiment(tiny_experiment).manifest()["precision"]
    assert rec["setting"] == "false" and rec["bf16"] is False and rec["device"] == "cpu"
