"""Every setting checked before any work: what depends on the model and the corpus, after ``RunConfig.validate``.

A run that would fail late (``--rank 65`` in the third arm after two trained, ``--sites layer.07`` after stage 1,
``--varieties`` naming a dialect the corpus lacks) fails here instead, in well under a second, before the
experiment folder is created, with a message that says what to use instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..config import RunConfig
from ..data.corpus import ParallelCorpus
from ..data.rundata import run_dialects
from ..data.sources import load_corpus
from ..model.errors import ModelLoadError
from ..model.loading import check_model_dir, check_vocab, load_tokenizer_of, resolve_model
from ..model.shipped import SHIPPED_BASE
from ..model.sites import parse_site, site_name


@dataclass(frozen=True)
class ModelShape:
    """What the checks need to know of the base model, read without loading it."""

    hidden_size: int
    n_layers: int
    max_positions: int | None
    what: str            # "the built-in model" or the model folder, for messages


def model_shape(cfg: RunConfig) -> ModelShape:
    """Hidden size and decoder-layer count of the base: the model's ``config.json`` for ``--model`` (a text config
    nested under ``text_config``, as Gemma 3 writes it, included), else the built-in model's settings."""
    if not cfg.model and cfg.base_steps:
        return ModelShape(cfg.d_model, cfg.n_layers, None, "the built-in model")
    folder = SHIPPED_BASE if not cfg.model else check_model_dir(resolve_model(cfg.model))
    path = folder / "config.json"
    if not path.is_file() and not cfg.model:
        raise ModelLoadError(f"{path} is missing: the shipped base is not in this copy of the project. Restore "
                             "data/base/ from the repository, rebuild it with `python -m explorer base`, or train a "
                             "base in the run with --base-steps N.")
    conf = json.loads(path.read_text(encoding="utf-8"))
    text = conf.get("text_config") if isinstance(conf.get("text_config"), dict) else {}

    def first(*keys: str) -> int | None:
        for d in (text, conf):
            for k in keys:
                if isinstance(d.get(k), int):
                    return d[k]
        return None

    d = first("hidden_size", "n_embd", "d_model")
    n = first("num_hidden_layers", "n_layer", "num_layers")
    if d is None or n is None:
        raise ModelLoadError(f"{path} names no hidden size (hidden_size/n_embd/d_model) or layer count "
                             "(num_hidden_layers/n_layer/num_layers); is this a causal language model?")
    if cfg.model:        # a tokenizer whose ids reach past the embedding fails deep in training: refuse it now
        check_vocab(load_tokenizer_of(folder), first("vocab_size"), folder)
    what = "the shipped base" if not cfg.model else str(folder)
    return ModelShape(d, n, first("max_position_embeddings", "n_positions"), what)


def preflight(cfg: RunConfig, *, corpus: ParallelCorpus | None = None) -> None:
    """Raise ValueError (a ``CorpusError`` or ``ModelLoadError`` among them) for any setting this model or this
    corpus cannot run. ``corpus`` saves loading it a second time when the caller already has it."""
    cfg.validate()
    shape = model_shape(cfg)
    _check_method(cfg, shape)
    if corpus is None:
        corpus = load_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed)
    _check_data(cfg, corpus)


def _check_method(cfg: RunConfig, shape: ModelShape) -> None:
    d, n = shape.hidden_size, shape.n_layers
    if cfg.rank >= d:
        raise ValueError(f"--rank {cfg.rank} is not below the hidden size {d} of {shape.what}: the subspace removed "
                         f"from the hidden states must leave some of them. Use --rank 1 to {d - 1} (the paper "
                         "uses a one-vs-rest probe: rank 1).")
    if len(set(cfg.sites)) != len(cfg.sites):
        raise ValueError(f"--sites names a layer twice ({','.join(cfg.sites)}); name each once.")
    for site in cfg.sites:
        try:
            i = parse_site(site)
        except ValueError:
            raise ValueError(f"--sites {site!r} is not a layer name; use layer.NN, e.g. {site_name(n // 2)} "
                             f"({shape.what} has layers {site_name(0)} to {site_name(n - 1)}).") from None
        if not 0 <= i < n:
            raise ValueError(f"--sites {site}: {shape.what} has {n} decoder layers, {site_name(0)} to "
                             f"{site_name(n - 1)}; use one of those (the middle one, {site_name(n // 2)}, is the "
                             "default).")
    need = 2 * cfg.max_len + cfg.max_new_tokens + 8
    if shape.max_positions is not None and need > shape.max_positions:
        raise ValueError(f"--max-len {cfg.max_len} with --max-new-tokens {cfg.max_new_tokens} needs {need} "
                         f"positions, but {shape.what} has {shape.max_positions}; lower --max-len to at most "
                         f"{max(1, (shape.max_positions - cfg.max_new_tokens - 8) // 2)}.")


def _check_data(cfg: RunConfig, corpus: ParallelCorpus) -> None:
    run_dialects(corpus, cfg.varieties, cfg.n_dialects)
    for split in ("train", "test"):
        if not len(corpus.split(split)):
            raise ValueError(f"the {corpus.name} corpus has no {split} sentences; "
                             + ("lower --dev-size/--test-size." if corpus.name == "flores" else
                                "its files hold no rows of that split: check the split column."))

