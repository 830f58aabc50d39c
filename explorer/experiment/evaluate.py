"""The evaluation stage: every model decodes the test split; chrF++ per direction; Δ against the baseline."""

from __future__ import annotations

import time

from ..config import RunConfig
from ..data.examples import Example
from ..data.rundata import RunData
from ..evaluation import comet
from ..evaluation.chrf import Delta, chrf_signature, paired_bootstrap, score_hypotheses, sentence_chrf
from ..evaluation.decoding import translate
from ..files import read_jsonl, write_json, write_jsonl
from ..model.small import encoder_for
from ..training.loop import autocast_for
from .layout import Experiment
from .models import load_arm
from .progress import Progress


def stage_eval(exp: Experiment, cfg: RunConfig, data: RunData, progress: Progress) -> None:
    keys = ["base", *cfg.arms]
    # MERGE-NOTE(issue 11): COMET beside chrF++ with --comet: one scorer for the stage, per-sentence scores in
    # hyps.jsonl ("comet"), the mean per direction in scores.json ("comet"); nothing changes without --comet
    todo = [k for k in keys if not exp.stage_done(f"eval:{k}")]
    scorer = comet.load_scorer(cfg.comet, batch_size=cfg.comet_batch_size) if cfg.comet and todo else None
    for key in keys:
        if exp.stage_done(f"eval:{key}"):
            continue
        model, tok = load_arm(exp, cfg, key)
        enc = encoder_for(model, tok, data.codes, cfg.max_len)
        progress.stage(f"eval {key}", total=len(data.test))
        items = [(e.src, e.tgt, e.src_text) for e in data.test]
        t0 = time.perf_counter()
        with autocast_for(model, cfg.bf16 and model.device.type == "cuda"):
            hyps = translate(model, tok, enc, items, max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams,
                             batch_size=cfg.eval_batch_size,
                             on_batch=lambda n: progress({"event": "count", "n": n}))
        records = [{"sent_id": e.sent_id, "direction": e.direction, "src": e.src, "tgt": e.tgt,
                    "source": e.src_text, "ref": e.tgt_text, "hyp": h, "chrf": round(sentence_chrf(h, e.tgt_text), 3)}
                   for e, h in zip(data.test, hyps)]
        extra = {"comet": {**comet.describe(scorer), "directions": comet.comet_by_direction(scorer, records)}} \
            if scorer is not None else {}      # MERGE-NOTE(issue 11): COMET (adds "comet" to each record too)
        write_jsonl(exp.hyps_path(key), records)
        write_json(exp.scores_path(key), {"model": key, "signature": chrf_signature(),
                                                         "directions": score_hypotheses(records), **extra})
        exp.mark_stage(f"eval:{key}", seconds=round(time.perf_counter() - t0, 2))
        progress.finish_stage(f"eval {key}")
    if not exp.copy_source_path.exists():
        write_json(exp.copy_source_path, copy_source_scores(data.test))
    if "baseline" in cfg.arms:
        write_json(exp.deltas_path, compute_deltas(exp, cfg))


def copy_source_scores(test: list[Example]) -> dict:
    """chrF++ per direction of the trivial system that outputs its source unchanged.

    Between close varieties this is a high bar (MSA copied scores 45–98 against FLORES dialect references): a
    model's MSA→dialect score means little until it is set against it."""
    records = [{"direction": e.direction, "hyp": e.src_text, "ref": e.tgt_text} for e in test]
    return {"system": "copy the source", "signature": chrf_signature(), "directions": score_hypotheses(records)}


def compute_deltas(exp: Experiment, cfg: RunConfig) -> dict:
    """Each arm (and the base) vs baseline, per direction: Δ chrF++ with a 95% paired-bootstrap interval over test
    sentences."""
    base = _by_direction(read_jsonl(exp.hyps_path("baseline")))
    out: dict = {"reference": "baseline", "signature": chrf_signature(), "n_samples": cfg.bootstrap_samples,
                 "systems": {}}
    for key in ["base", *[a for a in cfg.arms if a != "baseline"]]:
        sysd = _by_direction(read_jsonl(exp.hyps_path(key)))
        out["systems"][key] = {}
        for d, rows in sysd.items():
            b = base[d]
            assert [r["sent_id"] for r in rows] == [r["sent_id"] for r in b]
            delta: Delta = paired_bootstrap([r["hyp"] for r in rows], [r["hyp"] for r in b], [r["ref"] for r in b],
                                            n_samples=cfg.bootstrap_samples)
            out["systems"][key][d] = delta.to_dict()
    return out


def _by_direction(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["direction"], []).append(r)
    return out
