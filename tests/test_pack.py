"""The shipped experiment: ``python -m explorer pack`` on the tiny experiment (what it keeps and drops, every file
checked, damage refused with a message, read-only), every app page rendered from the packed copy, and Translate
decoding from it exactly as from the original."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from explorer.experiment.layout import Experiment
from explorer.experiment.pack import pack, verify_pack
from explorer.files import StoreError, check_path

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180


@pytest.fixture(scope="module")
def packed_root(tiny_experiment, tmp_path_factory) -> Path:
    """A cache root holding only the tiny experiment packed as ``default`` (as the project ships it)."""
    root = tmp_path_factory.mktemp("shipped")
    pack(tiny_experiment, root / "default")
    return root


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
            and not p.name.endswith(".check")}


def test_pack_keeps_what_the_pages_read_and_drops_the_rest(tiny_experiment, packed_root):
    src, dst = tiny_experiment, packed_root / "default"
    kept = _files(dst)
    rec = json.loads((dst / "pack.json").read_text())
    assert set(rec["files"]) == kept - {"pack.json"}
    for rel in kept:                                    # every file has its check record, pack.json's too
        assert check_path(dst / rel).exists(), rel
    # every score and output of both seeds, the logs and refits of every arm and seed; not the fitted classifiers
    assert not [r for r in kept if r.startswith(("dialect_id/", "msa_id/"))]
    for rel in _files(src):
        if rel.startswith(("eval/", "tokenizer/", "base/model/")) or \
                rel.endswith(("log.jsonl", "refits.jsonl")) or "/refits/" in rel:
            assert rel in kept, rel
    # weights: the final checkpoint of each arm at seed 0 only
    weights = sorted(r for r in kept if r.endswith("weights.safetensors"))
    assert weights == [f"arms/{a}/seed-0/checkpoints/step-000016/weights.safetensors"
                       for a in ("baseline", "decoupled", "random")]
    # representations: the base and the seed-0 models at every checkpoint; no other seed's, no UMAP
    reps = {r for r in kept if r.startswith("represent/") and r.count("/") == 2 and "/pca/" not in r
            and "/probes/" not in r}
    assert reps == {"represent/base/step-000000.safetensors"} | {
        f"represent/{a}.s0/step-{s:06d}.safetensors" for a in ("baseline", "decoupled", "random") for s in (8, 16)}
    assert not any(".s1" in r for r in kept if r.startswith("represent/"))
    assert not (kept & {"progress.json", "run.lock", "run.log", "annotations.json"})
    assert not any("/state/" in r or "/umap/" in r for r in kept)
    assert rec["models"]["decoupled.s0"] == {"steps": [8, 16], "weights": [16]} and rec["seed"] == 0
    assert rec["bytes"] < 50e6 and rec["source"] == str(Path(src).resolve())
    assert verify_pack(dst)["format"] == "dde-pack/1"


def test_the_packed_copy_reads_like_the_run(tiny_experiment, packed_root):
    """Same numbers, only the shown models' checkpoints; Translate decodes the same text from the shipped weights;
    a checkpoint whose weights were dropped is refused with what to do."""
    from explorer.evaluation.single import ModelHandle, translate_text
    from explorer.experiment.report import summary
    from explorer.experiment.view import load_experiment

    a, b = load_experiment(tiny_experiment), load_experiment(packed_root / "default")
    assert b.complete and b.models == ("base", "baseline.s0", "decoupled.s0", "random.s0")
    assert b.checkpoints("decoupled.s0") == a.checkpoints("decoupled.s0") == [8, 16]
    assert a.scores().equals(b.scores()) and a.deltas().equals(b.deltas())
    assert summary(a.exp)["deltas"] == summary(b.exp)["deltas"]
    texts = []
    for v in (a, b):
        m, tok = v.load_model("decoupled.s0", 16)
        out = translate_text(ModelHandle(m, tok, "decoupled.s0", 16), [*v.varieties, "eng"], "ما هو اسمك؟", "arb",
                             v.dialects[0], max_len=v.config.max_len, max_new_tokens=v.config.max_new_tokens,
                             projection=v.projection("decoupled.s0", 16, 1.0))
        texts.append(out.text)
    assert texts[0] == texts[1] and texts[0]
    with pytest.raises(StoreError, match="keeps the weights of .*decoupled.s0 step 16.* not of decoupled.s0 at step 8"):
        b.load_model("decoupled.s0", 8)


@pytest.mark.parametrize("rel", ["tokenizer/tokenizer.json", "eval/deltas.json",
                                 "arms/decoupled/seed-0/checkpoints/step-000016/weights.safetensors"])
def test_a_damaged_packed_file_is_refused_with_a_message(packed_root, tmp_path, rel):
    """Even files a run writes without a record (the tokenizer) are checked in a packed copy."""
    copy = tmp_path / "default"
    shutil.copytree(packed_root / "default", copy)
    data = bytearray((copy / rel).read_bytes())
    data[len(data) // 2] ^= 0x55
    (copy / rel).write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"the packed copy .* is damaged: {rel}.*git checkout -- .*Run button"):
        verify_pack(copy)
    (copy / rel).unlink()
    with pytest.raises(StoreError, match=f"{rel} is missing"):
        verify_pack(copy)


def test_pack_refuses_damage_and_runs_and_never_writes_over_a_run(tiny_experiment, packed_root, tmp_path):
    from explorer.__main__ import main
    from explorer.config import preset_config
    from explorer.experiment.run import run_experiment

    src = tmp_path / "src"
    shutil.copytree(tiny_experiment, src)
    hyps = src / "eval" / "random.s1" / "hyps.jsonl"
    hyps.write_bytes(hyps.read_bytes()[:-40])
    with pytest.raises(StoreError, match="cannot pack .*random.s1/hyps.jsonl.*truncated"):
        pack(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.packing").exists()
    shutil.copy(tiny_experiment / "eval" / "random.s1" / "hyps.jsonl", hyps)
    with pytest.raises(StoreError, match=r"would take .* MB, over the 0.5 MB allowed .*--steps"):
        pack(src, tmp_path / "out", max_mb=0.5)
    assert not (tmp_path / "out").exists()
    with pytest.raises(StoreError, match="exists and is not a packed copy"):
        pack(src, tiny_experiment)                       # never over a run's folder
    shipped = packed_root / "default"
    with pytest.raises(StoreError, match="already holds a packed copy; add --replace"):
        pack(src, shipped)
    # nothing writes into a packed copy: run, represent, classify
    with pytest.raises(StoreError, match="packed copy .* read-only.*--out .*default-rerun"):
        run_experiment(preset_config("tiny"), shipped, bar=False)
    for cmd in (["represent", str(shipped)], ["classify", str(shipped)], ["run", "--preset", "tiny", "--out",
                                                                          str(shipped)]):
        assert main(cmd) == 2, cmd
    assert not (shipped / "run.lock").exists() and not (shipped / "progress.json").exists()
    # --steps keeps fewer checkpoints (the final one always); --replace writes over a packed copy
    again = tmp_path / "again"
    shutil.copytree(shipped, again)
    assert main(["pack", str(src), str(again), "--steps", "16", "--replace"]) == 0
    assert json.loads((again / "pack.json").read_text())["models"]["baseline.s0"]["steps"] == [16]
    assert not (again / "represent" / "baseline.s0" / "step-000008.safetensors").exists()
    verify_pack(again)


def test_the_run_button_reproduces_into_a_new_folder(tmp_path, monkeypatch):
    """Fast: which folder the Run button trains into, and which experiment the app opens on."""
    from explorer.ui import runner, shipped

    monkeypatch.delenv(runner.ENV_PRESET, raising=False)
    for name in ("default", "mine"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    assert runner.default_folder(tmp_path) == tmp_path / "default"
    dirs = [str(tmp_path / "default"), str(tmp_path / "mine")]
    assert shipped.first_choice(tmp_path, dirs) == dirs[0]
    (tmp_path / "default" / "pack.json").write_text("{}")          # now the shipped copy
    assert runner.default_folder(tmp_path) == tmp_path / "default-rerun"
    assert shipped.first_choice(tmp_path, dirs) == dirs[1]          # the reader's own experiment first
    assert shipped.first_choice(tmp_path, dirs[:1]) == dirs[0]      # none: the shipped one
    (tmp_path / "default-rerun").mkdir()
    assert shipped.first_choice(tmp_path, [*dirs, str(tmp_path / "default-rerun")]) == str(tmp_path / "default-rerun")


def test_every_page_renders_from_the_packed_copy(packed_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DDE_CACHE_ROOT", str(packed_root))
    monkeypatch.delenv("DDE_RUN_PRESET", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()

    def ok():
        assert not at.exception, [e.message for e in at.exception]
        assert not at.error, [e.value for e in at.error]
    ok()
    notice = next(i.value for i in at.info if "shipped experiment" in i.value)
    assert "packed on" in notice and "It was run on" in notice and "a base trained in the run" in notice
    assert f"`{packed_root / 'default-rerun'}`" in notice and "never over this copy" in notice
    assert any("dde-verdict" in m.value for m in at.markdown)               # the results, at once
    assert at.button(key="run_default").label == "Run the default experiment"
    assert any(str(packed_root / "default-rerun") in c.value for c in at.caption)
    for page in ("pages/embeddings.py", "pages/subspace.py", "pages/error_analysis.py"):
        at.switch_page(page).run()
        ok()
        assert at.get("plotly_chart") or at.dataframe or "dde-table" in "".join(m.value for m in at.markdown), page
    at.switch_page("pages/translate.py").run()
    ok()
    outs = [m.value for m in at.markdown if 'class="dde-sentence"' in m.value]
    assert len(outs) == 4                                   # source, reference, and two decoded outputs
    at.sidebar.button_group(key="ckpt").set_value(8).run()  # a checkpoint whose weights were not shipped
    assert not at.exception
    assert any("keeps the weights of" in w.value for w in at.warning)
