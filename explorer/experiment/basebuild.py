"""Build the base model that ships with the project: ``python -m explorer base`` (docs/design.md §4, issue 13).

Stage 1 alone, run as an experiment with no arms in a work folder (so a long CPU run can be killed and resumed
with the same command), then evaluated and exported: fp16 safetensors and the tokenizer into ``--out`` (by default
``data/base/``, which the ``default`` preset starts from), with ``card.json`` (the command, seed, code version,
hardware, training time, scores, the FLORES split, the SHA-256 of every file) and a human-readable
``MODEL_CARD.md`` (data, licences, attribution).
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from ..config import RunConfig
from ..data.rundata import load_run_data
from ..data.varieties import ENG, HR
from ..evaluation.chrf import corpus_chrf
from ..evaluation.decoding import translate
from ..files import atomic_write_text, read_json, write_json
from ..model.loading import load_model
from ..model.prompts import encoder_for
from ..model.shipped import CARD, file_hashes
from ..model.small import init_variety_tags
from ..version import code_version
from .classify import dialect_classifier, msa_classifier
from .evaluate import looks_like
from .layout import Experiment
from .run import run_experiment

LICENCES = """\
The weights were trained on these corpora, which ship with the project (data/corpora/, attribution in
data/NOTICE.md); a model trained on CC-BY-SA text is shared under the same terms:

- Tatoeba ara-eng test v2021-08-07 (CC-BY 2.0 FR; Tiedemann 2020, "The Tatoeba Translation Challenge");
- TICO-19 test en-ar (CC0);
- NTREX-128 eng-US/arb (CC-BY-SA 4.0; Federmann et al. 2022);
- FLORES-200 devtest, training split only (CC-BY-SA 4.0; NLLB Team et al. 2022).

