"""The training stages of a run: prepare (data and tokenizer), base (stage 1) and each arm (stage 2).

Each stage writes its artefacts through the experiment layout and marks itself done in the manifest; rerunning
the same command skips finished stages and resumes an unfinished one from its last checkpoint. All arms start
from the same base weights, see the same batches in the same order and run the same number of steps
(docs/design.md §2.5).
"""

from __future__ import annotations

import shutil

import numpy as np
import torch

from ..config import RunConfig, derive
from ..data.examples import IGNORE, Encoder, Example, collate
from ..data.rundata import RunData
from ..data.varieties import HR, VARIETIES
from ..files import record_file, write_json
from ..method.decoupler import Decoupler, DecoupleSettings
from ..model.loading import load_model
from ..model.prompts import encoder_for
from ..model.sites import all_sites, default_sites, hidden_size, parse_site
from ..model.small import build_small_model
from ..model.tokenizer import load_tokenizer, train_tokenizer
from ..names import arm_kind, model_id, parse_model
from ..training.distributed import current as current_dist
from ..training.loop import LoopSpec, train_loop
from .integrity import discard_damaged_resume
from .layout import Experiment
from .models import load_base, pick_device, run_precision, uses_shipped_base, verified_shipped_base
from .progress import Progress
from .stagefolder import StageFolder


def stage_prepare(exp: Experiment, cfg: RunConfig, data: RunData) -> None:
    if exp.stage_done("prepare"):
        return
    base_card = None
    if cfg.model:
        load_model(cfg.model)  # fails clearly now rather than after an hour
    elif uses_shipped_base(cfg):
        base_card = check_shipped_base(cfg)
    else:
        texts = [t for e in data.base_train + data.stage2_train for t in (e.src_text, e.tgt_text)]
        # a tag for every variety of the table, not only this run's: a base trained once then serves any corpus
        tok = train_tokenizer(texts, vocab_size=cfg.vocab_size, tags=[v.code for v in VARIETIES])
        shutil.rmtree(exp.tokenizer_dir, ignore_errors=True)
        tok.save_pretrained(exp.tokenizer_dir)
        _record_folder(exp.tokenizer_dir)
    write_json(exp.data_info_path, {
        "corpus": data.corpus.name, "dialects": data.dialects, "codes": data.codes,
        "n_base_train": len(data.base_train), "n_stage2_train": len(data.stage2_train), "n_test": len(data.test),
        "notes": list(getattr(data.corpus, "notes", ())),
    })
    exp.mark_stage("prepare", **({"shipped_base": {k: base_card.get(k) for k in ("name", "code_version", "files")}}
                                 if base_card else {}))


def _record_folder(folder) -> None:
    """Check records for the files ``save_pretrained`` wrote (files.py writes its own)."""
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            record_file(f)


def check_shipped_base(cfg: RunConfig) -> dict:
    """The shipped base's card, after checking its files and that this run can start from it: the same FLORES split
    (the base trained on FLORES' training sentences: another split would put some of them in the test set) and
    source lengths within what its aligned positions allow."""
    card = verified_shipped_base()
    base = card["config"]
    if cfg.data == "flores" and (cfg.seed, cfg.dev_size, cfg.test_size) != \
            (base["seed"], base["dev_size"], base["test_size"]):
        raise ValueError(
            f"the shipped base was trained on the FLORES training split of seed {base['seed']} (dev "
            f"{base['dev_size']}, test {base['test_size']}); this run asks for seed {cfg.seed} (dev {cfg.dev_size}, "
            f"test {cfg.test_size}), whose test sentences the base may have seen. Use --seed {base['seed']} "
            f"--dev-size {base['dev_size']} --test-size {base['test_size']}, or train a base in the run with "
            "--base-steps N.")
    if cfg.data == "flores" and cfg.base_dialect_mt != base.get("base_dialect_mt", 0.0):
        raise ValueError(
            f"the shipped base translated the dialects of {base.get('base_dialect_mt', 0.0):.0%} of the FLORES train "
            f"ids in stage 1, and stage 2 must train on the others; this run asks for --base-dialect-mt "
            f"{cfg.base_dialect_mt}. Use --base-dialect-mt {base.get('base_dialect_mt', 0.0)} (the default and base "
            "presets do), or train a base in the run with --base-steps N.")
    if cfg.max_len > base["max_len"]:
        raise ValueError(f"--max-len {cfg.max_len} is longer than the shipped base's {base['max_len']} (its target side "
                         f"starts at a fixed position after that many source tokens); use --max-len {base['max_len']} "
                         "or less, or train a base with --base-steps N.")
    return card


