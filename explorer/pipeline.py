"""The whole experiment as resumable stages: prepare → base → arms → eval → represent → summary.

Each stage writes its artefacts into the experiment folder and marks itself done in the manifest;
rerunning the same command skips finished stages and resumes an unfinished arm from its last
checkpoint. All arms start from the same base weights, see the same batches in the same order and
run the same number of steps (DESIGN.md §2.5).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import RunConfig
from .corpus import ENG, HR, ParallelCorpus, load_base_pairs, load_corpus
from .distributed import current as current_dist
from .distributed import setup as setup_dist
from .evaluate import Delta, chrf_signature, paired_bootstrap, score_hypotheses, sentence_chrf, translate
from .examples import Encoder, Example, collate, pair_examples, parallel_examples
from .model import (
    all_sites,
    build_small_model,
    default_sites,
    hidden_size,
    load_model,
    parse_site,
    prepare_tokenizer,
    train_tokenizer,
)
from .store import Experiment, RunLock, read_json, read_jsonl, write_json, write_jsonl
from .train import (
    Decoupler,
    DecoupleSettings,
    LoopSpec,
    ResumeState,
    autocast_for,
    load_weights,
    train_loop,
)


def pick_device() -> torch.device:
    dist = current_dist()
    if dist.active:
        return dist.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- progress


class Progress:
    """Writes ``progress.json`` (throttled) for the app and draws a tqdm bar on stderr for people."""

    def __init__(self, exp: Experiment, *, bar: bool = True):
        self.exp = exp
        self.bar_enabled = bar and sys.stderr.isatty() or bar == "force"
        self.bar = None
        self.state: dict = {"status": "running", "started": time.time(), "stage": "prepare", "done_stages": []}
        self._last = 0.0

    def stage(self, name: str, total: int | None = None, **extra) -> None:
        self._close_bar()
        self.state.update({"stage": name, "step": 0, "total": total, "loss": None, "eta_s": None, **extra})
        if self.bar_enabled and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=name, unit="step", leave=True, dynamic_ncols=True)
        self.flush(force=True)

    def finish_stage(self, name: str) -> None:
        self._close_bar()
        self.state["done_stages"] = [*self.state["done_stages"], name]
        self.flush(force=True)

    def __call__(self, ev: dict) -> None:
        if ev.get("event") == "refit":
            sites = ev["refit"]["sites"]
            accs = [s["probe"]["accuracy"] for s in sites.values() if s.get("probe")]
            if accs:
                self.state["probe_accuracy"] = accs[0]
            self.state["refits"] = ev["refit"]["index"] + 1
        elif ev.get("event") == "step":
            prev = self.state.get("step") or 0
            self.state.update({k: ev.get(k) for k in ("step", "total", "loss", "penalty", "eta_s",
                                                       "tokens_per_s", "probe_accuracy")})
            if self.bar is not None:
                self.bar.update(ev["step"] - prev if ev["step"] >= prev else ev["step"])
                self.bar.set_postfix(loss=f"{ev['loss']:.3f}")
        elif ev.get("event") == "count":
            self.state["step"] = (self.state.get("step") or 0) + ev["n"]
            if self.bar is not None:
                self.bar.update(ev["n"])
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last > 0.5:
            self._last = now
            self.exp.write_progress(**self.state)

    def end(self, status: str, message: str = "") -> None:
        self._close_bar()
        self.state.update({"status": status, "message": message, "finished": time.time()})
        self.flush(force=True)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class NullProgress:
    """What ranks other than 0 report to: nothing (rank 0 writes progress.json)."""

    def stage(self, *a, **k) -> None: ...
    def finish_stage(self, *a, **k) -> None: ...
    def __call__(self, *a, **k) -> None: ...
    def end(self, *a, **k) -> None: ...


# ---------------------------------------------------------------- data for a run


@dataclass
class RunData:
    corpus: ParallelCorpus
    dialects: list[str]
    codes: list[str]              # variety index used for per-token labels: [HR, *dialects, ENG]
    base_train: list[Example]
    stage2_train: list[Example]
    probe_pool: list[Example]     # MSA<->dialect training examples (the probe's buffers come from here)
    test: list[Example]           # every evaluated (direction, sentence)


def load_run_data(cfg: RunConfig) -> RunData:
    corpus = load_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed)
    dialects = list(corpus.dialects)
    if cfg.varieties:
        unknown = [v for v in cfg.varieties if v not in dialects]
        if unknown:
            raise ValueError(f"--varieties {','.join(unknown)} not in the {corpus.name} corpus; "
                             f"available dialects: {','.join(dialects)}")
        dialects = [v for v in dialects if v in cfg.varieties]
    codes = [HR, *dialects, ENG]
    pairs = load_base_pairs(seed=cfg.seed)
    base_frame = pairs.frame[pairs.frame["split"] == "train"]
    base_train = pair_examples(base_frame)
    train = corpus.split("train")
    if corpus.has_english:  # FLORES' own train split also teaches EN<->MSA
        base_train += pair_examples(train.assign(sent_id=train["sent_id"]))
    base_train += copy_examples(base_train, cfg.base_copy, seed=cfg.seed)
    md = [(HR, d) for d in dialects] + [(d, HR) for d in dialects]
    probe_pool = parallel_examples(train, md)
    rng = np.random.default_rng([cfg.seed, 17])
    n_replay = round(len(probe_pool) * cfg.replay / max(1e-9, 1 - cfg.replay)) if cfg.replay > 0 else 0
    replay = [base_train[i] for i in rng.choice(len(base_train), size=min(n_replay, len(base_train)),
                                                replace=False)] if n_replay else []
    stage2 = probe_pool + replay
    test_frame = corpus.split("test")
    if cfg.eval_size:
        test_frame = test_frame.iloc[: cfg.eval_size]
    test = parallel_examples(test_frame, md)
    if corpus.has_english:
        test += parallel_examples(test_frame, [(ENG, HR), (HR, ENG)])
    else:
        pt = pairs.frame[pairs.frame["split"] == "test"]
        pt = pt.iloc[: cfg.eval_size] if cfg.eval_size else pt
        test += pair_examples(pt)
    return RunData(corpus, dialects, codes, base_train, stage2, probe_pool, test)


def copy_examples(base_train: list[Example], share: float, *, seed: int) -> list[Example]:
    """MSA→MSA examples making up ``share`` of the base stage (drawn, seeded, from its MSA sides).

    A pre-trained LM arrives knowing MSA well; a model trained from scratch on EN↔MSA alone never learns
    to reproduce Arabic text, so every MSA→dialect output starts from nothing. Copying MSA gives the base
    that competence cheaply, and makes "the model answers in MSA when asked for a dialect" (the entanglement
    the paper is about) the starting point of stage 2."""
    if share <= 0:
        return []
    if share >= 1:
        raise ValueError("--base-copy must be below 1 (it is the share of copy examples in stage 1)")
    msa = {e.tgt_text: e.sent_id for e in base_train if e.tgt == HR}
    texts = sorted(msa)
    n = min(len(texts), round(len(base_train) * share / (1 - share)))
    idx = np.random.default_rng([seed, 23]).choice(len(texts), size=n, replace=False)
    return [Example(HR, HR, texts[i], texts[i], f"copy:{msa[texts[i]]}") for i in sorted(idx)]


# ---------------------------------------------------------------- stages


def _loop_spec(cfg: RunConfig, name: str, out_dir: Path, *, steps: int, lr: float, save_ckpts: bool) -> LoopSpec:
    return LoopSpec(name=name, out_dir=out_dir, steps=steps, lr=lr, warmup=cfg.warmup,
                    weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, batch_size=cfg.batch_size,
                    ckpt_every=cfg.ckpt_every, seed=cfg.seed, bf16=cfg.bf16, save_checkpoints=save_ckpts)


def stage_prepare(exp: Experiment, cfg: RunConfig, data: RunData) -> None:
    if exp.stage_done("prepare"):
        return
    if cfg.model:
        load_model(cfg.model)  # fails clearly now rather than after an hour
    else:
        texts = [t for e in data.base_train + data.stage2_train for t in (e.src_text, e.tgt_text)]
        tok = train_tokenizer(texts, vocab_size=cfg.vocab_size, tags=data.codes)
        shutil.rmtree(exp.tokenizer_dir, ignore_errors=True)
        tok.save_pretrained(exp.tokenizer_dir)
    write_json(exp.root / "data.json", {
        "corpus": data.corpus.name, "dialects": data.dialects, "codes": data.codes,
        "n_base_train": len(data.base_train), "n_stage2_train": len(data.stage2_train), "n_test": len(data.test),
        "notes": list(getattr(data.corpus, "notes", ())),
    })
    exp.mark_stage("prepare")


def base_model_path(exp: Experiment, cfg: RunConfig) -> Path:
    if cfg.model and cfg.base_steps == 0:
        return Path(cfg.model).expanduser().resolve()
    return exp.base_model_dir


def load_base(exp: Experiment, cfg: RunConfig, device=None):
    model, tok = load_model(base_model_path(exp, cfg))
    return model.to(device or pick_device()), tok


def stage_base(exp: Experiment, cfg: RunConfig, data: RunData, progress: Progress, stop_after=None) -> None:
    if exp.stage_done("base") or cfg.base_steps == 0:
        return
    device = pick_device()
    if cfg.model:
        model, tok = load_model(cfg.model)
    else:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(exp.tokenizer_dir, local_files_only=True)
        prepare_tokenizer(tok)
        model = build_small_model(tok, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                  d_ff=cfg.d_ff, max_len=cfg.max_len, seed=cfg.seed,
                                  aligned_positions=cfg.aligned_positions)
    model.to(device)
    enc = Encoder.for_model(model, tok, data.codes, cfg.max_len)
    spec = _loop_spec(cfg, "base", exp.base_dir, steps=cfg.base_steps, lr=cfg.base_lr, save_ckpts=False)
    copies = tuple(i for i, e in enumerate(data.base_train) if e.src == e.tgt)
    spec = dataclasses.replace(spec, warm_indices=copies, warm_steps=cfg.base_copy_warmup if copies else 0)
    progress.stage("base", total=cfg.base_steps)
    info = train_loop(model, tok, enc, data.base_train, spec, progress=progress, stop_after=stop_after)
    if current_dist().is_main:
        model.save_pretrained(exp.base_model_dir)
        tok.save_pretrained(exp.base_model_dir)
        exp.mark_stage("base", **info)
        ResumeState(exp.base_dir / "state").drop()
    current_dist().barrier()
    progress.finish_stage("base")


def resolve_sites(cfg: RunConfig, model) -> list[str]:
    sites = list(cfg.sites) or list(default_sites(model))
    avail = all_sites(model)
    for s in sites:
        parse_site(s)
        if s not in avail:
            raise ValueError(f"site {s} does not exist; this model has {avail[0]} to {avail[-1]}")
    return sites


def probe_batches_fn(cfg: RunConfig, enc: Encoder, pool: list[Example], pad_id: int):
    """step -> the batches of a fresh probe buffer (seeded by the step, independent of training batches)."""
    encoded = enc.encode_all(pool)
    avg = max(1.0, float(np.mean([len(e[0]) for e in encoded])))
    n = min(len(encoded), int(cfg.probe_tokens / avg * 1.3) + 1)

    def fn(step: int) -> list[dict]:
        idx = np.random.default_rng([cfg.seed, 991, step]).choice(len(encoded), size=n, replace=False)
        idx = sorted(idx, key=lambda i: len(encoded[i][0]))
        bs = max(cfg.batch_size, 16)
        return [collate([encoded[i] for i in idx[b:b + bs]], pad_id) for b in range(0, len(idx), bs)]
    return fn


def stage_arm(exp: Experiment, cfg: RunConfig, data: RunData, arm: str, progress: Progress, stop_after=None) -> None:
    key = f"arm:{arm}"
    if exp.stage_done(key):
        return
    model, tok = load_base(exp, cfg)
    enc = Encoder.for_model(model, tok, data.codes, cfg.max_len)
    sites = resolve_sites(cfg, model)
    decoupler = None
    if arm != "baseline":
        s = DecoupleSettings(arm=arm, sites=sites, lam=cfg.lam, rank=cfg.rank, probe_every=cfg.probe_every,
                             probe_tokens=cfg.probe_tokens, probe_steps=cfg.probe_steps, squared=cfg.squared,
                             penalty_tokens=cfg.penalty_tokens, mode=cfg.mode, seed=cfg.seed)
        decoupler = Decoupler(s, hidden_size(model), data.codes, exp.arm_dir(arm),
                              probe_batches_fn(cfg, enc, data.probe_pool, tok.pad_token_id))
    spec = _loop_spec(cfg, arm, exp.arm_dir(arm), steps=cfg.steps, lr=cfg.lr, save_ckpts=True)
    progress.stage(arm, total=cfg.steps, arm=arm)
    info = train_loop(model, tok, enc, data.stage2_train, spec, decoupler=decoupler, progress=progress,
                      stop_after=stop_after)
    if current_dist().is_main:
        exp.mark_stage(key, sites=sites, refits=len(exp.refits(arm)), **info)
        ResumeState(exp.arm_dir(arm) / "state").drop()
    current_dist().barrier()
    progress.finish_stage(arm)


def load_arm(exp: Experiment, cfg: RunConfig, arm: str, step: int | None = None, device=None):
    """The model of an arm at a checkpoint (default: the last one), and its tokenizer."""
    model, tok = load_base(exp, cfg, device)
    if arm == "base":
        return model, tok
    steps = exp.checkpoints(arm)
    if not steps:
        raise FileNotFoundError(f"arm {arm!r} has no checkpoints in {exp.root}; run the experiment first")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise ValueError(f"arm {arm!r} has no checkpoint at step {step}; it has {steps}")
    from .store import load_tensors
    load_weights(model, load_tensors(exp.checkpoint_dir(arm, step) / "weights.safetensors"))
    return model, tok


def stage_eval(exp: Experiment, cfg: RunConfig, data: RunData, progress: Progress) -> None:
    keys = ["base", *cfg.arms]
    for key in keys:
        if exp.stage_done(f"eval:{key}"):
            continue
        model, tok = load_arm(exp, cfg, key)
        enc = Encoder.for_model(model, tok, data.codes, cfg.max_len)
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
        write_jsonl(exp.eval_dir / key / "hyps.jsonl", records)
        write_json(exp.eval_dir / key / "scores.json", {"model": key, "signature": chrf_signature(),
                                                         "directions": score_hypotheses(records)})
        exp.mark_stage(f"eval:{key}", seconds=round(time.perf_counter() - t0, 2))
        progress.finish_stage(f"eval {key}")
    if not (exp.eval_dir / "copy_source.json").exists():
        write_json(exp.eval_dir / "copy_source.json", copy_source_scores(data.test))
    if "baseline" in cfg.arms:
        write_json(exp.eval_dir / "deltas.json", compute_deltas(exp, cfg))


def copy_source_scores(test: list[Example]) -> dict:
    """chrF++ per direction of the trivial system that outputs its source unchanged.

    Between close varieties this is a high bar (MSA copied scores 45–98 against FLORES dialect references): a
    model's MSA→dialect score means little until it is set against it."""
    records = [{"direction": e.direction, "hyp": e.src_text, "ref": e.tgt_text} for e in test]
    return {"system": "copy the source", "signature": chrf_signature(), "directions": score_hypotheses(records)}


