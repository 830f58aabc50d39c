"""Every option value checked before any work (config.check_limits, experiment.preflight), `run --help`, the data
notes printed at the start of `run`, and `--preset tiny --data madar:PATH` end to end on the invented release."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re

import pytest

from explorer.__main__ import _parser
from explorer.__main__ import main as cli_main
from explorer.config import RunConfig, preset_config
from explorer.experiment.layout import Experiment
from explorer.files import StoreError

BAD = [  # (options, what the message must say): each names the option and what to use instead
    (["--lam", "-1"], r"--lam must be in \[0, inf\).*got -1.0"),
    (["--eval-size", "-5"], (r"--eval-size must be in \[0, inf\).*got -5. Use a value in that range; the tiny preset "
                            r"uses 8")),
    (["--batch-size", "0"], r"--batch-size must be in \[1, inf\).*the tiny preset uses 16"),
    (["--steps", "0"], r"--steps must be in \[1, inf\)"),
    (["--replay", "1"], r"--replay must be in \[0, 1\)"),
    (["--base-copy", "1.5"], r"--base-copy must be in \[0, 1\)"),
    (["--lr", "0"], r"--lr must be in \(0, inf\)"),
    (["--mode", "hard"], r"--mode 'hard' is not one of penalty, project"),
    (["--arms", "baseline,control"], r"unknown arm\(s\) \['control'\]"),
    (["--rank", "65"], r"--rank 65 is not below the hidden size 64 of the built-in model.*Use --rank 1 to 63"),
    (["--sites", "layer.07"], r"--sites layer\.07: the built-in model has 2 decoder layers, layer\.00 to layer\.01"),
    (["--sites", "layer2"], r"--sites 'layer2' is not a layer name; use layer\.NN, e\.g\. layer\.01"),
    (["--varieties", "xyz"], r"--varieties xyz: not in the flores corpus, whose dialects are arz,ary,"),
    (["--n-dialects", "9"], r"--n-dialects 9: the flores corpus offers 8 dialect\(s\) here.*Use --n-dialects 8 or 0"),
    (["--data", "madar:/no/such/folder"], r"MADAR folder /no/such/folder does not exist"),
    (["--model", "/no/such/model"], r"model folder /no/such/model does not exist"),
]


@pytest.mark.parametrize("options,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_fail_before_any_work(tmp_path, capsys, options, message):
    out = tmp_path / "exp"
    assert cli_main(["run", "--preset", "tiny", "--out", str(out), "--no-bar", *options]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not out.exists()                                    # nothing left that could refuse the corrected command


def test_a_model_is_checked_against_its_own_config(tiny_models, tmp_path, capsys):
    llama = str(tiny_models["llama"])                          # 3 layers, hidden size 32
    for options, message in ((["--sites", "layer.03"], "has 3 decoder layers, layer.00 to layer.02"),
                             (["--rank", "32"], "is not below the hidden size 32"),
                             (["--max-len", "200"], "needs 432 positions, but")):
        assert cli_main(["run", "--preset", "tiny", "--model", llama, "--out", str(tmp_path / "x"), "--no-bar",
                         *options]) == 2
        assert message in capsys.readouterr().err
    gemma_like = tmp_path / "nested"                           # a text config nested the way Gemma 3 writes it
    gemma_like.mkdir()
    (gemma_like / "config.json").write_text(json.dumps({"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
                                                           "text_config": {"hidden_size": 48, "num_hidden_layers": 5}}))
    (gemma_like / "model.safetensors").write_bytes(b"")
    from explorer.experiment.preflight import model_shape

    assert model_shape(preset_config("tiny", model=str(gemma_like))).n_layers == 5


def test_bad_boolean_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--bf16", "maybe"])
    assert "expected auto, true or false, got 'maybe'" in capsys.readouterr().err


def test_run_help_explains_every_option():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        _parser().parse_args(["run", "--help"])
    text = " ".join(buf.getvalue().split())
    for f in dataclasses.fields(RunConfig):
        if f.name == "preset":
            continue
        assert f.metadata.get("help"), f"RunConfig.{f.name} has no help text"
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
    assert "--steps INT stage-2 optimiser steps of each arm (min 1) [tiny: 16, default: 200," in text
    assert "gpu: 400, full: 5000]" in text
    assert "--lam FLOAT λ, weight of the decoupling penalty (the paper: 0.01) (min 0) [all presets: 0.01]" in text
    assert "--mode {penalty,project}" in text and "--gate FLOAT" in text and "[0, 0.5)" in text


def test_run_prints_the_data_notes_first(capsys, tmp_path):
    assert cli_main(["run", "--preset", "tiny", "--out", str(tmp_path / "x"), "--no-bar", "--rank", "99"]) == 2
    err = capsys.readouterr().err
    assert err.index("note: FLORES-200 devtest") < err.index("--rank 99")


def test_config_mismatch_names_only_what_differs(tmp_path):
    exp = Experiment(tmp_path / "exp")
    exp.root.mkdir()
    exp.init(preset_config("tiny"))
    exp.mark_stage("prepare")                    # a stage finished: the folder holds work worth keeping
    with pytest.raises(StoreError, match="different settings") as e:
        exp.init(preset_config("tiny", lam=0.5))
    assert "'lam': (0.01, 0.5)" in str(e.value)
    assert "'arms'" not in str(e.value) and "'sites'" not in str(e.value) and "'seeds'" not in str(e.value)


def test_a_folder_whose_run_failed_before_any_stage_takes_the_corrected_command(tmp_path):
    exp = Experiment(tmp_path / "exp")
    exp.root.mkdir()
    exp.init(preset_config("tiny", lam=0.5))     # the run failed before its first stage finished
    m = exp.init(preset_config("tiny"))
    assert m["config"]["lam"] == 0.01 and exp.config().lam == 0.01


@pytest.mark.slow
def test_tiny_preset_runs_on_the_release_as_unpacked(tmp_path, capsys):
    """`--preset tiny --data madar:PATH` on the whole invented release (README, index files, macOS leftovers):
    the tiny preset takes the first two dialects of whatever corpus it is given."""
    from madar_release import make_release

    from explorer.experiment.report import summary

    release = make_release(tmp_path / "unpacked")
    out = tmp_path / "exp"
    assert cli_main(["run", "--preset", "tiny", "--data", f"madar:{release}", "--out", str(out), "--no-bar"]) == 0
    err = capsys.readouterr().err
    assert "note: loaded MSA + 25 of 25 cities" in err and "MADAR.corpus.English.index.tsv" in err
    info = json.loads((out / "data.json").read_text(encoding="utf-8"))
    assert info["dialects"] == ["cai", "alx"]
    assert any("French index file" in n for n in info["notes"])
    s = summary(Experiment(out))
    assert s["complete"]
    assert {"arb-cai", "cai-arb", "arb-alx", "alx-arb", "eng-arb", "arb-eng"} <= set(s["models"]["decoupled.s0"])


@pytest.mark.parametrize("value, says", [("0", "for the one seed 0 write 0,"), ("1,1", "distinct"),
                                         ("two", "got 'two'")])
def test_a_bad_seeds_value_says_how_to_write_one(value, says, capsys):
    from explorer.options import parse_seeds

    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--seeds", value])
    err = capsys.readouterr().err
    assert "--seeds takes a count" in err and says in err
    assert parse_seeds("3") == (0, 1, 2) and parse_seeds("5,") == (5,) and parse_seeds("0,5,7") == (0, 5, 7)
