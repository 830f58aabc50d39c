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

ARMS = ("baseline", "decoupled", "random")
T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines an experiment's results (DESIGN.md §2, §4)."""

    preset: str = "default"
    data: str = "flores"                 # "flores" (embedded) or "madar:/path/to/folder"
    model: str = ""                      # local HF causal-LM folder; empty = train the small default model
    varieties: tuple[str, ...] = ()      # dialects to use (empty = all in the corpus)
    n_dialects: int = 0                  # use only the first N dialects of the corpus, in table order (0 = all)
    seed: int = 0                        # the data split, the tokenizer and stage 1
    seeds: tuple[int, ...] = (0,)        # stage 2: every arm is trained once per seed (batch order, probe draws)
    # --- data ---
    dev_size: int = 100                  # FLORES sentences held out for dev (per variety, same ids)
    test_size: int = 100                 # FLORES sentences held out for test
    eval_size: int = 40                  # test sentences decoded per direction (0 = whole test split)
    max_len: int = 64                    # max tokens per side (source, target)
    # --- the small default model (ignored with --model) ---
    vocab_size: int = 6000
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 768
    aligned_positions: bool = True       # target side starts at a fixed position id (model.target_position)
    # --- stage 1: MSA-dominant base (EN<->MSA) ---
    base_steps: int = 700                # 0 skips stage 1 (the default with --model)
    base_lr: float = 2e-3
    base_copy: float = 0.4               # share of MSA→MSA (copy) examples in stage 1: the monolingual MSA
                                         # competence a pre-trained model brings (0 = translation only)
    base_copy_warmup: int = 250          # stage 1 starts with this many copy-only steps (a curriculum)
    # --- stage 2: arms (MSA<->dialect) ---
    tag_init: bool = True                # start every dialect tag from the MSA tag's embedding (model.small)
    arms: tuple[str, ...] = ARMS
    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 32
    replay: float = 0.2                  # share of EN<->MSA examples mixed into stage 2
    warmup: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    bf16: bool = True                    # CPU/GPU bf16 autocast for the forward pass
    ckpt_every: int = 50                 # checkpoint (weights + resume state) every N steps
    # --- the method (DESIGN.md §2) ---
    sites: tuple[str, ...] = ()          # e.g. ("layer.02",); empty = the middle decoder layer
    lam: float = 0.01                    # λ, the paper's value
    rank: int = 1                        # k: directions in the HR subspace (INLP-style rounds)
    probe_every: int = 50                # refit every N optimiser steps (the paper: 500 on full-size runs)
    probe_tokens: int = 4000             # tokens in each fresh probe buffer
    probe_steps: int = 200               # optimiser steps of each probe fit
    squared: bool = False                # penalise ||U^T h||^2 instead of ||U^T h||
    penalty_tokens: str = "all"          # "all" tokens or only "non_hr" (dialect) tokens
    mode: str = "penalty"                # "penalty" (the paper) or "project" (hard h <- (I-P)h during training)
    penalty_form: str = "norm"           # "norm" ||U^T h|| (the paper), "normalised" ||U^T h||/||h||, or
                                         # "centred" ||U^T (h - mean h)|| (the spread along U, not its offset)
    gate: float = 0.01                   # a refit replaces U only if its held-out accuracy beats chance at this
                                         # one-sided binomial level (0 = accept every refit)
    sweep: tuple[float, ...] = ()        # extra decoupled arms at these λ values ("decoupled-lam0.1", ...)
    # --- evaluation ---
    max_new_tokens: int = 64
    num_beams: int = 1
    eval_batch_size: int = 64
    bootstrap_samples: int = 1000
    # --- representations (analysis set) ---
    analysis_size: int = 100             # parallel sentences per variety for geometry / UMAP
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

    def validate(self) -> None:
        """Raise ValueError with an actionable message for inconsistent settings."""
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; choose from {list(ARMS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"--seeds must name distinct non-negative seeds, e.g. --seeds 3 (= 0,1,2) or "
                             f"--seeds 0,5,7; got {self.seeds}")
        if self.penalty_form not in ("norm", "normalised", "centred"):
            raise ValueError("--penalty-form must be 'norm' (the paper), 'normalised' or 'centred'")
        if not 0.0 <= self.gate < 0.5:
            raise ValueError(f"--gate is a significance level in [0, 0.5) (0 = no gate, 0.01 default); got {self.gate}")
        if any(x < 0 for x in self.sweep):
            raise ValueError(f"--sweep takes non-negative λ values, e.g. --sweep 0,0.1,1; got {self.sweep}")
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
        return float(arm.removeprefix("decoupled-lam")) if arm.startswith("decoupled-lam") else self.lam

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
        return cls(**kwargs)


def sweep_arm(lam: float) -> str:
    """The name of the decoupled arm trained at λ = ``lam`` in a sweep, e.g. ``decoupled-lam0.1``."""
    return f"decoupled-lam{lam:g}"


def arm_kind(arm: str) -> str:
    """"baseline", "decoupled" (any λ) or "random": what an arm does."""
    return "decoupled" if arm.startswith("decoupled") else arm


PRESETS: dict[str, dict[str, Any]] = {
    # CI and tests: the whole pipeline in well under a minute on 2 CPU cores.
    "tiny": {
        "n_dialects": 2, "seeds": (0, 1), "dev_size": 20, "test_size": 20, "eval_size": 8, "max_len": 40,
        "vocab_size": 600, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128,
        # enough stage 1 for the base to copy MSA (chrF++ ~15 on MSA→dialect): the tests need real text
        "base_steps": 250, "base_copy_warmup": 150, "base_lr": 3e-3,
        "steps": 16, "batch_size": 16, "warmup": 4, "ckpt_every": 8, "probe_every": 8,
        "probe_tokens": 1500, "probe_steps": 60, "max_new_tokens": 24, "eval_batch_size": 16,
        "bootstrap_samples": 200, "analysis_size": 16, "bf16": False, "lam": 0.01,
        # a model this small does not separate MSA from dialects beyond chance, so the gate would keep the decoupled
        # arm identical to the baseline; the tests need the machinery running (the gate is tested on its own)
        "gate": 0.0,
    },
    # The teaching demo: all 8 FLORES dialects, three seeds, about ten minutes on a 2-core CPU (README benchmarks).
    "default": {"seeds": (0, 1, 2)},
    # The base that ships with the project (`python -m explorer base`): stage 1 alone, far longer than a run affords.
    "base": {"arms": (), "seeds": (0,), "base_steps": 6000, "eval_size": 0},
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


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"3"`` -> (0, 1, 2) (that many seeds); ``"0,5,7"`` -> those seeds (``"5,"`` is the single seed 5)."""
    text = text.strip()
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return tuple(range(n))
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--seeds takes a count (e.g. 3 for seeds 0,1,2) or a list (e.g. 0,5,7); got {text!r}") from None


def add_config_options(parser) -> None:
    """Add one ``--option`` per RunConfig field (default None = keep the preset's value)."""
    for f in fields(RunConfig):
        if f.name == "preset":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = f.metadata.get("help")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=None,
                                type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                                metavar="true|false", help=help_text)
        elif f.name == "seeds":
            parser.add_argument(flag, dest=f.name, default=None, type=parse_seeds, metavar="N|A,B,...", help=help_text)
        elif f.name == "sweep":
            parser.add_argument(flag, dest=f.name, default=None, metavar="LAM,LAM,...", help=help_text,
                                type=lambda s: tuple(float(x) for x in s.split(",") if x.strip()))
        elif isinstance(default, tuple):
            parser.add_argument(flag, dest=f.name, default=None, help=help_text,
                                type=lambda s: tuple(x for x in s.split(",") if x), metavar="A,B,...")
        else:
            parser.add_argument(flag, dest=f.name, default=None, type=type(default),
                                metavar=type(default).__name__.upper(), help=help_text)


def overrides_from_args(args) -> dict[str, Any]:
    out = {}
    for f in fields(RunConfig):
        if f.name == "preset":
            continue
        v = getattr(args, f.name, None)
        if v is not None:
            out[f.name] = v
    return out