These weights: CC-BY-SA 4.0, attribution "Dialect Decoupling Explorer base model, trained on Tatoeba, TICO-19,
NTREX-128 and FLORES-200 (see data/NOTICE.md)". Never trained on MADAR.
"""


def hardware() -> dict:
    info = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def mix_shares(cfg: RunConfig, tok) -> dict:
    """What stage 1 trains on, in target tokens (the tokens the loss counts): the share of each task and of each
    variety written. Tasks: EN↔MSA translation, MSA copies, dialect copies, language modelling, dialect
    translation (MSA↔dialect and dialect↔dialect)."""
    examples = load_run_data(cfg).base_train
    lengths = tok([" " + e.tgt_text.strip() for e in examples], add_special_tokens=False)["input_ids"]
    tasks: dict[str, int] = {}
    written: dict[str, int] = {}
    for e, ids in zip(examples, lengths):
        kind = e.sent_id.split(":", 1)[0] if ":" in e.sent_id[:6] else ""
        task = {"copy": "MSA copies", "dcopy": "dialect copies", "lm": f"language modelling ({'MSA' if e.tgt == HR else 'dialects'})"
                }.get(kind) or ("EN↔MSA translation" if ENG in (e.src, e.tgt) else "MSA↔dialect translation"
                               if HR in (e.src, e.tgt) else "dialect↔dialect translation")
        tasks[task] = tasks.get(task, 0) + len(ids) + 1
        written[e.tgt] = written.get(e.tgt, 0) + len(ids) + 1
    total = sum(tasks.values())
    return {"target_tokens": total, "examples": len(examples),
            "tasks": {k: round(v / total, 4) for k, v in sorted(tasks.items(), key=lambda kv: -kv[1])},
            "varieties": {k: round(v / total, 4) for k, v in sorted(written.items(), key=lambda kv: -kv[1])}}


def base_scores(folder: Path, cfg: RunConfig, dialects: list[str], exp: Experiment | None = None) -> dict:
    """chrF++ of the exported base on the FLORES test split (the first ``eval_size`` sentences): EN→MSA, MSA→EN,
    MSA copied back (MSA→MSA), MSA→dialect and dialect→MSA as the arms start from it; with ``exp`` (whose folder
    keeps the fitted classifiers) also the share of MSA→dialect outputs in the requested dialect and called MSA,
    per dialect and on average (``evaluate.looks_like``, the run's own classifiers)."""
    data = load_run_data(cfg)
    model, tok = load_model(folder)
    init_variety_tags(model, tok, dialects, like=HR)
    model.eval()
    codes = [HR, *dialects, ENG]
    enc = encoder_for(model, tok, codes, cfg.max_len)
    test = data.corpus.split("test")
    if cfg.eval_size:
        test = test.iloc[: cfg.eval_size]
    pairs = {"eng-arb": (ENG, HR), "arb-eng": (HR, ENG), "arb-arb": (HR, HR),
             **{f"arb-{d}": (HR, d) for d in dialects}, **{f"{d}-arb": (d, HR) for d in dialects}}
    out = {}
    records = []
    for name, (src, tgt) in pairs.items():
        hyps = translate(model, tok, enc, [(src, tgt, t) for t in test[src]], max_new_tokens=cfg.max_new_tokens,
                         batch_size=cfg.eval_batch_size)
        out[name] = round(corpus_chrf(hyps, test[tgt].tolist()), 2)
        records += [{"direction": name, "src": src, "tgt": tgt, "sent_id": sid, "hyp": h}
                    for sid, h in zip(test["sent_id"], hyps)]
    out["msa_to_dialect_mean"] = round(sum(out[f"arb-{d}"] for d in dialects) / len(dialects), 2)
    out["dialect_to_msa_mean"] = round(sum(out[f"{d}-arb"] for d in dialects) / len(dialects), 2)
    out["n_sentences"] = len(test)
    if exp is not None:
        varieties = [HR, *dialects]
        looks = looks_like(records, dialect_classifier(exp, cfg, varieties), msa_classifier(exp, cfg, varieties))
        dirs = looks["directions"]
        out["as_requested"] = {d: dirs[f"arb-{d}"]["as_requested"] for d in dialects}
        out["called_msa"] = {d: dirs[f"arb-{d}"]["called_msa"] for d in dialects}
        out["as_requested_mean"] = round(sum(out["as_requested"].values()) / len(dialects), 4)
        out["called_msa_mean"] = round(sum(out["called_msa"].values()) / len(dialects), 4)
        out["identical_across_targets"] = looks["identical_across_targets"]
    return out


def build_base(cfg: RunConfig, out: Path, work: Path, *, bar: bool = True) -> dict:
    """Train (or resume) stage 1 of ``cfg`` in ``work``, then export the base into ``out``; returns its card."""
    if cfg.arms or cfg.base_steps < 1 or cfg.model:
        raise ValueError("the base is built by stage 1 of the built-in model alone: use --base-steps N (N >= 1), no "
                         "--arms and no --model (the `base` preset does this)")
    t0 = time.perf_counter()
    exp = run_experiment(cfg, work, bar=bar, represent=False)
    manifest = Experiment(exp.root).manifest()
    stage = manifest["stages"]["base"]
    dialects = read_json(exp.data_info_path)["dialects"]
    model, tok = load_model(exp.base_model_dir)
    if not getattr(model.config, "dde_trained_tags", None):   # stage 1 writes them; a work folder of older code did not
        model.config.dde_trained_tags = sorted({HR, ENG, *(dialects if cfg.base_dialect_copy > 0 else ())})
    tmp = Path(out).with_name(f".{Path(out).name}.export")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    scores = base_scores(tmp, cfg, dialects, Experiment(exp.root))
    names = sorted(p.name for p in tmp.iterdir() if p.is_file())
    for name in names:
        os.chmod(tmp / name, 0o644)      # save_pretrained may leave 0600 files; the base is shared
    card = {"name": "dde-base", "format": 1, "command": "python -m explorer " + shlex.join(sys.argv[1:]),
            "code_version": manifest.get("code_version") or code_version(), "export_code_version": code_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "hardware": hardware(),
            "train_s": stage.get("train_s", stage.get("wall_s")), "steps": cfg.base_steps,
            "tokens": stage.get("tokens"), "mix": mix_shares(cfg, tok), "seed": cfg.seed, "init_seed": cfg.stage1_seed, "config": cfg.to_dict(), "scores": scores,
            "parameters": sum(p.numel() for p in model.parameters()),
            "split": {"data": cfg.data, "seed": cfg.seed, "dev_size": cfg.dev_size, "test_size": cfg.test_size},
            "files": file_hashes(tmp, names), "build_s": round(time.perf_counter() - t0, 1),
            "precision": manifest.get("precision")}
    write_json(tmp / CARD, card)
    atomic_write_text(tmp / "MODEL_CARD.md", model_card(card))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return card


def model_card(card: dict) -> str:
    s = card["scores"]
    cfg = card["config"]
    mix = card.get("mix") or {}
    dialects = sorted(k.split("-", 1)[1] for k in s if k.startswith("arb-") and k != "arb-arb" and k != "arb-eng")
    rows = "\n".join(
        f"| {d} | {s[f'arb-{d}']} | {s.get(f'{d}-arb', '')} | "
        + (f"{s['as_requested'][d]:.1%} | {s['called_msa'][d]:.1%} |" if "as_requested" in s else " | |")
        for d in dialects)
    mean_row = (f"| mean | {s['msa_to_dialect_mean']} | {s.get('dialect_to_msa_mean', '')} | "
                + (f"{s['as_requested_mean']:.1%} | {s['called_msa_mean']:.1%} |" if "as_requested" in s else " | |"))
    tasks = "\n".join(f"| {k} | {v:.1%} |" for k, v in mix.get("tasks", {}).items())
    written = ", ".join(f"{k} {v:.1%}" for k, v in mix.get("varieties", {}).items())
    dominance = card.get("msa_dominance")
    dom = ("" if not dominance else "\n## MSA dominance inside the model\n\n" + dominance + "\n")
    return f"""# The shipped base model (`data/base/`)

The model every `default` run starts from: a Llama-style decoder pre-trained from scratch by this project on the
embedded corpora, MSA-dominant like a multilingual LM's web text, yet having read every FLORES dialect and
translated some of them, so that it already writes dialect when asked. Stage 2 of a run then fine-tunes it on
MSA↔dialect translation of FLORES train sentences it never translated, three ways (baseline, decoupled, random),
as in Elshabrawy et al. (arXiv 2508.12803).

| | |
| --- | --- |
| architecture | {cfg['n_layers']} layers, width {cfg['d_model']}, {cfg['n_heads']} heads, MLP {cfg['d_ff']}, byte-level BPE vocabulary {cfg['vocab_size']} with a tag per variety, aligned target positions (`dde_target_position`) |
| parameters | {card['parameters']:,} (stored in fp16) |
| trained by | `{card['command']}` |
| code version | {card['code_version']} |
| seed | weights and batch order {card.get('init_seed', card['seed'])}; FLORES split: seed {card['split']['seed']}, dev {card['split']['dev_size']}, test {card['split']['test_size']} |
| steps | {card['steps']:,} ({card.get('tokens') or 0:,} tokens in the batches), batch {cfg['batch_size']}, lr {cfg['base_lr']}, {cfg['base_copy_warmup']} copy-only warm-up steps, position jitter ±{cfg.get('base_jitter', 0)} |
| hardware | {card['hardware'].get('gpu') or card['hardware']['processor']}, {card['hardware']['cpu_count']} cores, torch {card['hardware']['torch']} ({card['hardware']['torch_threads']} threads), precision {card.get('precision', {}).get('reason', 'not recorded')} |
| training time | {(card['train_s'] or 0) / 3600:.2f} h |

## Data mix (stage 1)

Options: MSA copies {cfg['base_copy']:.0%} of the EN↔MSA-and-copy examples, dialect copies {cfg.get('base_dialect_copy', 0)} per
MSA copy, language modelling of every FLORES train sentence {cfg.get('base_lm', 0)}× per variety, dialect translation
on {cfg.get('base_dialect_mt', 0):.0%} of the FLORES train ids (MSA↔dialect, and {cfg.get('base_dialect_pairs', 0)}
dialect↔dialect pair per MSA→dialect pair, each example {cfg.get('base_dialect_times', 1)}×); stage 2 trains on the other ids. No dev or test sentence of any
variety (tested). {mix.get('examples', 0):,} examples, {mix.get('target_tokens', 0):,} target tokens; share of target tokens:

| task | share of target tokens |
| --- | --- |
{tasks}

Variety written (share of target tokens): {written}.

## Scores (FLORES-200 devtest test split, first {s['n_sentences']} sentences; the run's classifiers)

English → MSA {s['eng-arb']}, MSA → English {s['arb-eng']}, MSA copied back {s['arb-arb']} (chrF++).

| dialect | chrF++ MSA → dialect | chrF++ dialect → MSA | MSA→dialect outputs in the requested dialect | called MSA |
| --- | --- | --- | --- | --- |
{rows}
{mean_row}

"In the requested dialect": the 9-way dialect classifier's label equals the requested dialect (chance 11%; the
references reach about 70%). "Called MSA": the MSA-vs-dialect classifier's label (dialect references: about 16%).
{dom}
The dialect tags stage 1 trained (`dde_trained_tags` in `config.json`) keep what they learned at stage 2; the tags
of any other variety start from the MSA tag.

## Data and licences

{LICENCES}
## Integrity

`card.json` records the SHA-256 of every file here; the project checks them before using the model
(`explorer.model.shipped.verify`). Rebuild with the command above (resumable: rerun it after an interruption).
"""
