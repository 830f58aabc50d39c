"""Representation and geometry caches on a real tiny experiment, and the read API the app uses (issue 3).

The checks: files for every model and checkpoint with aligned rows; values equal a direct recomputation; cached
geometry equals recomputed geometry; damaged or incompatible caches are detected and rebuilt, never misread; UMAP
results are cached per parameters; every ``ExperimentView`` method returns the documented shape."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.analysis.geometry import UmapParams, geometry_table, mean_energy_share
from explorer.analysis.repcache import REPRESENT_VERSION, entry_key, read_probe_bases
from explorer.config import preset_config
from explorer.data.rundata import load_run_data
from explorer.data.varieties import HR
from explorer.experiment import results as results_mod
from explorer.experiment import view as experiment_mod
from explorer.experiment.layout import Experiment
from explorer.experiment.models import load_arm
from explorer.experiment.progress import Progress
from explorer.experiment.refits import subspace_at
from explorer.experiment.represent import stage_represent
from explorer.experiment.view import ExperimentView, list_experiment_dirs, load_experiment
from explorer.files import StoreError, read_json, write_json
from explorer.method.hooks import capture
from explorer.method.subspace import Subspace
from explorer.model.sites import site_name

pytestmark = pytest.mark.slow

_TINY = preset_config("tiny")
FIRST, LAST = _TINY.ckpt_every, _TINY.steps  # the first and the last checkpoint of every arm
MODELS = ("base", *(f"{a}.s{s}" for a in ("baseline", "decoupled", "random") for s in _TINY.seeds))
PEN = site_name(_TINY.n_layers // 2)  # the default penalised site: the middle layer
OTHER = site_name(0)  # not penalised (the middle layer is never layer 0 with 2+ layers)
assert FIRST < LAST


@pytest.fixture(scope="module")
def view(tiny_experiment) -> ExperimentView:
    return load_experiment(tiny_experiment)


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def _rebuild(root: Path, *, force_check: bool = True) -> Experiment:
    exp = Experiment(root)
    cfg = exp.config()
    stage_represent(exp, cfg, load_run_data(cfg), Progress(exp, bar=False), force_check=force_check)
    return exp


def _all_matrices(v: ExperimentView) -> dict[tuple[str, int, str], np.ndarray]:
    return {(m, s, site): v.representations(m, s, site) for m in v.models for s in v.checkpoints(m)
            for site in v.sites}


# ---------------------------------------------------------------- files and alignment


def test_files_for_every_model_and_checkpoint(view):
    cfg = view.config
    assert view.models == MODELS
    assert view.varieties == (HR, "arz", "ary") and "eng" not in view.varieties   # --n-dialects 2: table order
    assert view.sites == tuple(site_name(i) for i in range(cfg.n_layers))
    n_rows = len(view.varieties) * cfg.analysis_size
    for model in view.models:
        steps = view.checkpoints(model)
        assert steps == ([0] if model == "base" else list(range(cfg.ckpt_every, cfg.steps + 1, cfg.ckpt_every)))
        for step in steps:
            path = view.exp.represent_dir / model / f"step-{step:06d}.safetensors"
            assert path.is_file()
            for site in view.sites:
                x = view.representations(model, step, site)
                assert x.shape == (n_rows, cfg.d_model) and x.dtype == np.float32
                assert np.isfinite(x).all()
    man = read_json(view.exp.represent_dir / "manifest.json")
    assert man["format_version"] == REPRESENT_VERSION and man["fingerprint"] == view.exp.fingerprint
    assert len(man["entries"]) == 1 + (len(MODELS) - 1) * len(view.checkpoints("decoupled.s0"))
    # every (model, checkpoint) has its post-hoc probe at every site
    assert all(set(e["probes"]["sites"]) == set(view.sites) for e in man["entries"].values())
    assert all(e["bytes"] == (view.exp.represent_dir / e["file"]).stat().st_size for e in man["entries"].values())


def test_index_rows_are_aligned_translations(view):
    idx = view.index()
    assert list(idx.columns) == ["row", "sent_id", "variety", "split", "text"]
    assert idx["row"].tolist() == list(range(len(idx)))
    assert (idx["split"] == "test").all()
    assert idx["variety"].unique().tolist() == list(view.varieties)  # grouped, in order
    cfg = view.config
    data = load_run_data(cfg)
    want = data.corpus.split("test")["sent_id"].tolist()[: cfg.analysis_size]
    for v in view.varieties:
        block = idx[idx["variety"] == v]
        assert block["sent_id"].tolist() == want
        test = data.corpus.split("test").set_index("sent_id")
        assert block["text"].tolist() == test.loc[want, v].tolist()


# ---------------------------------------------------------------- values


def test_values_equal_a_direct_recomputation(view, tiny_experiment):
    """One sentence at a time, no padding: layer.00 from output_hidden_states, the middle layer through a hook."""
    exp = Experiment(tiny_experiment)
    model, tok = load_arm(exp, view.config, "decoupled.s0", LAST, device="cpu")
    model.eval()
    texts = view.index()["text"].tolist()
    by_hand = {OTHER: [], PEN: []}
    with torch.no_grad():
        for text in texts:
            ids = [tok.bos_token_id] + tok(" " + text.strip(), add_special_tokens=False)["input_ids"]
            ids = ids[: 1 + view.config.max_len]
            with capture(model, [PEN], detach=True) as st:
                out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            by_hand[OTHER].append(out.hidden_states[1][0, 1:].mean(0).numpy())  # bos left out
            by_hand[PEN].append(st[PEN][0, 1:].mean(0).numpy())
    for site, rows in by_hand.items():
        want = np.stack(rows)
        got = view.representations("decoupled.s0", LAST, site)
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * scale)  # float16 storage


# ---------------------------------------------------------------- geometry


def test_cached_geometry_equals_recomputed(view):
    """Every geometry number equals a direct recomputation: energy in the model's own (post-hoc) subspace at every
    site, and for decoupled and random arms also in the subspace they were trained against at the penalised site."""
    n = view.config.analysis_size
    pen = view.penalised_sites
    assert pen == (PEN,)
    checked = 0
    for model in view.models:
        for step in view.checkpoints(model):
            for site in view.sites:
                x = view.representations(model, step, site)
                reps = {v: x[i * n:(i + 1) * n] for i, v in enumerate(view.varieties)}
                own = view.subspace(model, step, site) if view.arm_of(model) != "decoupled" else None
                entry = read_json(view.exp.represent_dir / "manifest.json")["entries"][entry_key(model, step)]
                basis = read_probe_bases(view.exp.represent_dir, entry)[site]
                if own is not None:   # the switch's subspace for these models is their post-hoc probe
                    assert own.kind == "posthoc" and own.rank == basis.shape[1]
                want = pd.DataFrame(geometry_table(reps, hr=HR, basis=basis))
                got = view.geometry(model, step, site)
                assert got["variety"].tolist() == want["variety"].tolist()
                for col in ("centroid_cosine", "centroid_l2", "paired_cosine", "cka", "energy_share_mean"):
                    np.testing.assert_allclose(got[col].astype(float), want[col].astype(float), rtol=1e-9,
                                               atol=1e-12, err_msg=f"{model} {step} {site} {col}")
                trained = view.arm_of(model) in ("decoupled", "random") and site in pen
                assert got["energy_share_train"].notna().all() == trained, (model, site)
                if trained:
                    sub = subspace_at(view.exp, step, site, model)[0]
                    want_train = [mean_energy_share(reps[v], sub.basis.double().numpy()) for v in got["variety"]]
                    np.testing.assert_allclose(got["energy_share_train"].astype(float), want_train, rtol=1e-9)
                    assert (got["subspace_step"] == sub.step).all()
                checked += 1
    assert checked == len(view.sites) * sum(len(view.checkpoints(m)) for m in view.models)


def test_subspace_is_the_latest_accepted_refit_at_or_before_the_step(view):
    refits = view.refits("decoupled.s0")
    steps = refits["step"].tolist()
    assert steps == sorted(steps) and steps[0] == 0 and refits["accepted"].all()
    for step in (0, FIRST - 1, FIRST, FIRST + 1, LAST):
        sub = view.subspace("decoupled.s0", step, PEN)
        assert isinstance(sub, Subspace) and sub.kind == "probe" and sub.step == max(s for s in steps if s <= step)
    # other models (and sites without a training subspace) use their own post-hoc probe at that checkpoint
    assert view.subspace("decoupled.s0", LAST, OTHER).kind == "posthoc"
    assert view.subspace("baseline.s1", LAST, PEN).kind == "posthoc"
    assert view.subspace("random.s0", FIRST, PEN).kind == "posthoc"
    p = view.projection("baseline.s0", LAST, 1.0)
    assert p.active and p.sites == (PEN,) and p.subspaces[PEN].kind == "posthoc"
    assert not view.projection("baseline.s0", LAST, 0.0).active


def test_posthoc_probes_are_recorded_per_model_checkpoint_and_site(view):
    ph = view.posthoc()
    assert len(ph) == len(view.sites) * sum(len(view.checkpoints(m)) for m in view.models)
    # an accuracy is a count of held-out tokens: accuracy × n_heldout is a whole number (to the stored rounding)
    hits = ph["accuracy"] * ph["n_heldout"]
    assert (abs(hits - hits.round()) <= 1e-4 * ph["n_heldout"] + 1e-9).all() and (ph["chance"] == 0.5).all()
    assert (ph["n_heldout"] > 0).all() and set(ph["seed"].dropna()) == set(view.seeds)


def test_posthoc_probes_read_the_tagged_source(view, tiny_experiment):
    """The post-hoc probes read each analysis sentence after its variety tag, as the training probe reads a source
    (``[bos, <arz>] text``), while the representations read it bare: the states at the text's tokens differ, and the
    sampled token states equal a direct recomputation of the tagged pass."""
    from explorer.analysis.pooling import pool_and_sample
    from explorer.experiment.represent import probe_heads
    assert set(view.posthoc()["input"]) == {"tagged source"}
    exp = Experiment(tiny_experiment)
    model, tok = load_arm(exp, view.config, "baseline.s0", LAST, device="cpu")
    model.eval()
    index = view.index().iloc[[0, len(view.index()) - 1]]      # an MSA and a dialect sentence
    heads = probe_heads(model, tok, index, [HR, *view.dialects, "eng"], view.config.max_len)
    tags = [tok.convert_ids_to_tokens(h[-1]) for h in heads]
    assert tags == [f"<{v}>" for v in index["variety"]] and all(h[0] == tok.bos_token_id for h in heads)
    texts = index["text"].tolist()
    tagged = pool_and_sample(model, tok, texts, [PEN], max_len=view.config.max_len, heads=heads,
                             tokens_per_text=1000)
    bare = pool_and_sample(model, tok, texts, [PEN], max_len=view.config.max_len, tokens_per_text=1000)
    with torch.no_grad():
        for i, text in enumerate(texts):
            ids = heads[i] + tok(" " + text.strip(), add_special_tokens=False)["input_ids"][: view.config.max_len]
            with capture(model, [PEN], detach=True) as st:
                model(input_ids=torch.tensor([ids]))
            want = st[PEN][0, len(heads[i]):].float().numpy()
            got = tagged.tokens[PEN][tagged.token_rows == i]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(tagged.sentences[PEN][i], want.mean(0), rtol=1e-4, atol=1e-4)
            assert not np.allclose(bare.tokens[PEN][bare.token_rows == i], want, atol=1e-3)


def test_energy_share_in_unit_interval(view):
    g = view.geometry_long()
    assert g["energy_share_mean"].notna().all()          # every site has the model's own subspace
    assert ((g["energy_share_mean"] > 0) & (g["energy_share_mean"] <= 1)).all()
    assert set(g["variety"]) == set(view.varieties)  # HR has its own energy row
    trained = g[g["model"].str.startswith(("decoupled", "random")) & g["site"].isin(view.penalised_sites)]
    assert len(trained) and trained["energy_share_train"].between(0, 1).all()
    assert g.loc[~g.index.isin(trained.index), "energy_share_train"].isna().all()


def test_energy_heatmap(view):
    hm = view.energy_heatmap("decoupled.s1", PEN)
    assert list(hm.index) == list(view.varieties)
    assert list(hm.columns) == [0, *view.checkpoints("decoupled.s1")]
    assert hm.notna().all().all()
    base = view.geometry("base", 0, PEN).set_index("variety")["energy_share_mean"]
    np.testing.assert_allclose(hm[0].to_numpy(), base.loc[list(view.varieties)].to_numpy())


# ---------------------------------------------------------------- damage and versions


def test_damaged_files_are_detected_and_rebuilt(tiny_experiment, tmp_path):
    root = _copy(tiny_experiment, tmp_path)
    before = _all_matrices(load_experiment(root))
    rdir = root / "represent"
    truncated = rdir / "decoupled.s0" / f"step-{LAST:06d}.safetensors"
    garbage = rdir / "baseline.s1" / f"step-{FIRST:06d}.safetensors"
    flipped = rdir / "random.s0" / f"step-{LAST:06d}.safetensors"  # header intact, data changed: only a checksum sees it
    truncated.write_bytes(truncated.read_bytes()[:-100])
    garbage.write_bytes(os.urandom(garbage.stat().st_size))
    raw = bytearray(flipped.read_bytes())
    raw[-64:] = bytes(64)
    flipped.write_bytes(bytes(raw))
    v = load_experiment(root)
    for model, step in (("decoupled.s0", LAST), ("baseline.s1", FIRST), ("random.s0", LAST)):
        with pytest.raises(StoreError, match="explorer represent"):
            v.representations(model, step, PEN)
    untouched = rdir / "base" / "step-000000.safetensors"
    mtime = untouched.stat().st_mtime_ns
    exp = _rebuild(root)
    assert exp.manifest()["stages"]["represent"]["rebuilt"] == 3
    assert untouched.stat().st_mtime_ns == mtime  # valid files are not rewritten
    after = _all_matrices(load_experiment(root))
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


def test_truncated_file_caught_even_without_force_check(tiny_experiment, tmp_path):
    root = _copy(tiny_experiment, tmp_path)
    path = root / "represent" / "random.s1" / f"step-{FIRST:06d}.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    _rebuild(root, force_check=False)
    np.testing.assert_array_equal(load_experiment(root).representations("random.s1", FIRST, OTHER),
                                  load_experiment(tiny_experiment).representations("random.s1", FIRST, OTHER))


def test_rewritten_checkpoint_invalidates_its_representations(tiny_experiment, tmp_path):
    root = _copy(tiny_experiment, tmp_path)
    ckpt = Experiment(root).checkpoint_file("baseline.s0", LAST)
    ckpt.write_bytes(ckpt.read_bytes())  # same weights, written again: an arm retrained in place
    rep_file = root / "represent" / "baseline.s0" / f"step-{LAST:06d}.safetensors"
    other = root / "represent" / "baseline.s0" / f"step-{FIRST:06d}.safetensors"
    stamps = rep_file.stat().st_mtime_ns, other.stat().st_mtime_ns
    exp = _rebuild(root, force_check=False)
    assert exp.manifest()["stages"]["represent"]["rebuilt"] == 1
    assert rep_file.stat().st_mtime_ns != stamps[0] and other.stat().st_mtime_ns == stamps[1]


def test_done_stage_without_damage_is_a_no_op(tiny_experiment, tmp_path):
    root = _copy(tiny_experiment, tmp_path)
    files = sorted((root / "represent").rglob("*.safetensors"))
    stamps = [f.stat().st_mtime_ns for f in files]
    stage_before = read_json(root / "manifest.json")["stages"]["represent"]
    _rebuild(root, force_check=False)
    _rebuild(root, force_check=True)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert read_json(root / "manifest.json")["stages"]["represent"] == stage_before


def test_other_representation_format_version_rebuilds_everything(tiny_experiment, tmp_path, capsys):
    root = _copy(tiny_experiment, tmp_path)
    mpath = root / "represent" / "manifest.json"
    man = read_json(mpath)
    man["format_version"] = REPRESENT_VERSION + 98
    write_json(mpath, man)              # as other code writes it: through files.py (a hand edit would read as damage)
    with pytest.raises(StoreError, match=f"format version {REPRESENT_VERSION + 98}.*explorer represent"):
        load_experiment(root).representations("base", 0, OTHER)
    exp = _rebuild(root)
    assert exp.manifest()["stages"]["represent"]["rebuilt"] == len(man["entries"])
    said = "rebuilding every representation: it was written by representation format version"
    assert said in capsys.readouterr().err
    assert said in exp.progress()["message"] and exp.progress()["status"] == "done"
    v = load_experiment(root)
    assert read_json(mpath)["format_version"] == REPRESENT_VERSION
    assert v.representations("base", 0, OTHER).shape == (len(v.index()), v.config.d_model)


def test_other_config_fingerprint_rebuilds_everything(tiny_experiment, tmp_path):
    root = _copy(tiny_experiment, tmp_path)
    mpath = root / "represent" / "manifest.json"
    man = read_json(mpath)
    man["fingerprint"] = "000000000000"
    mpath.write_text(json.dumps(man))
    with pytest.raises(StoreError, match="config"):
        load_experiment(root).geometry_long()
    exp = _rebuild(root)
    assert exp.manifest()["stages"]["represent"]["rebuilt"] == len(man["entries"])


def test_experiment_of_another_format_version_is_rejected(tiny_experiment, tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    m = read_json(tiny_experiment / "manifest.json")
    m["format_version"] = 0
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="format version 0"):
        load_experiment(root)
    with pytest.raises(StoreError, match="not an experiment folder"):
        load_experiment(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        load_experiment(tmp_path / "nowhere")


def test_cli_rebuilds_a_deleted_cache_identically(tiny_experiment, tmp_path):
    from explorer.__main__ import main

    root = _copy(tiny_experiment, tmp_path)
    before = _all_matrices(load_experiment(root))
    geo_before = load_experiment(root).geometry_long()
    shutil.rmtree(root / "represent")
    assert main(["represent", str(root)]) == 0
    v = load_experiment(root)
    after = _all_matrices(v)
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    pd.testing.assert_frame_equal(v.geometry_long(), geo_before)
    assert v.progress()["status"] == "done"
    assert v.complete


# ---------------------------------------------------------------- UMAP cache


def test_umap_is_computed_in_memory_and_never_stored(tiny_experiment, tmp_path):
    root = _copy(tiny_experiment, tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    v = load_experiment(root)
    first = v.umap("decoupled.s0", LAST, PEN)
    assert first.shape == (len(v.index()), 2) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(load_experiment(root).umap("decoupled.s0", LAST, PEN), first)   # deterministic
    other = v.umap("decoupled.s0", LAST, PEN, UmapParams(n_neighbors=5, random_state=1))
    assert other.shape == first.shape and not np.allclose(other, first)                  # the parameters count
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before                 # nothing written


# ---------------------------------------------------------------- the API surface


def test_every_view_method(view, tiny_experiment):
    v = view
    n_rows = len(v.varieties) * v.config.analysis_size
    assert v.root == Path(tiny_experiment).resolve() and v.name == "tiny"
    assert v.manifest["format_version"] == 2 and v.complete and v.arms == MODELS[1:]
    assert v.dialects == ("arz", "ary") and v.seeds == (0, 1)
    assert Path(tiny_experiment).resolve() in [p.resolve() for p in list_experiment_dirs(tiny_experiment.parent)]
    assert v.pca("random.s0", FIRST, OTHER).shape == (n_rows, 2)
    assert v.geometry("base", 0, PEN).shape[0] == len(v.varieties)
    assert v.geometry("base", 0, OTHER).shape[0] == len(v.varieties)   # every site has the model's own subspace
    g = v.geometry_long()
    assert len(g) == sum(len(v.checkpoints(m)) for m in v.models) * len(v.sites) * len(v.varieties)
    r = v.refits("decoupled.s0")
    assert list(r.columns) == experiment_mod.REFIT_COLUMNS
    assert r["step"].tolist() == list(range(0, v.config.steps, v.config.probe_every))
    # the angles, recomputed from the stored refit bases with scipy's principal angles (an independent reference)
    from scipy.linalg import subspace_angles

    at_pen = r[r["site"] == PEN].reset_index(drop=True)
    bases = [subspace_at(v.exp, int(step), PEN, "decoupled.s0")[0].basis.double().numpy() for step in at_pen["step"]]
    assert np.isnan(at_pen["angle_prev_deg"].iloc[0]) and len(bases) >= 2

    def largest_angle(a, b) -> float:
        return float(np.degrees(subspace_angles(a, b).max()))

    for i in range(1, len(bases)):
        assert at_pen["angle_prev_deg"].iloc[i] == pytest.approx(largest_angle(bases[i], bases[i - 1]), abs=0.05)
        assert at_pen["angle_first_deg"].iloc[i] == pytest.approx(largest_angle(bases[i], bases[0]), abs=0.05)
    rv = v.refit_varieties("decoupled.s0")
    assert list(rv.columns) == experiment_mod.REFIT_VARIETY_COLUMNS and set(rv["variety"]) == set(v.varieties)
    s = v.scores()
    assert set(s["model"]) == set(v.models) and (s["n"] > 0).all() and set(s["arm"]) == {"base", "baseline",
                                                                                            "decoupled", "random"}
    d = v.deltas()
    assert list(d.columns) == results_mod.DELTA_COLUMNS and set(d["system"]) == {"base", "decoupled", "random"}
    assert (d["interval"] == "seeds+sentences").all() and d["noise_floor"].notna().all()
    looks = v.looks_like()
    assert set(looks["model"]) == {*v.models, "reference"} and looks["as_requested"].between(0, 1).all()
    assert v.classifiers()["dialect_id"]["accuracy"] > 1 / len(v.varieties)
    pen = v.penalties()
    assert set(pen["model"]) == {m for m in v.models if m.startswith(("decoupled", "random"))}
    h = v.hypotheses()
    assert len(h) == len(s[s["model"] == "base"]) * v.config.eval_size
    assert {f"hyp_{m}" for m in v.models} | {f"chrf_{m}" for m in v.models} <= set(h.columns)
    assert not h.duplicated(["direction", "sent_id"]).any()
    for m in v.models:
        log = v.train_log(m)
        assert len(log) == (v.config.base_steps if m == "base" else v.config.steps) and "loss" in log
    assert v.progress()["status"] == "done"
    model, tok = v.load_model("decoupled.s1", FIRST)
    assert not model.training and tok.pad_token_id is not None
    with pytest.raises(ValueError, match="unknown model"):
        v.checkpoints("nope")
    with pytest.raises(StoreError, match="no representations"):
        v.representations("decoupled.s0", 9, OTHER)
    assert v.index().shape == (n_rows, 5)
    assert entry_key("base", 0) == "base/step-000000"
