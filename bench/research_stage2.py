"""Stage-2 research: which fine-tuning recipe makes the shipped base write dialect (issue 13, item 4).

Trains the baseline arm only (no decoupling) from the shipped base under one recipe, evaluates its checkpoints on
the test split (MSA->dialect, dialect->MSA, EN<->MSA) and prints chrF++ per kind, the share of MSA->dialect outputs
the dialect classifier assigns to the requested dialect, the share called MSA and the share of sentences whose outputs
are the same for every target. One JSON line per evaluated checkpoint goes to ``--out``.

    python bench/research_stage2.py --name control --base --at 8,24,48,96,200 --seeds 1,
    python bench/research_stage2.py --name lr1e-4 --lr 1e-4 --at 24,96,200 --seeds 1,
    python bench/research_stage2.py --name kd0.5 --kd 0.5 --at 24,96,200 --seeds 1,

Every other option is the run's own (``python -m explorer run --help``), on top of the ``default`` preset. The
findings are in the README ("Why the arms do not write dialect")."""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explorer.training.loop as loop_module
from explorer.config import derive, preset_config
from explorer.options import add_config_options, overrides_from_args
from explorer.data.examples import IGNORE, parallel_examples
from explorer.data.rundata import load_run_data
from explorer.data.varieties import ENG, HR, direction_kind
from explorer.evaluation.chrf import corpus_chrf, sentence_chrf
from explorer.evaluation.decoding import translate
from explorer.evaluation.dialect_id import fit_for
from explorer.experiment.evaluate import looks_like
from explorer.model.loading import load_model
from explorer.model.shipped import SHIPPED_BASE
from explorer.model.prompts import encoder_for
from explorer.model.small import init_variety_tags
from explorer.training.loop import LoopSpec, train_loop
from explorer.training.resume import ResumeState


class MemorySink:
    """Keeps checkpoints in memory (fp16, like the real ones); nothing else."""

    def __init__(self, root: Path):
        self.resume = ResumeState(root / "state")
        self.ckpts: dict[int, dict[str, torch.Tensor]] = {}
        self.logs: list[dict] = []

    def begin(self, resume_step):
        pass

    def log(self, record):
        self.logs.append(record)

    def checkpoint(self, step, tensors):
        self.ckpts[step] = {k: v.detach().to(torch.float16).clone() for k, v in tensors.items()}

    def refit(self, refit):
        return {}


def evaluate(net, tok, enc, data, cfg, classifiers) -> dict:
    items = [(e.src, e.tgt, e.src_text) for e in data.test]
    hyps = translate(net, tok, enc, items, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size)
    records = [{"sent_id": e.sent_id, "direction": e.direction, "src": e.src, "tgt": e.tgt, "hyp": h, "ref": e.tgt_text}
               for e, h in zip(data.test, hyps)]
    by_kind: dict[str, list[float]] = {}
    for d in sorted({r["direction"] for r in records}):
        rows = [r for r in records if r["direction"] == d]
        s = corpus_chrf([r["hyp"] for r in rows], [r["ref"] for r in rows])
        by_kind.setdefault(direction_kind(rows[0]["src"], rows[0]["tgt"]), []).append(s)
    looks = looks_like(records, *classifiers)
    dirs = looks["directions"].values()
    return {"chrf": {k: round(float(np.mean(v)), 2) for k, v in by_kind.items()},
            "as_requested": round(float(np.mean([d["as_requested"] for d in dirs])), 3),
            "called_msa": round(float(np.mean([d["called_msa"] for d in dirs])), 3),
            "identical": looks["identical_across_targets"], "examples": records[:3]}