def compute_deltas(exp: Experiment, cfg: RunConfig) -> dict:
    """Each arm (and the base) vs baseline, per direction: Δ chrF++ with a 95% bootstrap interval."""
    base = _by_direction(read_jsonl(exp.eval_dir / "baseline" / "hyps.jsonl"))
    out: dict = {"reference": "baseline", "signature": chrf_signature(), "n_samples": cfg.bootstrap_samples,
                 "systems": {}}
    for key in ["base", *[a for a in cfg.arms if a != "baseline"]]:
        sysd = _by_direction(read_jsonl(exp.eval_dir / key / "hyps.jsonl"))
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


# ---------------------------------------------------------------- summary


def summary(exp: Experiment) -> dict:
    """Results as one JSON-ready dict: per model and direction chrF++, Δ vs baseline with CI, refits."""
    m = exp.manifest()
    cfg = exp.config()
    out = {"experiment": str(exp.root), "code_version": m["code_version"], "config": m["config"],
           "signature": chrf_signature(), "models": {}, "deltas": {}, "refits": {}, "complete": False}
    for key in ["base", *cfg.arms]:
        p = exp.eval_dir / key / "scores.json"
        if p.exists():
            out["models"][key] = read_json(p)["directions"]
    dp = exp.eval_dir / "deltas.json"
    if dp.exists():
        out["deltas"] = read_json(dp)["systems"]
    cp = exp.eval_dir / "copy_source.json"
    out["copy_source"] = read_json(cp)["directions"] if cp.exists() else {}
    for arm in cfg.arms:
        out["refits"][arm] = len(exp.refits(arm))
    out["stages"] = {k: v for k, v in m.get("stages", {}).items()}
    out["complete"] = all(exp.stage_done(f"eval:{k}") for k in ["base", *cfg.arms])
    return out


