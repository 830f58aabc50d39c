"""Run configuration: one frozen dataclass, presets, and the CLI options generated from it.

Every field is a command-line option (``--probe-every 100``); the presets only change defaults.
The config is saved inside every experiment folder, so an experiment can always be rebuilt and a
folder made by a different config is recognised, not silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .names import arm_lam, sweep_arm

ARMS = ("baseline", "decoupled", "random")
T = TypeVar("T")


def _opt(default: Any, help: str, **limits: Any) -> Any:
    """A RunConfig field with its ``--help`` text and, for numbers, its allowed range (``check_limits``):
    ``min``/``max`` inclusive, ``above``/``below`` exclusive; ``choices`` for strings."""
    return field(default=default, metadata={"help": help, **limits})


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines an experiment's results (docs/design.md §2, §4)."""

    preset: str = _opt("default", "the preset whose values every option defaults to")
    data: str = _opt("flores", "stage-2 corpus: 'flores' (embedded FLORES-200) or 'madar:/path/to/MADAR_Corpus' "
                     "(your copy of the release); inspect one with `python -m explorer data SPEC`")
    model: str = _opt("", "a local Hugging Face causal-LM folder to use as the base (nothing is downloaded); "
                      "empty = train the small built-in model")
    varieties: tuple[str, ...] = _opt((), "dialect codes to use, comma-separated (e.g. arz,ary; `python -m explorer "
                                      "data SPEC` lists a corpus's codes); empty = every dialect of the corpus")
    n_dialects: int = _opt(0, "use only the first N dialects of the corpus, in table order (0 = all)", min=0)
    seed: int = _opt(0, "seed of the data split, the tokenizer and stage 1", min=0)
    seeds: tuple[int, ...] = _opt((0,), "stage-2 seeds: a count (3 = seeds 0,1,2) or a list (0,5,7); every arm is "
                                  "trained once per seed (batch order, probe draws)")
    # --- data ---
    dev_size: int = _opt(100, "FLORES sentences held out for dev, the same ids in every variety (MADAR keeps its "
                         "official split)", min=0)
    test_size: int = _opt(100, "FLORES sentences held out for test (MADAR keeps its official split)", min=1)
    eval_size: int = _opt(40, "test sentences decoded per direction (0 = the whole test split)", min=0)
    max_len: int = _opt(64, "tokens per side (source, target); longer sentences are cut", min=4)
    # --- the small default model (ignored with --model) ---
    vocab_size: int = _opt(6000, "tokens in the built-in model's byte-level BPE vocabulary (ignored with --model)",
                           min=320)
    d_model: int = _opt(256, "hidden size of the built-in model (ignored with --model)", min=8)
    n_layers: int = _opt(4, "decoder layers of the built-in model (ignored with --model)", min=1)
    n_heads: int = _opt(4, "attention heads of the built-in model; must divide --d-model", min=1)
    d_ff: int = _opt(768, "feed-forward width of the built-in model (ignored with --model)", min=1)
    aligned_positions: bool = _opt(True, "the target side starts at a fixed position id (built-in model only; "
                                   "README, 'Why copying and aligned positions')")
    # --- stage 1: MSA-dominant base (EN<->MSA) ---
    base_steps: int = _opt(700, "stage-1 optimiser steps (the EN<->MSA base); 0 skips stage 1 (the default with "
                           "--model)", min=0)
    base_lr: float = _opt(2e-3, "stage-1 peak learning rate", above=0)
    base_copy: float = _opt(0.4, "share of MSA->MSA copy examples in stage 1, in [0, 1) (0 = translation only)",
                            min=0, below=1)
    base_copy_warmup: int = _opt(250, "stage 1 starts with this many copy-only steps", min=0)
    base_dialect_copy: float = _opt(0.0, "dialect->same-dialect copies in stage 1 (FLORES train sentences of the "
                                    "run's dialects), this many per MSA copy", min=0)
    base_lm: int = _opt(0, "stage 1: each FLORES train sentence of every Arabic variety of the run, this many times, as "
                        "a language-modelling example under its tag (nothing to translate; 0 = none)", min=0, max=8)
    base_dialect_mt: float = _opt(0.0, "stage 1: share of the FLORES train sentence ids whose MSA<->dialect and "
                                  "dialect<->dialect translations stage 1 trains on, in [0, 1); stage 2 then trains "
                                  "on the other ids only (0 = no dialect translation in stage 1)", min=0, below=1)
    base_dialect_times: int = _opt(1, "stage 1, with --base-dialect-mt: each dialect translation example this many "
                                   "times (more weight without more sentences)", min=1, max=8)
    base_dialect_pairs: float = _opt(1.0, "stage 1, with --base-dialect-mt: dialect<->dialect pairs per "
                                     "MSA->dialect pair (drawn from the stage-1 ids)", min=0)
    base_jitter: int = _opt(0, "stage 1, aligned positions: move each example's target side by a fresh offset in "
                            "[-N, N] every step, so that the base copies by content, not by distance", min=0, max=8)
    init_seed: int = _opt(-1, "seed of the built-in model's initial weights and stage-1 batch order (-1: the "
                          "same as --seed)", min=-1)
    # --- stage 2: arms (MSA<->dialect) ---
    tag_init: bool = _opt(True, "start every dialect tag from the MSA tag's embedding at stage 2 (built-in model; "
                          "model.small.init_variety_tags)")
    arms: tuple[str, ...] = _opt(ARMS, "arms to train, comma-separated, from " + ",".join(ARMS))
    steps: int = _opt(200, "stage-2 optimiser steps of each arm", min=1)
    lr: float = _opt(1e-3, "stage-2 peak learning rate", above=0)
    batch_size: int = _opt(32, "examples per optimiser step", min=1)
    replay: float = _opt(0.2, "share of EN<->MSA examples mixed into stage 2, in [0, 1)", min=0, below=1)
    warmup: int = _opt(30, "learning-rate warm-up, in optimiser steps", min=0)
    weight_decay: float = _opt(0.01, "AdamW weight decay", min=0)
    grad_clip: float = _opt(1.0, "gradient-norm clipping threshold", above=0)
    bf16: str = _opt("auto", "bf16 autocast for the forward pass: auto (where measured faster than fp32: GPUs with "
                     "bf16, CPUs with native bf16 that win a short measurement; training.precision), true or false",
                     choices=("auto", "true", "false"))
    ckpt_every: int = _opt(50, "checkpoint (weights + resume state) every N optimiser steps", min=1)
    # --- the method (docs/design.md §2) ---
    sites: tuple[str, ...] = _opt((), "decoder layers to act on, e.g. layer.02,layer.03 (layer.00 is the first); "
                                  "empty = the middle layer")
    lam: float = _opt(0.01, "λ, weight of the decoupling penalty (the paper: 0.01)", min=0)
    rank: int = _opt(1, "k, directions in the MSA subspace (INLP-style rounds beyond 1); below the hidden size",
                     min=1)
    probe_every: int = _opt(50, "refit the probe every N optimiser steps (the paper: 500 on full-size runs)", min=1)
    probe_tokens: int = _opt(4000, "hidden states (tokens) in each fresh probe buffer", min=16)
    probe_steps: int = _opt(200, "optimiser steps of each probe fit", min=1)
    squared: bool = _opt(False, "penalise ||U^T h||^2 instead of ||U^T h||")
    penalty_tokens: str = _opt("all", "which tokens the penalty applies to", choices=("all", "non_hr"))
    mode: str = _opt("penalty", "'penalty' (the paper) or 'project' (hard h <- (I-P)h during training)",
                     choices=("penalty", "project"))
    penalty_form: str = _opt("norm", "'norm' ||U^T h|| (the paper), 'normalised' ||U^T h||/||h|| or 'centred' "
                             "||U^T (h - mean h)||", choices=("norm", "normalised", "centred"))
    gate: float = _opt(0.01, "a refit replaces U only if its held-out accuracy beats chance at this one-sided "
                       "binomial level, in [0, 0.5) (0 = accept every refit)", min=0, below=0.5)
    sweep: tuple[float, ...] = _opt((), "extra decoupled arms at these λ values, comma-separated (e.g. 0.1,1)")
    # --- evaluation ---
    max_new_tokens: int = _opt(64, "tokens generated at most per test sentence", min=1)
    num_beams: int = _opt(1, "beam width of decoding (1 = greedy; the built-in model decodes greedily)", min=1)
    eval_batch_size: int = _opt(64, "test sentences decoded at once", min=1)
    bootstrap_samples: int = _opt(1000, "bootstrap resamples for each 95% interval", min=1)
    # --- representations (analysis set) ---
    analysis_size: int = _opt(100, "parallel test sentences per variety for the geometry and UMAP (0 = the whole "
                              "test split)", min=0)
    # --- real models at scale (issue 11): prompts, LoRA, activation checkpointing, COMET ---
    prompt_style: str = field(default="auto", metadata={"help": (
        "how a sequence is written: auto (tags for the built-in model, a natural-language instruction for a "
        "pre-trained --model), tags, instruction, or chat (the instruction inside the tokenizer's chat template)")})
    lora_rank: int = field(default=0, metadata={"help": (
        "LoRA adapters of this rank on every linear layer of the decoder blocks, base weights frozen (0 = train "
        "every weight); checkpoints then hold only the adapters")})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scale numerator: updates are scaled by alpha/rank"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA branch's input"})
    lora_targets: tuple[str, ...] = field(default=(), metadata={"help": (
        "module names that get adapters, e.g. q_proj,v_proj (empty = every linear layer of the decoder blocks)")})
    grad_checkpointing: bool = field(default=False, metadata={"help": (
        "recompute each decoder layer's activations in the backward pass instead of keeping them "
        "(less memory, about a third more compute)")})
    comet: str = field(default="", metadata={"help": (
        "a local COMET model folder (pip install -r requirements-comet.txt): evaluation adds COMET per direction "
        "beside chrF++; empty = no COMET")})
    comet_batch_size: int = field(default=16, metadata={"help": "sentences per COMET forward pass"})


    @property
    def stage1_seed(self) -> int:
        """The seed of the built-in model's initial weights and of stage 1's batch order."""
        return self.seed if self.init_seed < 0 else self.init_seed

    def validate(self) -> None:
        """Raise ValueError with an actionable message for inconsistent settings. Settings that depend on the
        model or the corpus (rank vs hidden size, sites vs layers, varieties) are ``experiment.preflight``'s."""
        check_limits(self)
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; choose from {list(ARMS)}")
        check_lists(self)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"--seeds must name distinct non-negative seeds, e.g. --seeds 3 (= 0,1,2) or "
                             f"--seeds 0,5,7; got {self.seeds}")
        if self.penalty_form not in ("norm", "normalised", "centred"):
            raise ValueError("--penalty-form must be 'norm' (the paper), 'normalised' or 'centred'")
        if not 0.0 <= self.gate < 0.5:
            raise ValueError(f"--gate is a significance level in [0, 0.5) (0 = no gate, 0.01 default); got {self.gate}")
        if self.n_dialects < 0:
            raise ValueError("--n-dialects must be 0 (all) or a positive number of dialects")
        if self.penalty_tokens not in ("all", "non_hr"):
            raise ValueError("--penalty-tokens must be 'all' or 'non_hr'")
        if self.mode not in ("penalty", "project"):
            raise ValueError("--mode must be 'penalty' or 'project'")
        if self.rank < 1:
            raise ValueError("--rank must be at least 1")
        if self.probe_every < 1 or self.ckpt_every < 1:
            raise ValueError("--probe-every and --ckpt-every must be at least 1")
        if self.steps < 1:
            raise ValueError("--steps must be at least 1")
        if self.num_beams > 1 and not self.model and self.aligned_positions:
            raise ValueError("--num-beams > 1 needs a model decoded by generate(): the built-in model uses aligned "
                             "target positions and is decoded greedily. Use --num-beams 1, or "
                             "--aligned-positions false (the built-in model then learns to copy far more slowly)")
        if self.d_model % self.n_heads:
            raise ValueError(f"--d-model {self.d_model} must be divisible by --n-heads {self.n_heads}")
        if self.prompt_style not in ("auto", "tags", "instruction", "chat"):
            raise ValueError("--prompt-style must be auto, tags, instruction or chat")
        if self.prompt_style in ("instruction", "chat") and not self.model:
            raise ValueError(f"--prompt-style {self.prompt_style} is for a pre-trained model given with --model; the "
                             "built-in model is trained from scratch with variety tags (--prompt-style auto or tags)")
        if self.lora_rank < 0 or self.lora_alpha <= 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError("--lora-rank must be >= 0 (0 = no LoRA), --lora-alpha > 0, --lora-dropout in [0, 1)")
        if self.comet and not Path(self.comet).expanduser().is_dir():
            raise ValueError(f"--comet {self.comet}: no such folder. Pass a local COMET model folder (e.g. one "
                             "downloaded with `hf download Unbabel/wmt22-comet-da --local-dir models/wmt22-comet-da`), "
                             "or leave --comet out")
        if self.d_model % self.n_heads:
            raise ValueError(f"--d-model {self.d_model} must be divisible by --n-heads {self.n_heads}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def all_arms(self) -> tuple[str, ...]:
        """The arms trained per seed: ``arms`` then one decoupled arm per ``sweep`` value (``sweep_arm``)."""
        return (*self.arms, *(sweep_arm(lam) for lam in self.sweep))

    def arm_lam(self, arm: str) -> float:
        """λ of an arm: the sweep value for a sweep arm, else ``lam``."""
        return arm_lam(arm, self.lam)

    def fingerprint(self) -> str:
        """Short hash of the result-determining settings (used to refuse mixing two configs in one folder)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """The config a manifest holds; fields it lacks (written by older code) take their defaults."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for k, v in d.items():
            if k in known:
                kwargs[k] = tuple(v) if isinstance(v, list) else v
        if isinstance(kwargs.get("bf16"), bool):      # written before --bf16 auto existed
            kwargs["bf16"] = "true" if kwargs["bf16"] else "false"
        return cls(**kwargs)


# Stage 1 of the shipped base (`python -m explorer base`); `default` keeps it, so that `--base-steps N` on it trains
# a base the same way.
SHIPPED_RECIPE: dict[str, Any] = {"base_jitter": 1, "base_dialect_copy": 0.25, "init_seed": 1,
                                  "base_lm": 1, "base_dialect_mt": 0.5, "base_dialect_pairs": 1.0}

PRESETS: dict[str, dict[str, Any]] = {
    # CI and tests: the whole pipeline in well under a minute on 2 CPU cores.
    "tiny": {
        "n_dialects": 2, "seeds": (0, 1), "dev_size": 20, "test_size": 20, "eval_size": 8, "max_len": 40,
        "vocab_size": 600, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128,
        # enough stage 1 for the base to copy MSA (chrF++ ~15 on MSA→dialect): the tests need real text
        "base_steps": 250, "base_copy_warmup": 150, "base_lr": 3e-3,
        "steps": 16, "batch_size": 16, "warmup": 4, "ckpt_every": 8, "probe_every": 8,
        "probe_tokens": 1500, "probe_steps": 60, "max_new_tokens": 24, "eval_batch_size": 16,
        "bootstrap_samples": 200, "analysis_size": 16, "bf16": "false", "lam": 0.01,
        # a model this small does not separate MSA from dialects beyond chance, so the gate would keep the decoupled
        # arm identical to the baseline; the tests need the machinery running (the gate is tested on its own)
        "gate": 0.0,
    },
    # The teaching demo: all 8 FLORES dialects, three seeds, starting from the shipped base (data/base/, no stage 1);
    # end-to-end time in the README's benchmarks. `--base-steps N` trains a base in the run instead, the same way.
    # lr 3e-4: the shipped base already writes dialect, and 1e-3 shook it (MSA→dialect chrF++ −4.7 in one seed)
    "default": {"seeds": (0, 1, 2), "base_steps": 0, "ckpt_every": 100, "lr": 3e-4, **SHIPPED_RECIPE},
    # The base that ships with the project (`python -m explorer base`): stage 1 alone, far longer than a run affords.
    # Its recipe (README, "The shipped base"): position jitter ±1 and dialect copies make it copy by content, which
    # stage 2 does not undo in its first steps; init seed 1 is the one whose copying switched on in research runs.
    "base": {"arms": (), "seeds": (0,), "base_steps": 4000, "eval_size": 0, **SHIPPED_RECIPE},
    # One GPU, end to end within 10 minutes (not measured; README, "Reproducing the paper on a GPU"): the built-in
    # model with twice the batch, 1,500 stage-1 steps and 2 seeds x 3 arms x 400 stage-2 steps (3,900 steps against
    # `default`'s 1,300 at one seed), the whole FLORES test split. On a GPU a step of a model this size costs its
    # per-step overhead (~90 ms measured on an H100 for `default`), not its FLOPs, so the budget is counted in steps.
    "gpu": {"seeds": (0, 1), "batch_size": 64, "base_steps": 1500, "steps": 400, "ckpt_every": 100,
            "probe_every": 100, "eval_size": 100, "eval_batch_size": 256, "analysis_size": 100},
    # A researcher's starting point on a GPU, e.g. Gemma 3 1B on MADAR (the paper refits every 500 steps on
    # full-size runs). Checkpoints every 1,000 steps: a 1B model's full fp16 weights are ~2 GB each (LoRA: MBs).
    "full": {"steps": 5000, "base_steps": 5000, "probe_every": 500, "ckpt_every": 1000, "eval_size": 0,
             "max_len": 128, "max_new_tokens": 128, "probe_tokens": 20000, "probe_steps": 300, "analysis_size": 200},
}

# The learning rate a pre-trained --model gets when --lr is not given: the presets' 1e-3 suits the small model
# trained from scratch and would wreck a pre-trained one. Usual fine-tuning values, not the paper's (it does not
# say): full fine-tuning 2e-5, LoRA 2e-4.
PRETRAINED_LR = {"full": 2e-5, "lora": 2e-4}


def derive(cls: type[T], cfg: RunConfig, **values: Any) -> T:
    """An instance of the frozen dataclass ``cls`` (a part's settings) whose fields named like ``RunConfig``
    fields take ``cfg``'s values; ``values`` gives the rest. A part's config is derived, never copied by hand."""
    own = {f.name for f in fields(cls)}
    shared = {f.name: getattr(cfg, f.name) for f in fields(RunConfig) if f.name in own and f.name not in values}
    return cls(**shared, **values)


def preset_config(name: str, **overrides: Any) -> RunConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    cfg = RunConfig(preset=name, **values)
    given = {k for k, v in overrides.items() if v is not None}
    if cfg.model and "base_steps" not in given:
        cfg = dataclasses.replace(cfg, base_steps=0)
    if cfg.model and "lr" not in given:
        cfg = dataclasses.replace(cfg, lr=PRETRAINED_LR["lora" if cfg.lora_rank else "full"])
    cfg.validate()
    return cfg


def check_lists(cfg: RunConfig) -> None:
    """The list options of a config: no arm twice, no arm that another trains already (a ``--sweep`` value equal
    to ``--lam`` beside the decoupled arm), no empty ``--arms`` outside the ``base`` preset (a run that trains
    nothing after stage 1). Each message gives a value that is accepted."""
    if not cfg.arms and cfg.preset != "base":
        raise ValueError("--arms is empty: the run would stop after stage 1 with nothing to compare. Name the arms "
                         f"to train, e.g. --arms {','.join(ARMS)} (or baseline,decoupled); to build a base alone "
                         "use `python -m explorer base`.")
    if len(set(cfg.arms)) != len(cfg.arms):
        raise ValueError(f"--arms names an arm twice ({','.join(cfg.arms)}); name each once: --arms "
                         f"{','.join(dict.fromkeys(cfg.arms))}")
    lam_arm = sweep_arm(cfg.lam) if "decoupled" in cfg.arms else None
    clean = list(dict.fromkeys(sweep_arm(x) for x in cfg.sweep if x is not None and x >= 0))
    clean = [cfg.arm_lam(a) for a in clean if a != lam_arm]
    fix = ("--sweep " + ",".join(f"{x:g}" for x in clean)) if clean else "no --sweep"
    if None in cfg.sweep:
        raise ValueError(f"--sweep has an empty item ({','.join('' if x is None else f'{x:g}' for x in cfg.sweep)})"
                         f". Use {fix}")
    names = [sweep_arm(x) for x in cfg.sweep]
    if any(x < 0 for x in cfg.sweep):
        raise ValueError(f"--sweep takes λ values ≥ 0; got {','.join(f'{x:g}' for x in cfg.sweep)}. Use {fix}")
    if len(set(names)) != len(names):
        raise ValueError(f"--sweep names a λ twice ({','.join(f'{x:g}' for x in cfg.sweep)}): the second arm "
                         f"would repeat the first. Use {fix}")
    if lam_arm in names:
        raise ValueError(f"--sweep {cfg.lam:g} repeats the decoupled arm, which trains at --lam {cfg.lam:g} "
                         f"already: it would be a second copy of it in the dose-response table. Use {fix}")


def check_limits(cfg: RunConfig) -> None:
    """Every number within the range its field declares (``_opt``), every string among its choices; the message
    names the option, the value and what to use instead."""
    for f in fields(cfg):
        m, v = f.metadata, getattr(cfg, f.name)
        flag = "--" + f.name.replace("_", "-")
        preset_value = PRESETS.get(cfg.preset, {}).get(f.name, f.default)
        hint = f"; the {cfg.preset} preset uses {preset_value}" if preset_value != v else ""
        if "choices" in m and v not in m["choices"]:
            raise ValueError(f"{flag} {v!r} is not one of {', '.join(m['choices'])}; use one of those{hint}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        lo, hi = m.get("min", m.get("above")), m.get("max", m.get("below"))
        bad = (("min" in m and v < m["min"]) or ("above" in m and v <= m["above"])
               or ("max" in m and v > m["max"]) or ("below" in m and v >= m["below"]))
        if bad:
            rng = (f"{'[' if 'min' in m else '('}{lo if lo is not None else '-inf'}, "
                   f"{hi if hi is not None else 'inf'}{']' if 'max' in m else ')'}")
            raise ValueError(f"{flag} must be in {rng}: {m['help']}; got {v}. Use a value in that range{hint}.")

