"""Artefact verification (explorer/files.py): every recorded file is checked on read, damage is reported with the
file's name, and nothing is read from a silently shortened file.

Fast tests damage small invented files; the slow ones damage copies of the tiny experiment (never the shared
fixture itself) and go through the same readers the stages and the app use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.files import (
    StoreError,
    append_jsonl,
    check_path,
    file_status,
    is_intact,
    load_npy,
    load_npz,
    load_tensors,
    read_json,
    read_jsonl,
    remove_file,
    save_npy,
    save_npz,
    save_tensors,
    write_json,
    write_jsonl,
)

REPO = Path(__file__).resolve().parent.parent
RECORDS = [{"i": i, "text": f"جملة رقم {i}", "score": i / 7} for i in range(12)]


def garble(path: Path, at: int | None = None) -> None:
    """Flip one byte (in the middle by default): same size, different content."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x55
    path.write_bytes(bytes(data))


def cut(path: Path, n: int) -> None:
    path.write_bytes(path.read_bytes()[:n])


# ---------------------------------------------------------------- round trips


def test_every_writer_records_and_its_reader_verifies(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1, 2], "t": "نص"})
    write_jsonl(tmp_path / "b.jsonl", RECORDS)
    append_jsonl(tmp_path / "c.jsonl", RECORDS[0])
    append_jsonl(tmp_path / "c.jsonl", RECORDS[1])
    save_tensors(tmp_path / "d.safetensors", {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)})
    save_npy(tmp_path / "e.npy", np.arange(5, dtype=np.float32))
    save_npz(tmp_path / "f.npz", a=np.eye(2), b=np.zeros(3))
    assert read_json(tmp_path / "a.json") == {"x": [1, 2], "t": "نص"}
    assert read_jsonl(tmp_path / "b.jsonl") == RECORDS
    assert read_jsonl(tmp_path / "c.jsonl") == RECORDS[:2]
    assert torch.equal(load_tensors(tmp_path / "d.safetensors")["w"], torch.arange(6.0).reshape(2, 3))
    assert load_npy(tmp_path / "e.npy").tolist() == [0, 1, 2, 3, 4]
    assert load_npz(tmp_path / "f.npz")["a"].tolist() == [[1, 0], [0, 1]]
    for name in ("a.json", "b.jsonl", "c.jsonl", "d.safetensors", "e.npy", "f.npz"):
        assert check_path(tmp_path / name).exists(), name
        assert file_status(tmp_path / name).state == "intact", name
    assert file_status(tmp_path / "nothing.json").state == "missing"
    assert read_jsonl(tmp_path / "nothing.jsonl") == []


@pytest.mark.parametrize("name", ["a.json", "b.jsonl", "d.safetensors", "e.npy", "f.npz"])
@pytest.mark.parametrize("damage", ["garbled", "truncated"])
def test_damage_is_reported_naming_the_file(tmp_path, name, damage):
    write_json(tmp_path / "a.json", {"values": list(range(50))})
    write_jsonl(tmp_path / "b.jsonl", RECORDS)
    save_tensors(tmp_path / "d.safetensors", {"w": torch.randn(64, 8)})
    save_npy(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32))
    save_npz(tmp_path / "f.npz", a=np.arange(100.0))
    path = tmp_path / name
    garble(path, at=len(path.read_bytes()) - 9) if damage == "garbled" else cut(path, len(path.read_bytes()) - 7)
    reader = {".json": read_json, ".jsonl": read_jsonl, ".safetensors": load_tensors, ".npy": load_npy,
              ".npz": load_npz}[path.suffix]
    with pytest.raises(StoreError, match=rf"{name} is damaged: .*(changed since it was written|truncated).*rerun"):
        reader(path)
    status = file_status(path)
    assert status.state == "damaged" and name in status.detail and not is_intact(path)