def kd_loss_fn(teacher, beta: float):
    """``training.loop.lm_loss`` plus distillation: (1 - beta) * CE(target) + beta * KL(base || model) at the same
    target positions (the frozen base as teacher: a brake on forgetting how to copy, Li & Hoiem 2016)."""
    def loss(model, inputs):
        plain = {k: v for k, v in inputs.items() if k != "labels"}
        target = inputs["labels"][:, 1:]
        keep = target != IGNORE
        logits = model.get_output_embeddings()(model.get_decoder()(**plain).last_hidden_state[:, :-1][keep]).float()
        with torch.no_grad():
            t = teacher.get_output_embeddings()(teacher.get_decoder()(**plain).last_hidden_state[:, :-1][keep]).float()
        kl = torch.nn.functional.kl_div(logits.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean")
        return (1 - beta) * torch.nn.functional.cross_entropy(logits, target[keep]) + beta * kl
    return loss


def only_training(net, pattern: str) -> None:
    """Freeze every parameter whose name does not match ``pattern`` (all train when it is empty)."""
    for n, p in net.named_parameters():
        p.requires_grad_(not pattern or bool(re.fullmatch(pattern, n)))


def fresh_base(data):
    net, tok = load_model(SHIPPED_BASE)
    init_variety_tags(net, tok, data.dialects, like=HR)
    return net, tok


def main() -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--name", required=True, help="label of this recipe in the output")
    ap.add_argument("--out", default="bench/out/research_stage2.jsonl")
    ap.add_argument("--at", default="", help="checkpoint steps to evaluate, comma-separated (default: the last)")
    ap.add_argument("--base", action="store_true", help="also evaluate the base (fp16-rounded, as a run does)")
    ap.add_argument("--min-sim", type=float, default=0.0,
                    help="keep only MSA<->dialect training pairs whose sentence chrF++ between the sides is >= this")
    ap.add_argument("--dialect-pairs", type=int, default=0,
                    help="add this many dialect->other-dialect training pairs (FLORES is multi-way parallel)")
    ap.add_argument("--kd", type=float, default=0.0, help="weight of KL(base || model) on the target positions")
    ap.add_argument("--train-params", default="", help="regex: only matching parameters train (e.g. '.*mlp.*')")
    ap.add_argument("--calib-steps", type=int, default=0,
                    help="before stage 2, this many steps training only --calib-params (a temperature fit)")
    ap.add_argument("--calib-lr", type=float, default=1e-2)
    ap.add_argument("--calib-params", default=r"model\.norm\.weight")
    own, rest = ap.parse_known_args()
    parser = argparse.ArgumentParser()
    add_config_options(parser)
    cfg = preset_config("default", **{**overrides_from_args(parser.parse_args(rest)), "arms": ("baseline",)})
    torch.manual_seed(0)
    data = load_run_data(cfg)
    if own.min_sim:
        before = len(data.stage2_train)
        data.stage2_train = [e for e in data.stage2_train
                             if HR not in (e.src, e.tgt) or ENG in (e.src, e.tgt) or e.src == e.tgt
                             or sentence_chrf(e.tgt_text, e.src_text) >= own.min_sim]
        print("stage-2 examples", before, "->", len(data.stage2_train), flush=True)
    if own.dialect_pairs:
        pairs = parallel_examples(data.corpus.split("train"),
                                  [(a, b) for a in data.dialects for b in data.dialects if a != b])
        pick = np.random.default_rng([cfg.seed, 5]).choice(len(pairs), size=min(own.dialect_pairs, len(pairs)),
                                                            replace=False)
        data.stage2_train = data.stage2_train + [pairs[i] for i in sorted(pick)]
    classifiers = (fit_for(cfg, [HR, *data.dialects]), fit_for(cfg, [HR, *data.dialects], msa_vs_dialect=True))
    net, tok = fresh_base(data)
    enc = encoder_for(net, tok, data.codes, cfg.max_len)
    results = []
    if own.base:
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(p.to(torch.float16))
        results.append({"name": "base", "step": 0, **evaluate(net, tok, enc, data, cfg, classifiers)})
        net, tok = fresh_base(data)
    at = [int(s) for s in own.at.split(",") if s] or [cfg.steps]
    spec = derive(LoopSpec, cfg, name="baseline.s0", seed=cfg.seeds[0], save_checkpoints=True,
                  ckpt_every=int(np.gcd.reduce(at)))
    with tempfile.TemporaryDirectory() as tmp:
        sink = MemorySink(Path(tmp))
        t0 = time.perf_counter()
        if own.calib_steps:
            only_training(net, own.calib_params)
            cspec = derive(LoopSpec, cfg, name="calib", seed=cfg.seeds[0] + 1000, save_checkpoints=False,
                           steps=own.calib_steps, lr=own.calib_lr, warmup=1)
            train_loop(net, tok, enc, data.stage2_train, cspec, MemorySink(Path(tmp) / "calib"))
        if own.kd:
            teacher = copy.deepcopy(net).eval().requires_grad_(False)
            loop_module.lm_loss = kd_loss_fn(teacher, own.kd)
        only_training(net, own.train_params)
        train_loop(net, tok, enc, data.stage2_train, spec, sink)
        train_s = time.perf_counter() - t0
    for step in at:
        net.load_state_dict({**net.state_dict(), **{k: v.float() for k, v in sink.ckpts[step].items()}})
        results.append({"name": own.name, "args": sys.argv[1:], "step": step, "train_s": round(train_s, 1),
                        **evaluate(net, tok, enc, data, cfg, classifiers)})
    with open(own.out, "a", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            print(r["name"], r["step"], r["chrf"], "as requested", r["as_requested"], "called MSA", r["called_msa"],
                  "identical", r["identical"], flush=True)


if __name__ == "__main__":
    main()
