"""COMET beside chrF++ (issue 11), offline: a stand-in scorer, and a stand-in ``comet`` package with the real
package's interface (``load_from_checkpoint(path).predict(samples, batch_size, gpus, progress_bar).scores``) for
the worker process. Neither the real package nor any weights are needed."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from explorer.evaluation import comet
from explorer.evaluation.comet import CometError, WorkerComet, checkpoint_in, comet_by_direction, load_scorer

FAKE_COMET = '''
import sys
print("a library that prints to stdout")          # must not disturb the worker's protocol

def stand_in_score(s):
    """What the stand-in COMET returns: shared characters of hypothesis and reference over the longer length."""
    mt, ref = s["mt"], s["ref"]
    return len(set(mt) & set(ref)) / max(1, len(set(mt) | set(ref)))

class _Out:
    def __init__(self, scores):
        self.scores = scores
        self.system_score = sum(scores) / max(1, len(scores))

class _Model:
    def predict(self, samples, batch_size=8, gpus=1, progress_bar=True):
        print("predicting", len(samples))
        if any(s["mt"] == "BOOM" for s in samples):
            raise RuntimeError("the stand-in refuses BOOM")
        return _Out([stand_in_score(s) for s in samples])

def load_from_checkpoint(path):
    if "broken" in path:
        raise FileNotFoundError(path)
    return _Model()
'''


def stand_in_score(mt: str, ref: str) -> float:
    return len(set(mt) & set(ref)) / max(1, len(set(mt) | set(ref)))


@pytest.fixture
def fake_comet_env(tmp_path, monkeypatch):
    """A stand-in ``comet`` package on PYTHONPATH, and a model folder in Unbabel's layout."""
    pkg = tmp_path / "site" / "comet"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE_COMET))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    model = tmp_path / "wmt22-comet-da"
    (model / "checkpoints").mkdir(parents=True)
    (model / "checkpoints" / "model.ckpt").write_bytes(b"not read by the stand-in")
    return model


class LengthScorer:
    """A stand-in scorer: 1 - |len(hyp) - len(ref)| / max length."""

    name = "length"

    def __init__(self):
        self.calls = 0

    def score(self, triples):
        self.calls += 1
        return [1 - abs(len(h) - len(r)) / max(len(h), len(r), 1) for _, h, r in triples]


def test_scores_per_sentence_and_mean_per_direction_in_one_call():
    records = [{"direction": "arb-arz", "source": "s1", "hyp": "abcd", "ref": "abcd"},
               {"direction": "arb-arz", "source": "s2", "hyp": "ab", "ref": "abcd"},
               {"direction": "arz-arb", "source": "s3", "hyp": "", "ref": "abc"}]
    scorer = LengthScorer()
    out = comet_by_direction(scorer, records)
    assert scorer.calls == 1
    assert [r["comet"] for r in records] == [1.0, 0.5, 0.0]
    assert out == {"arb-arz": {"comet": 0.75, "n": 2}, "arz-arb": {"comet": 0.0, "n": 1}}


def test_a_folder_without_a_checkpoint_says_how_to_get_one(tmp_path, fake_comet_env):
    assert checkpoint_in(fake_comet_env) == fake_comet_env / "checkpoints" / "model.ckpt"
    with pytest.raises(CometError, match="hf download Unbabel/wmt22-comet-da"):
        checkpoint_in(tmp_path / "nothing-here")


def test_without_the_package_or_a_comet_python_the_error_says_how_to_set_it_up(fake_comet_env, monkeypatch):
    monkeypatch.setattr(comet.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delenv(comet.PYTHON_ENV, raising=False)
    with pytest.raises(CometError, match=r"(?s)venv .venv-comet.*requirements-comet.txt.*DDE_COMET_PYTHON"):
        load_scorer(fake_comet_env)


def test_the_worker_speaks_the_real_interface_and_ignores_library_output(fake_comet_env):
    triples = [("src", "مرحبا بالعالم", "مرحبا يا عالم"), ("src", "abc", "abd"), ("src", "", "x")]
    with WorkerComet(fake_comet_env, sys.executable, batch_size=2, gpus=0) as scorer:
        got = scorer.score(triples)
        assert got == pytest.approx([stand_in_score(h, r) for _, h, r in triples])
        assert scorer.score([]) == []
        with pytest.raises(CometError, match="refuses BOOM"):
            scorer.score([("s", "BOOM", "r")])
        assert scorer.score(triples[:1]) == pytest.approx(got[:1])      # still serving after an error
    assert scorer.proc.poll() is not None                               # stopped on exit


def test_a_worker_that_cannot_load_the_model_is_reported(tmp_path, fake_comet_env):
    broken = tmp_path / "broken-model"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "checkpoints" / "model.ckpt").write_bytes(b"")
    with pytest.raises(CometError, match="did not start: FileNotFoundError"):
        WorkerComet(broken, sys.executable)


def test_load_scorer_uses_the_comet_python_from_the_environment(fake_comet_env, monkeypatch):
    monkeypatch.setattr(comet.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv(comet.PYTHON_ENV, sys.executable)
    scorer = load_scorer(fake_comet_env, batch_size=4)
    try:
        assert isinstance(scorer, WorkerComet) and scorer.name == "wmt22-comet-da"
        assert scorer.score([("s", "ab", "ab")]) == [1.0]
    finally:
        scorer.close()


@pytest.mark.slow
def test_evaluation_writes_comet_next_to_chrf(fake_comet_env, monkeypatch, tmp_path, family_models):
    from test_pipeline import _invented_madar

    from explorer.config import preset_config
    from explorer.experiment.run import run_experiment
    from explorer.files import read_json, read_jsonl

    monkeypatch.setattr(comet.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv(comet.PYTHON_ENV, sys.executable)
    madar = _invented_madar(tmp_path / "MADAR")
    cfg = preset_config("tiny", model=str(family_models["gpt2"]), data=f"madar:{madar}", comet=str(fake_comet_env),
                        seeds=(0,), steps=2, ckpt_every=2, eval_size=3, arms=("baseline",), max_new_tokens=4)
    exp = run_experiment(cfg, tmp_path / "exp", bar=False, represent=False)
    for key in ("base", "baseline.s0"):
        hyps = read_jsonl(exp.hyps_path(key))
        scores = read_json(exp.scores_path(key))
        assert scores["comet"]["model"] == "wmt22-comet-da"
        assert set(scores["comet"]["directions"]) == set(scores["directions"])
        for d, v in scores["comet"]["directions"].items():
            rows = [r for r in hyps if r["direction"] == d]
            expected = np.mean([stand_in_score(r["hyp"], r["ref"]) for r in rows])
            assert v["n"] == len(rows) and v["comet"] == pytest.approx(expected, abs=1e-4)
            assert all(r["comet"] == pytest.approx(stand_in_score(r["hyp"], r["ref"]), abs=1e-4) for r in rows)
