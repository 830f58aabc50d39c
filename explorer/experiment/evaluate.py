"""The evaluation stage: every model decodes the test split; chrF++ per direction; which variety each output looks
like; every arm against the baseline with seed-aware intervals and the noise floor (docs/design.md §2.7)."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from ..config import RunConfig
from ..data.examples import Example
from ..data.rundata import RunData
from ..data.varieties import ENG, HR, KINDS, direction_kind
from ..evaluation import comet
from ..evaluation.chrf import (
    chrf_signature,
    chrf_statistics,
    noise_floor,
    reading,
    score_hypotheses,
    seed_bootstrap,
    sentence_chrf,
)
from ..evaluation.decoding import translate
from ..evaluation.dialect_id import DialectClassifier
from ..files import StoreError, is_intact, read_json, read_jsonl, write_json, write_jsonl
from ..model.prompts import encoder_for
from ..names import model_id
from ..training.loop import autocast_for
from .classify import dialect_classifier, msa_classifier
from .layout import Experiment, arm_models
from .models import load_arm, run_precision
from .progress import Progress

AGGREGATES = {"msa_to_dialect": KINDS[0], "dialect_to_msa": KINDS[1]}   # key in deltas.json -> direction kind


def stage_eval(exp: Experiment, cfg: RunConfig, data: RunData, progress: Progress) -> None:
    models = ["base", *arm_models(cfg)]
    varieties = [HR, *data.dialects]
    classifiers = None
    # COMET beside chrF++ with --comet (optional): one scorer for the stage, per-sentence scores in hyps.jsonl
    # ("comet"), the mean per direction in scores.json ("comet"); nothing changes without --comet
    todo = [m for m in models if not exp.stage_done(exp.stage_key("eval", m))]
    scorer = comet.load_scorer(cfg.comet, batch_size=cfg.comet_batch_size) if cfg.comet and todo else None
    for model in models:
        key = exp.stage_key("eval", model)
        if exp.stage_done(key):
            continue
        classifiers = classifiers or (dialect_classifier(exp, cfg, varieties), msa_classifier(exp, cfg, varieties))
        net, tok = load_arm(exp, cfg, model)
        enc = encoder_for(net, tok, data.codes, cfg.max_len)
        progress.stage(f"eval {model}", total=len(data.test))
        items = [(e.src, e.tgt, e.src_text) for e in data.test]
        t0 = time.perf_counter()
        with autocast_for(net, net.device.type == "cuda" and run_precision(exp, cfg, net.device).bf16):
            hyps = translate(net, tok, enc, items, max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams,
                             batch_size=cfg.eval_batch_size,
                             on_batch=lambda n: progress({"event": "count", "n": n}))
        records = [{"sent_id": e.sent_id, "direction": e.direction, "src": e.src, "tgt": e.tgt,
                    "source": e.src_text, "ref": e.tgt_text, "hyp": h, "chrf": round(sentence_chrf(h, e.tgt_text), 3)}
                   for e, h in zip(data.test, hyps)]
        extra = {"comet": {**comet.describe(scorer), "directions": comet.comet_by_direction(scorer, records)}} \
            if scorer is not None else {}      # adds "comet" to each record too
        write_jsonl(exp.hyps_path(model), records)
        write_json(exp.scores_path(model), {"model": model, "signature": chrf_signature(),
                                            "directions": score_hypotheses(records),
                                            "looks_like": looks_like(records, *classifiers), **extra})
        exp.mark_stage(key, seconds=round(time.perf_counter() - t0, 2))
        progress.finish_stage(f"eval {model}")
    if not is_intact(exp.copy_source_path):
        write_json(exp.copy_source_path, copy_source_scores(data.test))
    if classifiers is not None or not is_intact(exp.classifiers_path):
        classifiers = classifiers or (dialect_classifier(exp, cfg, varieties), msa_classifier(exp, cfg, varieties))
        write_json(exp.classifiers_path, classifier_report(data.test, *classifiers))
    if "baseline" in cfg.arms:
        write_json(exp.deltas_path, compute_deltas(exp, cfg))


def relabel(exp: Experiment, cfg: RunConfig, data: RunData) -> list[str]:
    """Score again what every evaluated model's outputs look like (``looks_like`` in each scores.json, and
    classifiers.json) with the classifiers the current code fits, from the stored hypotheses: no model is run. For
    an experiment evaluated before a classifier changed (``python -m explorer classify DIR``). Returns the models."""
    varieties = [HR, *data.dialects]
    classifiers = (dialect_classifier(exp, cfg, varieties), msa_classifier(exp, cfg, varieties))
    done = []
    for model in ["base", *arm_models(cfg)]:
        if not exp.stage_done(exp.stage_key("eval", model)):
            continue
        doc = read_json(exp.scores_path(model))
        doc["looks_like"] = looks_like(_hyps(exp, model), *classifiers)
        write_json(exp.scores_path(model), doc)
        done.append(model)
    write_json(exp.classifiers_path, classifier_report(data.test, *classifiers))
    return done


def looks_like(records: list[dict], dialects: DialectClassifier, msa: DialectClassifier) -> dict:
    """Per MSA→dialect direction: the share of outputs the dialect classifier assigns to the requested dialect
    (``as_requested``) and the share the MSA-vs-dialect classifier calls MSA (``called_msa``, MSA leakage); and the
    share of test sentences whose outputs are identical for every target dialect (``identical_across_targets``:
    the target tag ignored)."""
    by_dir: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["src"] == HR and r["tgt"] not in (HR, ENG):
            by_dir[r["direction"]].append(r)
    out: dict = {"directions": {}}
    for d, rows in sorted(by_dir.items()):
        hyps = [r["hyp"] for r in rows]
        tgt = rows[0]["tgt"]
        out["directions"][d] = {"n": len(rows),
                                "as_requested": _share(dialects.predict(hyps), tgt),
                                "called_msa": _share(msa.predict(hyps), HR)}
    outputs: dict[str, set[str]] = defaultdict(set)
    targets: dict[str, int] = defaultdict(int)
    for rows in by_dir.values():
        for r in rows:
            outputs[r["sent_id"]].add(r["hyp"])
            targets[r["sent_id"]] += 1
    multi = [sid for sid, n in targets.items() if n > 1]
    out["identical_across_targets"] = (round(sum(len(outputs[s]) == 1 for s in multi) / len(multi), 4)
                                       if multi else None)
    out["n_sentences"] = len(multi)
    return out


def _share(preds, label: str) -> float:
    return round(float(np.mean([p.variety == label for p in preds])), 4) if preds else float("nan")


def classifier_report(test: list[Example], dialects: DialectClassifier, msa: DialectClassifier) -> dict:
    """The two classifiers' held-out accuracies, and what they say of the *references* (the ceiling of
    ``as_requested`` and the floor of ``called_msa`` a perfect system would reach)."""
    refs = [{"direction": e.direction, "src": e.src, "tgt": e.tgt, "sent_id": e.sent_id, "hyp": e.tgt_text}
            for e in test]
    return {"dialect_id": {"accuracy": dialects.test_accuracy, "classes": list(dialects.classes),
                           "per_variety_accuracy": dialects.per_variety_accuracy, "n_test": dialects.n_test},
            "msa_vs_dialect": {"balanced_accuracy": msa.test_accuracy,
                               "per_variety_accuracy": msa.per_variety_accuracy, "n_test": msa.n_test},
            "references": looks_like(refs, dialects, msa)}


def copy_source_scores(test: list[Example]) -> dict:
    """chrF++ per direction of the trivial system that outputs its source unchanged.

    Between close varieties this is a high bar (MSA copied scores 45–98 against FLORES dialect references): a
    model's MSA→dialect score means little until it is set against it."""
    records = [{"direction": e.direction, "hyp": e.src_text, "ref": e.tgt_text} for e in test]
    return {"system": "copy the source", "signature": chrf_signature(), "directions": score_hypotheses(records)}


