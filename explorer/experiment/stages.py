"""The training stages of a run: prepare (data and tokenizer), base (stage 1) and each arm (stage 2).

Each stage writes its artefacts through the experiment layout and marks itself done in the manifest; rerunning
the same command skips finished stages and resumes an unfinished one from its last checkpoint. All arms start
from the same base weights, see the same batches in the same order and run the same number of steps
(DESIGN.md §2.5).
"""

from __future__ import annotations

import shutil

import numpy as np

from ..config import RunConfig, derive
from ..data.examples import Encoder, Example, collate
from ..data.rundata import RunData
from ..files import write_json
from ..method.decoupler import Decoupler, DecoupleSettings
from ..model.loading import load_model
from ..model.sites import all_sites, default_sites, hidden_size, parse_site
from ..model.small import build_small_model, encoder_for
from ..model.tokenizer import prepare_tokenizer, train_tokenizer
from ..training.distributed import current as current_dist
from ..training.loop import LoopSpec, train_loop
from .layout import Experiment
from .models import load_base, pick_device
from .progress import Progress


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
    write_json(exp.data_info_path, {
        "corpus": data.corpus.name, "dialects": data.dialects, "codes": data.codes,
        "n_base_train": len(data.base_train), "n_stage2_train": len(data.stage2_train), "n_test": len(data.test),
        "notes": list(getattr(data.corpus, "notes", ())),
    })
    exp.mark_stage("prepare")


def stage_base(exp: Experiment, cfg: RunConfig, data: RunData, progress: Progress, stop_after=None) -> None:
    if exp.stage_done("base") or cfg.base_steps == 0:
        return
    device = pick_device()
    if cfg.model:
        model, tok = load_model(cfg.model, prompt_style=cfg.prompt_style)  # MERGE-NOTE(issue 11): same prompts as arms
    else:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(exp.tokenizer_dir, local_files_only=True)
        prepare_tokenizer(tok)
        model = build_small_model(tok, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                  d_ff=cfg.d_ff, max_len=cfg.max_len, seed=cfg.seed,
                                  aligned_positions=cfg.aligned_positions)
    model.to(device)
    enc = encoder_for(model, tok, data.codes, cfg.max_len)
    copies = tuple(i for i, e in enumerate(data.base_train) if e.src == e.tgt)
    spec = derive(LoopSpec, cfg, name="base", steps=cfg.base_steps, lr=cfg.base_lr, save_checkpoints=False,
                  warm_indices=copies, warm_steps=cfg.base_copy_warmup if copies else 0)
    folder = exp.stage("base")
    progress.stage("base", total=cfg.base_steps)
    info = train_loop(model, tok, enc, data.base_train, spec, folder, progress=progress, stop_after=stop_after)
    if current_dist().is_main:
        model.save_pretrained(exp.base_model_dir)
        tok.save_pretrained(exp.base_model_dir)
        exp.mark_stage("base", **info)
        folder.finish()
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
    enc = encoder_for(model, tok, data.codes, cfg.max_len)
    sites = resolve_sites(cfg, model)
    decoupler = None
    if arm != "baseline":
        s = derive(DecoupleSettings, cfg, arm=arm, kind="random" if arm == "random" else "probe", sites=tuple(sites))
        decoupler = Decoupler(s, hidden_size(model), data.codes,
                              probe_batches_fn(cfg, enc, data.probe_pool, tok.pad_token_id), dist=current_dist())
    spec = derive(LoopSpec, cfg, name=arm, save_checkpoints=True)
    folder = exp.stage(arm)
    progress.stage(arm, total=cfg.steps, arm=arm)
    info = train_loop(model, tok, enc, data.stage2_train, spec, folder, decoupler=decoupler, progress=progress,
                      stop_after=stop_after)
    if current_dist().is_main:
        exp.mark_stage(key, sites=sites, refits=len(exp.refits(arm)), **info)
        folder.finish()
    current_dist().barrier()
    progress.finish_stage(arm)
