"""Model loading, site naming, and the hook contexts (penalty, projection) on two architectures."""

from __future__ import annotations

import pytest
import torch

from explorer.method.decoupler import penalty
from explorer.method.hooks import capture, count_hooks, project
from explorer.method.subspace import Subspace, random_subspace
from explorer.model.errors import ModelLoadError
from explorer.model.loading import load_model
from explorer.model.sites import all_sites, find_decoder_layers, hidden_size, parse_site, site_name


def test_site_names_round_trip():
    assert site_name(6) == "layer.06"
    assert parse_site("layer.11") == 11
    with pytest.raises(ValueError, match="layer.NN"):
        parse_site("block6")


@pytest.mark.parametrize("arch,layers", [("llama", 3), ("gpt2", 2)])
def test_load_any_local_model_finds_layers(tiny_models, arch, layers):
    model, tok = load_model(tiny_models[arch])
    assert len(find_decoder_layers(model)) == layers
    assert all_sites(model) == tuple(site_name(i) for i in range(layers))
    assert tok.pad_token_id is not None and tok.padding_side == "left"


def test_not_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(tmp_path)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_projection_context_removes_hooks_and_changes_output(tiny_models, arch):
    model, tok = load_model(tiny_models[arch])
    ids = torch.tensor([tok("مرحبا بالعالم")["input_ids"]])
    plain = model(ids).logits
    sub = random_subspace(hidden_size(model), 2, site="layer.01", seed=1)
    assert count_hooks(model) == 0
    with project(model, {"layer.01": sub}, alpha=1.0):
        assert count_hooks(model) == 1
        projected = model(ids).logits
    assert count_hooks(model) == 0
    assert not torch.allclose(plain, projected)
    # toggle off (alpha = 0, and no context at all) is bit-identical to the plain model
    with project(model, {"layer.01": sub}, alpha=0.0):
        zero = model(ids).logits
    assert torch.equal(zero, plain)
    assert torch.equal(model(ids).logits, plain)


def test_hooks_removed_even_on_error(tiny_models):
    model, _ = load_model(tiny_models["llama"])
    with pytest.raises(RuntimeError), capture(model, ["layer.00", "layer.02"]):
        assert count_hooks(model) == 2
        raise RuntimeError("boom")
    assert count_hooks(model) == 0
    with pytest.raises(ValueError, match="does not exist"), capture(model, ["layer.07"]):
        pass
    assert count_hooks(model) == 0


def test_projected_states_have_nothing_in_u(tiny_models):
    model, tok = load_model(tiny_models["llama"])
    ids = torch.tensor([tok("hello world this is a test")["input_ids"]])
    sub = random_subspace(hidden_size(model), 3, site="layer.01", seed=2)
    with project(model, {"layer.01": sub}), capture(model, ["layer.01"]) as st:
        model(ids)
    # capture registered after project: it sees the projected output
    assert torch.allclose(sub.coords(st["layer.01"]), torch.zeros(1), atol=1e-5)


def test_penalty_zero_for_states_orthogonal_to_u():
    d = 16
    basis = torch.linalg.qr(torch.randn(d, 2))[0]
    sub = Subspace(basis, site="layer.00", step=0)
    h = torch.randn(2, 5, d)
    h_perp = sub.project_out(h)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert penalty({"layer.00": h_perp}, {"layer.00": sub}, mask).item() == pytest.approx(0.0, abs=1e-5)
    # and equals the mean norm of the coordinates otherwise, counting only masked tokens
    mask[1] = False
    expected = (h[0] @ basis).norm(dim=-1).mean()
    assert penalty({"layer.00": h}, {"layer.00": sub}, mask).item() == pytest.approx(expected.item(), rel=1e-4)
    sq = penalty({"layer.00": h}, {"layer.00": sub}, mask, squared=True)
    assert sq.item() == pytest.approx(((h[0] @ basis) ** 2).sum(-1).mean().item(), rel=1e-4)
