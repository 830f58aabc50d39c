"""explorer.names: the one owner of model ids, arm kinds, λ of an arm and display names."""

from __future__ import annotations

import pytest

from explorer import names
from explorer.config import RunConfig


@pytest.mark.parametrize("arm, seed, name", [("decoupled", 1, "decoupled.s1"), ("baseline", 0, "baseline.s0"),
                                             ("decoupled-lam0.1", 2, "decoupled-lam0.1.s2"),
                                             ("random", 12, "random.s12")])
def test_model_id_and_parse_model_are_inverse(arm, seed, name):
    assert names.model_id(arm, seed) == name
    assert names.parse_model(name) == (arm, seed)
    assert names.arm_of(name) == arm and names.seed_of(name) == seed


@pytest.mark.parametrize("bad", ["decoupled", "decoupled.s", ".s1", "decoupled.sx", "reference", ""])
def test_parse_model_refuses_what_is_not_a_model(bad):
    with pytest.raises(ValueError, match="is not a model name"):
        names.parse_model(bad)
    assert names.arm_of(bad) == bad and names.seed_of(bad) is None


@pytest.mark.parametrize("arm, lam", [("decoupled-lam0.1", 0.1), ("decoupled-lam1", 1.0), ("decoupled-lam0.001", 1e-3),
                                      ("decoupled", 0.05), ("random", 0.05), ("baseline", 0.05)])
def test_arm_lam_reads_the_sweep_value_else_the_runs(arm, lam):
    assert names.arm_lam(arm, 0.05) == lam
    assert RunConfig(lam=0.05).arm_lam(arm) == lam


@pytest.mark.parametrize("lam", [0.1, 1.0, 0.003, 2.5])
def test_sweep_arm_round_trips_through_arm_lam(lam):
    arm = names.sweep_arm(lam)
    assert names.arm_kind(arm) == "decoupled" and names.arm_lam(arm, 99.0) == lam


@pytest.mark.parametrize("name, shown", [("decoupled.s1", "decoupled · seed 1"), ("base", "base (before fine-tuning)"),
                                         ("decoupled", "decoupled (probe + penalty)"),
                                         ("decoupled-lam0.1", "decoupled-lam0.1 (probe + penalty)"),
                                         ("reference", "reference")])
def test_model_label(name, shown):
    assert names.model_label(name) == shown


def test_first_of_takes_the_first_seed_of_an_arm_and_a_full_name_as_is():
    models = ["base", "baseline.s0", "baseline.s1", "decoupled-lam0.1.s0", "decoupled.s0", "decoupled.s1"]
    assert names.first_of(models, "decoupled") == "decoupled.s0"          # not the sweep arm listed before it
    assert names.first_of(models, "decoupled.s1") == "decoupled.s1"
    assert names.first_of(models, "random") is None