def summary_table(s: dict) -> str:
    """A readable table: one row per direction, one column per model, plus Δ(decoupled) [CI]."""
    models = list(s["models"])
    dirs = sorted({d for m in s["models"].values() for d in m})
    copy = s.get("copy_source", {})
    head = (f"{'direction':<12}" + "".join(f"{m:>11}" for m in models) + (f"{'copy src':>11}" if copy else "")
            + "   Δ decoupled [95% CI]")
    lines = [head, "-" * len(head)]
    for d in dirs:
        row = f"{d:<12}" + "".join(f"{s['models'][m].get(d, {}).get('chrf', float('nan')):>11.2f}" for m in models)
        if copy:
            row += f"{copy.get(d, {}).get('chrf', float('nan')):>11.2f}"
        dd = s.get("deltas", {}).get("decoupled", {}).get(d)
        if dd:
            row += f"   {dd['delta']:+6.2f} [{dd['low']:+.2f}, {dd['high']:+.2f}]"
        lines.append(row)
    lines.append(f"chrF++ signature: {s['signature']}")
    if copy:
        lines.append("copy src: the source itself as the output (the bar a model must clear between close varieties)")
    lines.append("probe refits: " + ", ".join(f"{a}={n}" for a, n in s["refits"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- the whole run


def run_experiment(cfg: RunConfig, out: str | Path, *, bar: bool = True, stop_after: dict | None = None,
                   represent: bool = True) -> Experiment:
    """Run (or resume) every stage. ``stop_after={"decoupled": 5}`` interrupts an arm after 5 steps (tests)."""
    cfg.validate()
    exp = Experiment(out)
    torch.manual_seed(cfg.seed)
    dist = setup_dist()            # a no-op unless started by a launcher (distributed.py)
    if not dist.is_main:
        dist.barrier()             # rank 0 checks the folder and writes the manifest first
        _run_training_rank(exp, cfg, stop_after or {})
        return exp
    with RunLock(exp):
        exp.init(cfg)
        progress = Progress(exp, bar=bar)
        try:
            dist.barrier()
            progress.stage("prepare")
            data = load_run_data(cfg)
            stage_prepare(exp, cfg, data)
            progress.finish_stage("prepare")
            dist.barrier()
            stop_after = stop_after or {}
            stage_base(exp, cfg, data, progress, stop_after=stop_after.get("base"))
            for arm in cfg.arms:
                stage_arm(exp, cfg, data, arm, progress, stop_after=stop_after.get(arm))
            stage_eval(exp, cfg, data, progress)
            if represent:
                try:
                    from .represent import stage_represent
                except ImportError:
                    stage_represent = None
                if stage_represent is not None:
                    stage_represent(exp, cfg, data, progress)
            write_json(exp.root / "summary.json", summary(exp))
            progress.end("done")
        except KeyboardInterrupt as e:
            progress.end("interrupted", str(e))
            raise
        except Exception as e:
            progress.end("failed", f"{type(e).__name__}: {e}")
            raise
    return exp


def _run_training_rank(exp: Experiment, cfg: RunConfig, stop_after: dict) -> None:
    """A rank other than 0: train its share of every batch of every stage; rank 0 does all the rest."""
    data = load_run_data(cfg)
    dist = current_dist()
    dist.barrier()                 # rank 0 has prepared (tokenizer)
    progress = NullProgress()
    stage_base(exp, cfg, data, progress, stop_after=stop_after.get("base"))
    for arm in cfg.arms:
        stage_arm(exp, cfg, data, arm, progress, stop_after=stop_after.get(arm))


def replace(cfg: RunConfig, **kw) -> RunConfig:
    return dataclasses.replace(cfg, **kw)
