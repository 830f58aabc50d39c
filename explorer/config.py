"""Run configuration: one frozen dataclass, presets, and the CLI options generated from it.

Every field is a command-line option (``--probe-every 100``); the presets only change defaults.
The config is saved inside every experiment folder, so an experiment can always be rebuilt and a
folder made by a different config is recognised, not silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
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
    seed: int = 0
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
    # --- evaluation ---
    max_new_tokens: int = 64
    num_beams: int = 1
    eval_batch_size: int = 64
    bootstrap_samples: int = 1000
    # --- representations (analysis set) ---
    analysis_size: int = 100             # parallel sentences per variety for geometry / UMAP

    def validate(self) -> None:
        """Raise ValueError with an actionable message for inconsistent settings."""
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; choose from {list(ARMS)}")
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Short hash of the result-determining settings (used to refuse mixing two configs in one folder)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for k, v in d.items():
            if k in known:
                kwargs[k] = tuple(v) if isinstance(v, list) else v
        return cls(**kwargs)


PRESETS: dict[str, dict[str, Any]] = {
    # CI and tests: the whole pipeline in well under a minute on 2 CPU cores.
    "tiny": {
        "varieties": ("arz", "ary"), "dev_size": 20, "test_size": 20, "eval_size": 8, "max_len": 40,
        "vocab_size": 600, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128,
        "base_steps": 30, "base_copy_warmup": 10, "steps": 16, "batch_size": 16, "warmup": 4, "ckpt_every": 8, "probe_every": 8,
        "probe_tokens": 1500, "probe_steps": 60, "max_new_tokens": 24, "eval_batch_size": 16,
        "bootstrap_samples": 200, "analysis_size": 16, "bf16": False, "lam": 0.01,
    },
    # The teaching demo: all 8 FLORES dialects, about ten minutes on a 2-core CPU (see README benchmarks).
    "default": {},
    # A researcher's starting point on a GPU (the paper refits every 500 steps on full-size runs).
    "full": {"steps": 5000, "base_steps": 5000, "probe_every": 500, "ckpt_every": 500, "eval_size": 0, "max_len": 128,
                 "max_new_tokens": 128, "probe_tokens": 20000, "probe_steps": 300, "analysis_size": 200},
}


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
    if cfg.model and "base_steps" not in overrides:
        cfg = dataclasses.replace(cfg, base_steps=0)
    cfg.validate()
    return cfg


def add_config_options(parser) -> None:
    """Add one ``--option`` per RunConfig field (default None = keep the preset's value)."""
    for f in fields(RunConfig):
        if f.name == "preset":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=None,
                                type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                                metavar="true|false")
        elif isinstance(default, tuple):
            parser.add_argument(flag, dest=f.name, default=None,
                                type=lambda s: tuple(x for x in s.split(",") if x), metavar="A,B,...")
        else:
            parser.add_argument(flag, dest=f.name, default=None, type=type(default),
                                metavar=type(default).__name__.upper())


def overrides_from_args(args) -> dict[str, Any]:
    out = {}
    for f in fields(RunConfig):
        if f.name == "preset":
            continue
        v = getattr(args, f.name, None)
        if v is not None:
            out[f.name] = v
    return out