def stage_base(exp: Experiment, cfg: RunConfig, data: RunData, progress: Progress, stop_after=None) -> None:
    if exp.stage_done("base") or cfg.base_steps == 0:
        return
    device = pick_device()
    if cfg.model:
        model, tok = load_model(cfg.model, prompt_style=cfg.prompt_style)  # the same prompts as the arms
    else:
        tok = load_tokenizer(exp.tokenizer_dir)
        model = build_small_model(tok, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                  d_ff=cfg.d_ff, max_len=cfg.max_len, seed=cfg.stage1_seed,
                                  aligned_positions=cfg.aligned_positions)
    model.to(device)
    enc = encoder_for(model, tok, data.codes, cfg.max_len)
    copies = tuple(i for i, e in enumerate(data.base_train)        # the warm-up copies MSA (not MSA LM examples)
                   if e.src == e.tgt == HR and e.src_text)
    # a base build (no arms) keeps its checkpoints: the base's learning curve is measured on them
    spec = derive(LoopSpec, cfg, name="base", steps=cfg.base_steps, lr=cfg.base_lr, save_checkpoints=not cfg.arms,
                  warm_indices=copies, warm_steps=cfg.base_copy_warmup if copies else 0, seed=cfg.stage1_seed,
                  jitter=cfg.base_jitter, bf16=run_precision(exp, cfg, device).bf16)
    folder = StageFolder(exp, "base")
    if current_dist().is_main:
        discard_damaged_resume(folder)
    current_dist().barrier()
    progress.stage("base", total=cfg.base_steps)
    info = train_loop(model, tok, enc, data.base_train, spec, folder, progress=progress, stop_after=stop_after)
    if current_dist().is_main:
        if not cfg.model:   # the tags stage 1 trained keep their embeddings at stage 2 (init_variety_tags)
            model.config.dde_trained_tags = sorted({e.src for e in data.base_train} | {e.tgt for e in data.base_train})
        model.save_pretrained(exp.base_model_dir)
        tok.save_pretrained(exp.base_model_dir)
        _record_folder(exp.base_model_dir)      # checked on every later run (integrity.py)
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


def probe_batches_fn(cfg: RunConfig, enc: Encoder, pool: list[Example], pad_id: int, seed: int):
    """step -> the batches of a fresh probe buffer (seeded by the run seed and the step, independent of the
    training batches). Sentences are drawn uniformly until the buffer holds about 1.3x ``probe_tokens`` tokens;
    each batch carries ``group``, the id of each row's sentence (``sent_id``), so the probe holds out whole
    sentences."""
    encoded = enc.encode_all(pool)
    sent_ids = sorted({e.sent_id for e in pool})
    group_of = {sid: i for i, sid in enumerate(sent_ids)}
    groups = np.array([group_of[e.sent_id] for e in pool])
    # the probe reads the source side only (method.decoupler.collect_buffer): count those tokens
    avg = max(1.0, float(np.mean([sum(1 for lab, v in zip(e[1], e[2]) if lab == IGNORE and v >= 0)
                                  for e in encoded])))
    n = min(len(encoded), int(cfg.probe_tokens / avg * 1.3) + 1)

    def fn(step: int) -> list[dict]:
        idx = np.random.default_rng([seed, 991, step]).choice(len(encoded), size=n, replace=False)
        idx = sorted(idx, key=lambda i: len(encoded[i][0]))      # less padding; every batch is read
        bs = max(cfg.batch_size, 16)
        out = []
        for b in range(0, len(idx), bs):
            rows = idx[b:b + bs]
            batch = collate([encoded[i] for i in rows], pad_id)
            batch["group"] = torch.as_tensor(groups[rows], dtype=torch.long)
            out.append(batch)
        return out
    return fn


def matched_redraws(exp: Experiment, cfg: RunConfig, seed: int) -> dict[int, dict[str, int]] | None:
    """The random control's schedule: step -> site -> rank of every U the ``decoupled`` arm of the same seed
    accepted (None when the run has no decoupled arm to follow: then it redraws every ``probe_every`` steps)."""
    if "decoupled" not in cfg.arms:
        return None
    model = model_id("decoupled", seed)
    if not exp.stage_done(exp.stage_key("arm", model)):
        raise RuntimeError(f"the random control of seed {seed} follows {model}'s refits, which is not trained yet")
    out: dict[int, dict[str, int]] = {}
    for r in exp.refits(model):
        ranks = {site: v["rank"] for site, v in r["sites"].items() if v.get("gate", {"accepted": True})["accepted"]}
        if ranks:
            out[int(r["step"])] = ranks
    return out


def stage_arm(exp: Experiment, cfg: RunConfig, data: RunData, model: str, progress: Progress,
              stop_after=None) -> None:
    """Train one arm with one stage-2 seed (``model`` is ``"<arm>.s<seed>"``): the seed sets its batch order and its
    probe buffers and random draws; everything else is shared by every arm of that seed."""
    key = exp.stage_key("arm", model)
    if exp.stage_done(key):
        return
    arm, seed = parse_model(model)
    base, tok = load_base(exp, cfg)
    enc = encoder_for(base, tok, data.codes, cfg.max_len)
    sites = resolve_sites(cfg, base)
    decoupler = None
    if arm_kind(arm) != "baseline":
        kind = "random" if arm_kind(arm) == "random" else "probe"
        s = derive(DecoupleSettings, cfg, arm=arm, kind=kind, sites=tuple(sites), seed=seed, lam=cfg.arm_lam(arm),
                   redraws=matched_redraws(exp, cfg, seed) if kind == "random" else None)
        decoupler = Decoupler(s, hidden_size(base), data.codes,
                              probe_batches_fn(cfg, enc, data.probe_pool, tok.pad_token_id, seed), dist=current_dist())
    spec = derive(LoopSpec, cfg, name=model, seed=seed, save_checkpoints=True,
                  bf16=run_precision(exp, cfg, base.device).bf16)
    folder = StageFolder(exp, model)
    if current_dist().is_main:
        discard_damaged_resume(folder)
    current_dist().barrier()
    progress.stage(model, total=cfg.steps, arm=model)
    info = train_loop(base, tok, enc, data.stage2_train, spec, folder, decoupler=decoupler, progress=progress,
                      stop_after=stop_after)
    if current_dist().is_main:
        refits = exp.refits(model)
        exp.mark_stage(key, sites=sites, refits=len(refits),
                       refits_accepted=sum(1 for r in refits if r.get("accepted", True)), **info)
        folder.finish()
    current_dist().barrier()
    progress.finish_stage(model)