def _statistics(exp: Experiment, model: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """direction -> (sentence ids, per-sentence chrF++ statistics) of one model's saved hypotheses."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for r in _hyps(exp, model):
        rows[r["direction"]].append(r)
    return {d: ([r["sent_id"] for r in rs], chrf_statistics([r["hyp"] for r in rs], [r["ref"] for r in rs]))
            for d, rs in rows.items()}


def _hyps(exp: Experiment, model: str) -> list[dict]:
    """A finished evaluation's hypotheses (``read_jsonl`` reads a missing file as empty: here it is an error)."""
    path = exp.hyps_path(model)
    if not path.exists():
        raise StoreError(f"{path} is missing: the evaluation of {model} is incomplete. Rerun the same "
                         "`python -m explorer run ...`: it redoes the evaluations whose files are missing.")
    return read_jsonl(path)


def compute_deltas(exp: Experiment, cfg: RunConfig) -> dict:
    """Each arm (and the base) vs the baseline, per direction: the mean Δ chrF++ over seeds with a two-level
    bootstrap interval (seeds and sentences; ``evaluation.chrf.seed_bootstrap``), the noise floor of the baseline
    (seed vs seed) and a one-word reading of the two together."""
    seeds = list(cfg.seeds)
    base_stats = {s: _statistics(exp, model_id("baseline", s)) for s in seeds}
    baseline_scores = {s: {d: read_json(exp.scores_path(model_id("baseline", s)))["directions"][d]["chrf"]
                           for d in base_stats[s]} for s in seeds}
    directions = sorted(base_stats[seeds[0]])
    floors = {d: noise_floor({s: baseline_scores[s][d] for s in seeds}) for d in directions}
    out: dict = {"reference": "baseline", "signature": chrf_signature(), "n_samples": cfg.bootstrap_samples,
                 "seeds": seeds, "interval": "seeds+sentences" if len(seeds) > 1 else "sentences",
                 "noise_floor": floors, "systems": {}}
    groups = {key: [d for d in directions if direction_kind(*d.split("-", 1)) == kind]
              for key, kind in AGGREGATES.items()}
    groups = {k: v for k, v in groups.items() if v and _same_sentences(base_stats[seeds[0]], v)}
    out["aggregates"] = {k: {"directions": v, "noise_floor": noise_floor(
        {s: float(np.mean([baseline_scores[s][d] for d in v])) for s in seeds})} for k, v in groups.items()}
    systems = ["base", *[a for a in cfg.all_arms if a != "baseline"]]
    out["aggregate"] = {}
    for system in systems:
        stats = ({s: _statistics(exp, "base") for s in seeds[:1]} if system == "base"
                 else {s: _statistics(exp, model_id(system, s)) for s in seeds})
        out["systems"][system] = {}
        for d in directions:
            ref = {s: base_stats[s][d] for s in seeds}
            sys = {s: stats[s if system != "base" else seeds[0]][d] for s in seeds}
            if any(sys[s][0] != ref[s][0] for s in seeds):
                raise ValueError(f"{system} and the baseline were scored on different {d} sentences; "
                                 "rerun the evaluation (delete the eval folder)")
            delta = seed_bootstrap({s: sys[s][1] for s in seeds}, {s: ref[s][1] for s in seeds},
                                   n_samples=cfg.bootstrap_samples).to_dict()
            delta["reading"] = reading(delta, floors[d])
            out["systems"][system][d] = delta
        out["aggregate"][system] = {}
        for kind, dirs in groups.items():     # the mean Δ over a kind's directions (the paper's "+2.0 on average")
            sys_s = {s: np.stack([stats[s if system != "base" else seeds[0]][d][1] for d in dirs]) for s in seeds}
            ref_s = {s: np.stack([base_stats[s][d][1] for d in dirs]) for s in seeds}
            delta = seed_bootstrap(sys_s, ref_s, n_samples=cfg.bootstrap_samples).to_dict()
            delta["reading"] = reading(delta, out["aggregates"][kind]["noise_floor"])
            out["aggregate"][system][kind] = delta
    return out


def _same_sentences(stats: dict[str, tuple[list[str], np.ndarray]], directions: list[str]) -> bool:
    """Whether these directions were scored on the same sentence ids in the same order (so they resample jointly)."""
    first = stats[directions[0]][0]
    return all(stats[d][0] == first for d in directions)
