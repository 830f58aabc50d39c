"""Repairs that work (README, "Damaged files and the run lock"): every damaged or missing artefact of a finished
experiment is rebuilt by rerunning the same command, with the same numbers; `summary`, `classify` and `represent`
name what they cannot use and the command that rebuilds it; SIGTERM stops a run the way Ctrl-C does; list options
refuse empty items, duplicates and an arm trained twice, advising a value that is accepted."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer.__main__ import _parser
from explorer.__main__ import main as cli_main
from explorer.analysis.repcache import read_geometry
from explorer.config import preset_config
from explorer.options import overrides_from_args
from explorer.experiment.layout import Experiment
from explorer.experiment.report import summary, summary_table
from explorer.experiment.run import run_experiment
from explorer.files import file_status, read_json

REPO = Path(__file__).resolve().parents[1]
NUMBERS = ("models", "arms", "deltas", "aggregate", "noise_floor", "looks_like", "classifiers", "copy_source",
           "posthoc", "refits")

ARTEFACTS = [  # one of each kind a finished tiny experiment holds
    "eval/decoupled.s0/hyps.jsonl",
    "arms/decoupled/seed-0/refits/refit-0001.safetensors",
    "arms/baseline/seed-1/checkpoints/step-000016/weights.safetensors",
    "represent/decoupled.s1/step-000016.safetensors",
    "summary.json",
    "dialect_id/weights.npz",
    "eval/copy_source.json",
]


def _damage(path: Path) -> None:
    """Garble bytes in the middle, size unchanged (only the check record can tell)."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + 8)):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))


def _numbers(root: Path) -> dict:
    s = summary(Experiment(root))
    out = {k: s.get(k) for k in NUMBERS}
    out["geometry"] = [{k: v for k, v in r.items() if k != "key"} for r in read_geometry(root / "represent")]
    return out


@pytest.fixture(scope="module")
def reference(tiny_experiment):
    return _numbers(tiny_experiment)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["delete", "damage"])
@pytest.mark.parametrize("name", ARTEFACTS)
def test_rerun_rebuilds_a_damaged_or_missing_artefact(tiny_experiment, reference, tmp_path, capsys, name, how):
    root = tmp_path / "tiny"
    shutil.copytree(tiny_experiment, root)        # copy2 keeps mtimes: the representations' source stamps hold
    path = root / name
    path.unlink() if how == "delete" else _damage(path)
    assert not file_status(path).usable
    run_experiment(preset_config("tiny"), root, bar=False)
    err = capsys.readouterr().err
    assert re.search(rf"resume: .*{re.escape(name.split('/', 1)[-1] if name.startswith('represent/') else name)}"
                     rf" is {'missing' if how == 'delete' else 'damaged'}", err), err
    assert file_status(path).state == "intact"
    assert summary(Experiment(root))["problems"] == []
    assert _numbers(root) == reference


@pytest.mark.slow
def test_a_garbled_progress_file_is_reported_and_rewritten(tiny_experiment, tmp_path, capsys):
    root = tmp_path / "tiny"
    shutil.copytree(tiny_experiment, root)
    (root / "progress.json").write_bytes(b"\x00garbage{")
    run_experiment(preset_config("tiny"), root, bar=False)
    assert "resume: progress.json was damaged and is rewritten" in capsys.readouterr().err
    assert read_json(root / "progress.json")["status"] == "done"


@pytest.mark.slow
def test_commands_that_read_a_damaged_experiment_name_the_files_and_the_repair(tiny_experiment, tmp_path, capsys):
    root = tmp_path / "tiny"
    shutil.copytree(tiny_experiment, root)
    _damage(root / "eval/decoupled.s0/hyps.jsonl")
    (root / "arms/decoupled/seed-0/refits/refit-0001.safetensors").unlink()
    repair = f"python -m explorer run --preset tiny --out {root}"

    s = summary(Experiment(root))
    assert s["problems"] == [s["problems"][0]] and "eval/decoupled.s0/hyps.jsonl is damaged" in s["problems"][0]
    assert "decoupled.s0" not in s["models"] and "decoupled" not in s["deltas"] and "decoupled.s1" in s["models"]
    table = summary_table(s)
    assert table.startswith("WARNING: 1 file(s) damaged or missing; the numbers below exclude them")
    assert f"Rebuild them with: {repair}" in table

    assert cli_main(["classify", str(root)]) == 2
    err = capsys.readouterr().err
    assert "eval/decoupled.s0/hyps.jsonl is damaged" in err and f"Rebuild them with: {repair}" in err
    assert cli_main(["represent", str(root)]) == 2
    err = capsys.readouterr().err
    assert "arms/decoupled/seed-0/refits/refit-0001.safetensors is missing" in err and repair in err
    assert "Errno" not in err