def test_garbled_tensor_bytes_are_detected_though_safetensors_reads_them(tmp_path):
    """safetensors has no checksum: a flipped byte in the data still loads, as a wrong number."""
    from safetensors.torch import load_file

    path = tmp_path / "w.safetensors"
    save_tensors(path, {"w": torch.zeros(1000)}, {"step": "5"})
    garble(path)
    assert load_file(str(path))["w"].abs().sum() > 0          # safetensors alone: silently wrong values
    with pytest.raises(StoreError, match="w.safetensors is damaged: its bytes changed"):
        load_tensors(path)


# ---------------------------------------------------------------- JSON lines: nothing lost silently


def test_jsonl_cut_at_a_line_end_does_not_lose_lines_silently(tmp_path):
    path = tmp_path / "hyps.jsonl"
    write_jsonl(path, RECORDS)
    data = path.read_bytes()
    cut(path, data.index(b"\n", len(data) // 2) + 1)           # ASCII cut that leaves only whole lines
    assert all(json.loads(x) for x in path.read_text(encoding="utf-8").splitlines())   # it still parses
    with pytest.raises(StoreError, match=r"hyps\.jsonl is damaged: it has \d+ bytes where \d+ were written "
                                         r"\(truncated\)"):
        read_jsonl(path)


def test_jsonl_cut_inside_a_character_is_a_store_error_not_a_unicode_error(tmp_path):
    path = tmp_path / "hyps.jsonl"
    write_jsonl(path, RECORDS)
    data = path.read_bytes()
    inside = data.index("رقم".encode()) + 1                    # the second byte of a two-byte character
    cut(path, inside)
    with pytest.raises(StoreError, match="truncated"):
        read_jsonl(path)
    check_path(path).unlink()                                 # an unrecorded (older) file cut the same way
    with pytest.raises(StoreError, match=r"line \d+ holds bytes that are not UTF-8"):
        read_jsonl(path)


def test_torn_last_line_of_a_log_is_reported_not_dropped(tmp_path):
    """A writer that died in mid-line: the complete lines are intact, the last one is torn."""
    path = tmp_path / "refits.jsonl"
    append_jsonl(path, {"index": 0, "step": 8})
    append_jsonl(path, {"index": 1, "step": 16})
    with open(path, "ab") as f:                                # half a line, never recorded
        f.write(b'{"index": 2, "st')
    with pytest.raises(StoreError, match=r"refits\.jsonl is damaged: its last line \(3\) is incomplete"):
        read_jsonl(path)
    assert file_status(path).state == "damaged"
    # resuming a stage drops it (it is newer than any checkpoint; StageFolder.begin)
    assert [r["index"] for r in read_jsonl(path, drop_torn_tail=True)] == [0, 1]
    with pytest.raises(StoreError, match="incomplete"):        # and appending after it is refused
        append_jsonl(path, {"index": 3})


def test_unrecorded_complete_line_is_kept(tmp_path):
    """A writer killed between its append and its record left a whole line: it is data, not damage."""
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"step": 1})
    record = check_path(path).read_bytes()
    append_jsonl(path, {"step": 2})
    check_path(path).write_bytes(record)                       # the record as it was before the second append
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    append_jsonl(path, {"step": 3})                            # appending goes on, re-recording what is there
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}, {"step": 3}]
    assert file_status(path).state == "intact"


@pytest.mark.slow   # a writer process importing torch
def test_a_reader_never_sees_the_live_tail_of_a_log(tmp_path):
    """Appends happen under the folder's lock, so a reader racing a writer sees whole, recorded lines only."""
    path = tmp_path / "log.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", ("import sys; from explorer.files import append_jsonl\n"
         "for i in range(1500): append_jsonl(sys.argv[1], {'step': i, 'pad': 'x' * (i % 300)})"), str(path)],
        cwd=REPO)
    seen = []
    try:
        while writer.poll() is None:
            seen.append(len(read_jsonl(path)))                 # raises if it ever sees a torn or unrecorded tail
    finally:
        writer.wait()
    assert writer.returncode == 0
    assert len(seen) > 5 and seen == sorted(seen) and len(read_jsonl(path)) == 1500