def _wait_for(pred, what: str, limit: float = 600.0) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "explorer", "run", "--preset", "tiny", "--out", str(out),
                             "--no-bar"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def training() -> bool:
        assert proc.poll() is None, proc.communicate()
        p = Experiment(out).progress()
        return bool(p and p.get("stage") == "base" and p.get("step"))

    try:
        _wait_for(training, "stage 1 to start")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM: rerun the same command to resume" in err and "Traceback" not in err
    p = json.loads((out / "progress.json").read_text())
    assert p["status"] == "interrupted" and "SIGTERM" in p["message"] and "rerun the same command" in p["message"]


# ---------------------------------------------------------------- list options

REFUSED = [  # (options, what the message says: the advice, the options that advice makes: they are accepted)
    (["--seeds", "1,,2"], "empty item; write --seeds 1,2", ["--seeds", "1,2"]),
    (["--seeds", "1,2,"], "empty item; write --seeds 1,2", ["--seeds", "1,2"]),
    (["--seeds=-1"], "e.g. --seeds 1 (the one seed 0) or --seeds 0,", ["--seeds", "0,"]),
    (["--seeds=-1,"], "seeds are numbers ≥ 0; write --seeds 0,", ["--seeds", "0,"]),
    (["--seeds", "2,2,3"], "each named once; write --seeds 2,3", ["--seeds", "2,3"]),
    (["--sweep", "0.1,0.1"], "names a λ twice (0.1,0.1): the second arm would repeat the first. Use --sweep 0.1",
     ["--sweep", "0.1"]),
    (["--sweep", "0.1,0.10,1"], "names a λ twice (0.1,0.1,1): the second arm would repeat the first. Use --sweep "
                                "0.1,1", ["--sweep", "0.1,1"]),
    (["--sweep", "0.01,1"], "--sweep 0.01 repeats the decoupled arm, which trains at --lam 0.01 already: it would "
                            "be a second copy of it in the dose-response table. Use --sweep 1", ["--sweep", "1"]),
    (["--sweep", "0.5", "--lam", "0.5"], "repeats the decoupled arm, which trains at --lam 0.5 already: it would be a "
                                         "second copy of it in the dose-response table. Use no --sweep",
     ["--lam", "0.5"]),
    (["--sweep", "0.1,,1"], "--sweep has an empty item (0.1,,1). Use --sweep 0.1,1", ["--sweep", "0.1,1"]),
    (["--arms", "baseline,baseline"], "names an item twice; write --arms baseline", ["--arms", "baseline"]),
    (["--arms", "baseline,,decoupled"], "empty item; write --arms baseline,decoupled",
     ["--arms", "baseline,decoupled"]),
    (["--arms", ""], "--arms is empty: the run would stop after stage 1 with nothing to compare. Name the arms to "
                     "train, e.g. --arms baseline,decoupled,random", ["--arms", "baseline,decoupled,random"]),
    (["--sites", "layer.01,layer.01"], "names an item twice; write --sites layer.01", ["--sites", "layer.01"]),
]


@pytest.mark.parametrize("options,says,fixed", REFUSED, ids=[" ".join(o) for o, _, _ in REFUSED])
def test_list_options_refuse_and_advise_a_value_that_is_accepted(tmp_path, capsys, options, says, fixed):
    out = tmp_path / "exp"
    try:
        rc = cli_main(["run", "--preset", "tiny", "--out", str(out), "--no-bar", *options])
    except SystemExit as e:          # refused by the option's own parser (argparse)
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert says in err, err
    assert not out.exists()          # refused before anything was created
    args = _parser().parse_args(["run", "--preset", "tiny", *fixed])
    preset_config("tiny", **overrides_from_args(args))        # the advised value is accepted


def test_an_empty_arms_list_is_the_base_preset_only():
    assert preset_config("base", arms=()).arms == ()
    with pytest.raises(ValueError, match="--arms is empty"):
        preset_config("tiny", arms=())
    assert preset_config("tiny", sweep=(0.01,), arms=("baseline",)).sweep == (0.01,)   # no decoupled arm to repeat


def test_a_damaged_resume_state_is_dropped_and_the_stage_starts_again(tmp_path):
    import torch

    from explorer.experiment.integrity import discard_damaged_resume
    from explorer.files import save_tensors, write_json

    from explorer.experiment.stagefolder import StageFolder

    folder = StageFolder(Experiment(tmp_path / "exp"), "decoupled.s0")
    state = folder.resume.root
    save_tensors(state / "model.safetensors", {"w": torch.arange(64.0)})
    save_tensors(state / "optim.safetensors", {"0.exp_avg": torch.zeros(64)})
    write_json(state / "state.json", {"step": 8, "param_groups": [], "extra": {}})
    said: list[str] = []
    discard_damaged_resume(folder, say=said.append)
    assert said == [] and folder.resume.location() == state          # intact: kept
    _damage(state / "model.safetensors")
    discard_damaged_resume(folder, say=said.append)
    assert folder.resume.location() is None
    assert len(said) == 1 and said[0].startswith("resume: decoupled.s0 starts again from step 0, its resume state "
                                                 "cannot be used: arms/decoupled/seed-0/state/model.safetensors is "
                                                 "damaged")