def test_new_log_after_delete_ignores_the_old_record(tmp_path):
    path = tmp_path / "log.jsonl"
    for i in range(5):
        append_jsonl(path, {"step": i})
    path.unlink()                                              # a fresh start deleting the log, not its record
    append_jsonl(path, {"step": 0})
    assert read_jsonl(path) == [{"step": 0}] and file_status(path).state == "intact"
    remove_file(path)                                          # what StageFolder.begin does: both go
    assert not path.exists() and not check_path(path).exists()


# ---------------------------------------------------------------- records: crashes, old folders, damaged records


def test_crash_between_record_and_rename_leaves_a_readable_file(tmp_path):
    """The record is replaced first and keeps the one it replaces: the old file still matches."""
    path = tmp_path / "scores.json"
    write_json(path, {"v": 1})
    old = path.read_bytes()
    write_json(path, {"v": 2, "more": "data"})
    path.write_bytes(old)                                      # as if the rename never happened
    assert read_json(path) == {"v": 1}
    write_json(path, {"v": 3})
    assert read_json(path) == {"v": 3}


def test_files_without_records_still_open(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    write_jsonl(tmp_path / "b.jsonl", RECORDS)
    save_tensors(tmp_path / "c.safetensors", {"w": torch.ones(3)})
    for name in ("a.json", "b.jsonl", "c.safetensors"):
        check_path(tmp_path / name).unlink()
        assert file_status(tmp_path / name).state == "unverified"
    assert read_json(tmp_path / "a.json") == {"x": 1}
    assert read_jsonl(tmp_path / "b.jsonl") == RECORDS
    assert load_tensors(tmp_path / "c.safetensors")["w"].tolist() == [1, 1, 1]
    cut(tmp_path / "c.safetensors", 40)                        # without a record, the format's own checks remain
    with pytest.raises(StoreError, match="not a readable safetensors file"):
        load_tensors(tmp_path / "c.safetensors")
    (tmp_path / "b.jsonl").write_bytes(b'{"i": 0}\n{"i": 1')   # and a torn last line is still reported
    with pytest.raises(StoreError, match="last line"):
        read_jsonl(tmp_path / "b.jsonl")


def test_a_damaged_record_is_reported_as_such(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    check_path(tmp_path / "a.json").write_text("{garbage")
    with pytest.raises(StoreError, match=r"the check record .*\.a\.json\.check of a\.json is unreadable"):
        read_json(tmp_path / "a.json")
    check_path(tmp_path / "a.json").write_text(json.dumps({"format": "dde-check/99"}))   # a newer format
    assert read_json(tmp_path / "a.json") == {"x": 1}


# ---------------------------------------------------------------- damaged copies of the tiny experiment


@pytest.fixture
def exp_copy(tiny_experiment, tmp_path):
    from explorer.experiment.layout import Experiment

    shutil.copytree(tiny_experiment, tmp_path / "tiny")
    return Experiment(tmp_path / "tiny")


def test_tiny_experiment_artefacts_are_all_recorded_and_intact(exp_copy):
    recorded = {p.relative_to(exp_copy.root) for p in exp_copy.root.rglob("*")
                if p.is_file() and not p.name.startswith(".") and check_path(p).exists()}
    names = {p.name for p in recorded}
    assert {"manifest.json", "data.json", "log.jsonl", "refits.jsonl", "hyps.jsonl", "scores.json", "deltas.json",
            "weights.safetensors", "index.jsonl", "geometry.jsonl"} <= names
    assert any(str(p).startswith("represent/pca/") for p in recorded)
    for p in recorded:
        assert file_status(exp_copy.root / p).state == "intact", p


def test_garbled_checkpoint_is_caught_before_any_use(exp_copy):
    from explorer.experiment.models import load_arm

    arm = "decoupled.s0"
    step = exp_copy.checkpoints(arm)[-1]
    path = exp_copy.checkpoint_file(arm, step)
    garble(path)
    with pytest.raises(StoreError, match=rf"{path} is damaged: its bytes changed"):
        exp_copy.load_checkpoint(arm, step)
    with pytest.raises(StoreError, match="weights.safetensors is damaged"):
        load_arm(exp_copy, exp_copy.config(), arm, step)
    assert file_status(path).state == "damaged"


def test_shortened_hypotheses_are_never_shown(exp_copy):
    from explorer.experiment.view import load_experiment

    n = len(load_experiment(exp_copy.root).hypotheses())
    path = exp_copy.hyps_path("decoupled.s0")
    data = path.read_bytes()
    cut(path, data.index(b"\n", len(data) // 3) + 1)           # whole lines only, at an ASCII character
    with pytest.raises(StoreError, match=r"hyps\.jsonl is damaged: .*truncated"):
        load_experiment(exp_copy.root).hypotheses()
    cut(path, data.index(b"\n", len(data) // 3) + 4)            # inside the next (Arabic) line
    with pytest.raises(StoreError, match=r"hyps\.jsonl is damaged"):
        load_experiment(exp_copy.root).hypotheses()
    path.write_bytes(data)
    assert len(load_experiment(exp_copy.root).hypotheses()) == n


def test_torn_refits_log_is_reported(exp_copy):
    from explorer.experiment.stagefolder import StageFolder

    path = StageFolder(exp_copy, "decoupled.s0")._refits_path
    n = len(exp_copy.refits("decoupled.s0"))
    assert n >= 2
    data = path.read_bytes()
    cut(path, len(data) - 20)
    with pytest.raises(StoreError, match=r"refits\.jsonl is damaged"):
        exp_copy.refits("decoupled.s0")


def test_garbled_pca_cache_is_recomputed_not_plotted(exp_copy):
    from explorer.analysis.geometry import pca_2d
    from explorer.experiment.view import load_experiment

    view = load_experiment(exp_copy.root)
    site = view.sites[0]
    before = view.pca("decoupled.s0", view.checkpoints("decoupled.s0")[-1], site)
    pca = next((exp_copy.represent_dir / "pca").glob("decoupled.s0-*.safetensors"))
    step = int(pca.stem.rsplit("-", 1)[1])
    data = bytearray(pca.read_bytes())
    data[-3] ^= 0x7F                                           # an exponent byte of the last float
    pca.write_bytes(bytes(data))
    got = load_experiment(exp_copy.root).pca("decoupled.s0", step, site)
    fresh = pca_2d(load_experiment(exp_copy.root).representations("decoupled.s0", step, site))
    assert np.abs(got).max() < 1e3 and np.allclose(got, fresh, atol=1e-4)
    assert before.shape == got.shape


def test_index_contents_are_checked(exp_copy):
    from explorer.analysis.repcache import read_index

    path = exp_copy.represent_dir / "index.jsonl"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"split": "test"', '"split": "tset"', 1), encoding="utf-8")   # same length
    with pytest.raises(StoreError, match=r"index\.jsonl is damaged: its bytes changed"):
        read_index(exp_copy.represent_dir)


def test_an_experiment_written_before_records_still_opens(exp_copy):
    from explorer.experiment.report import summary
    from explorer.experiment.view import load_experiment

    for side in list(exp_copy.root.rglob(".*.check")):
        side.unlink()
    view = load_experiment(exp_copy.root)
    assert len(view.hypotheses()) and len(view.refits("decoupled.s0")) and summary(exp_copy)["models"]
    step = exp_copy.checkpoints("baseline.s0")[-1]
    assert exp_copy.load_checkpoint("baseline.s0", step)
    assert file_status(exp_copy.checkpoint_file("baseline.s0", step)).state == "unverified"
