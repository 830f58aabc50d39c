"""Translation examples, their token encoding (with a variety label per token), padding and the batch schedule.

A training sequence is ``prefix source suffix target </s>``, laid out in one place (``Encoder._layout``) in one
of three prompt styles (``PROMPT_STYLES``), chosen per model (``model.prompts.encoder_for``):

- ``tags`` (the built-in model): ``[bos] <arb> source <arz> target </s>``, variety tags as single tokens;
- ``instruction`` (a pre-trained LM): a natural-language instruction naming both varieties
  (``varieties.prompt_name``)::

      Translate from Modern Standard Arabic to Egyptian Arabic:
      Modern Standard Arabic: <source>
      Egyptian Arabic: <target></s>

- ``chat``: the same instruction as the user turn of the tokenizer's chat template, the target as the
  assistant's reply (instruction-tuned models).

The loss covers only the target and ``</s>``. Every token also carries the variety of the segment it belongs
to (−1 for tags, instruction words, template tokens and padding), which is what the probe learns to tell apart
and what selects the tokens the decoupling penalty counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .varieties import ENG, HR, prompt_name, variety_tag

IGNORE = -100
PROMPT_STYLES = ("tags", "instruction", "chat")
_SOURCE_MARK = "<<<dde-source-text>>>"   # where the source goes in a rendered chat template
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")  # batch keys a forward pass takes


@dataclass(frozen=True)
class Example:
    src: str            # variety code of the source
    tgt: str            # variety code of the target
    src_text: str
    tgt_text: str
    sent_id: str = ""

    @property
    def direction(self) -> str:
        return f"{self.src}-{self.tgt}"


def directions_for(dialects: list[str], *, english: bool) -> list[tuple[str, str]]:
    """MSA→dialect and dialect→MSA for every dialect, plus EN↔MSA when there is English."""
    out = [(HR, d) for d in dialects] + [(d, HR) for d in dialects]
    if english:
        out += [(ENG, HR), (HR, ENG)]
    return out


def parallel_examples(frame, pairs: list[tuple[str, str]]) -> list[Example]:
    """Examples for each (src, tgt) pair and each row of a parallel frame (columns per variety)."""
    out = []
    for src, tgt in pairs:
        for sid, s, t in zip(frame["sent_id"], frame[src], frame[tgt]):
            out.append(Example(src, tgt, s, t, sid))
    return out


def pair_examples(frame) -> list[Example]:
    """EN→MSA and MSA→EN examples from a pair frame (columns ``eng``, ``arb``)."""
    ids = frame["sent_id"] if "sent_id" in frame else [f"pair-{i}" for i in range(len(frame))]
    out = []
    for sid, e, a in zip(ids, frame[ENG], frame[HR]):
        out.append(Example(ENG, HR, e, a, sid))
        out.append(Example(HR, ENG, a, e, sid))
    return out


def instruction(src: str, tgt: str) -> str:
    """The instruction of the ``instruction`` and ``chat`` styles, e.g. "Translate from Modern Standard Arabic to
    Egyptian Arabic:"."""
    return f"Translate from {prompt_name(src)} to {prompt_name(tgt)}:"


class Encoder:
    """Turns examples into token ids with per-token variety labels, in one prompt ``style`` (``PROMPT_STYLES``).
    Works with any HF tokenizer: in the ``tags`` style a tokenizer without our tags simply encodes them as text.

    With ``target_position`` (models trained with aligned positions, see ``model.prompts.target_position``;
    ``model.prompts.encoder_for`` builds the right encoder for a model) every encoded sequence also carries
    position ids: contiguous up to the end of the source, then the suffix (the target tag) and the target from
    ``target_position`` on."""

    def __init__(self, tokenizer, codes: list[str], max_len: int, target_position: int | None = None,
                 style: str = "tags"):
        if style not in PROMPT_STYLES:
            raise ValueError(f"unknown prompt style {style!r}; choose from {list(PROMPT_STYLES)}")
        if style == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt style 'chat' needs a tokenizer with a chat template, and this one has none "
                             "(tokenizer_config.json / chat_template.jinja). Use --prompt-style instruction.")
        self.tok = tokenizer
        self.codes = list(codes)
        self.index = {c: i for i, c in enumerate(self.codes)}
        self.max_len = max_len
        self.target_position = target_position
        self.style = style
        self._cache: dict[tuple, list[int]] = {}

    @property
    def aligned(self) -> bool:
        return self.target_position is not None

    def positions(self, n_source: int, n_rest: int) -> list[int]:
        """Position ids for ``n_source`` tokens up to the end of the source, then ``n_rest`` more."""
        if self.target_position is None:
            return list(range(n_source + n_rest))
        if n_source > self.target_position:
            raise ValueError(f"source of {n_source} tokens overlaps the target position {self.target_position}")
        return list(range(n_source)) + list(range(self.target_position, self.target_position + n_rest))

    def prompt_positions(self, prompt_ids: list[int], tgt: str) -> list[int]:
        """Position ids of a prompt from ``prompt`` (ending in the ``tgt`` suffix), without re-tokenising it."""
        n_suffix = len(self.suffix(tgt))
        return self.positions(len(prompt_ids) - n_suffix, n_suffix)

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _cached(self, key: tuple, make) -> list[int]:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def tag(self, code: str) -> list[int]:
        return self._cached(("tag", code), lambda: self._ids(variety_tag(code)))

    def _bos(self) -> list[int]:
        return [self.tok.bos_token_id] if self.tok.bos_token_id is not None else []

    def _chat_parts(self, src: str, tgt: str) -> tuple[str, str]:
        """The chat template rendered around the source: (text before it, text after it up to the reply)."""
        messages = [{"role": "user", "content": f"{instruction(src, tgt)}\n{_SOURCE_MARK}"}]
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if text.count(_SOURCE_MARK) != 1:
            raise ValueError("the tokenizer's chat template does not show the user's message once; "
                             "use --prompt-style instruction")
        before, after = text.split(_SOURCE_MARK)
        return before, after

    def prefix(self, src: str, tgt: str) -> list[int]:
        """The ids before the source: ``[bos] <src>``, ``[bos] instruction \n Source-name:`` or the chat
        template up to the user's text."""
        def make():
            if self.style == "tags":
                return self._bos() + self.tag(src)
            if self.style == "instruction":
                return self._bos() + self._ids(f"{instruction(src, tgt)}\n{prompt_name(src)}:")
            before = self._ids(self._chat_parts(src, tgt)[0])
            bos = self._bos()
            return before if (not bos or before[:1] == bos) else bos + before
        return self._cached(("prefix", src, tgt), make)

    def suffix(self, tgt: str) -> list[int]:
        """The ids between the source and the target: ``<tgt>``, ``\n Target-name:`` or the end of the user turn
        and the start of the assistant's (which does not depend on the text)."""
        def make():
            if self.style == "tags":
                return self.tag(tgt)
            if self.style == "instruction":
                return self._ids(f"\n{prompt_name(tgt)}:")
            return self._ids(self._chat_parts(tgt, tgt)[1])
        return self._cached(("suffix", tgt), make)

    def _layout(self, src: str, tgt: str, s_ids: list[int], t_ids: list[int] | None) -> tuple:
        """The one place a sequence is laid out. Without ``t_ids``: (ids, variety labels) of the prompt
        ``prefix source suffix``; with them: (ids, LM labels, variety labels[, positions]) of the whole
        training sequence, the target followed by ``</s>``. Prefix and suffix tokens are labelled −1."""
        pre, suf = self.prefix(src, tgt), self.suffix(tgt)
        s_ids = s_ids[: self.max_len]
        p_ids = pre + s_ids + suf
        p_var = [-1] * len(pre) + [self.index.get(src, -1)] * len(s_ids) + [-1] * len(suf)
        if t_ids is None:
            return p_ids, p_var
        t_ids = t_ids[: self.max_len] + [self.tok.eos_token_id]
        var = p_var + [self.index.get(tgt, -1)] * (len(t_ids) - 1) + [-1]
        row = (p_ids + t_ids, [IGNORE] * len(p_ids) + t_ids, var)
        if self.aligned:
            row += (self.positions(len(p_ids) - len(suf), len(suf) + len(t_ids)),)
        return row

    def prompt(self, src: str, tgt: str, text: str) -> tuple[list[int], list[int]]:
        """Token ids and variety labels of ``prefix text suffix`` (what generation continues)."""
        return self._layout(src, tgt, self._ids(" " + text.strip()), None)

    def example(self, ex: Example) -> tuple:
        """(input_ids, labels for the LM loss, variety label per token[, position ids when aligned])."""
        return self.encode_all([ex])[0]

    def encode_all(self, examples: list[Example]) -> list[tuple]:
        """``example`` for many at once: one batched tokenizer call per side (fast tokenizers run it in Rust)."""
        if not examples:
            return []
        # an empty source (a language-modelling example, data.rundata.lm_examples) encodes to no token at all
        src = self.tok([" " + e.src_text.strip() if e.src_text.strip() else "" for e in examples],
                       add_special_tokens=False)["input_ids"]
        tgt = self.tok([" " + e.tgt_text.strip() for e in examples], add_special_tokens=False)["input_ids"]
        return [self._layout(e.src, e.tgt, s, t) for e, s, t in zip(examples, src, tgt)]


def jitter_rows(rows: list[tuple], target_position: int, jitter: int, rng: np.random.Generator) -> list[tuple]:
    """Aligned rows with their target side (tag and target) moved by a fresh offset drawn uniformly from
    [-jitter, jitter] per row, never so far back that the target would start inside the source.

    Training a base with a small jitter makes it copy by content rather than by a fixed source-to-target
    distance: without it, stage 2's targets (which differ from the source after the first changed word) rewrite
    the position-based copy in a few steps (README, "Why copying and aligned positions")."""
    out = []
    for row, off in zip(rows, rng.integers(-jitter, jitter + 1, size=len(rows))):
        pos = row[3]
        last_source = max((p for p in pos if p < target_position), default=-1)
        off = max(int(off), last_source + 1 - target_position)
        out.append((*row[:3], [p + off if p >= target_position else p for p in pos]))
    return out


def pad(rows: Sequence[Sequence[int | float]], value: float, *, side: str = "right",
        dtype: torch.dtype = torch.long) -> torch.Tensor:
    """(B, T) tensor of ``rows`` padded with ``value`` to the longest row, on the ``right`` (training, pooling)
    or on the ``left`` (prompts that generation continues)."""
    T = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), T), value, dtype=dtype)
    for i, r in enumerate(rows):
        if len(r):
            if side == "right":
                out[i, :len(r)] = torch.tensor(r, dtype=dtype)
            else:
                out[i, T - len(r):] = torch.tensor(r, dtype=dtype)
    return out


def collate(encoded: list[tuple], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch for training: input_ids, attention_mask, labels, variety (B, T), and
    position_ids when the rows carry them (aligned positions; padding continues each row's count)."""
    T = max(len(e[0]) for e in encoded)
    out = {"input_ids": pad([r[0] for r in encoded], pad_id), "attention_mask": pad([[1] * len(r[0]) for r in encoded], 0),
           "labels": pad([r[1] for r in encoded], IGNORE), "variety": pad([r[2] for r in encoded], -1)}
    if len(encoded[0]) > 3:
        out["position_ids"] = pad([list(r[3]) + list(range(r[3][-1] + 1, r[3][-1] + 1 + T - len(r[0])))
                                   for r in encoded], 0)
    return out


def batch_schedule(lengths: list[int], *, batch_size: int, steps: int, seed: int, bucket: int = 50) -> list[np.ndarray]:
    """The exact batches for ``steps`` optimiser steps, fixed by the seed.

    Each epoch is a seeded permutation, cut into chunks of ``bucket`` batches that are sorted by
    length inside the chunk (less padding, same randomness). Every arm gets this same list, and a
    resumed run continues from ``schedule[step]``, so batches never depend on history."""
    n = len(lengths)
    if n == 0:
        raise ValueError("no training examples: check the corpus and the --varieties option")
    lens = np.asarray(lengths)
    out: list[np.ndarray] = []
    epoch = 0
    while len(out) < steps:
        rng = np.random.default_rng([seed, epoch])
        perm = rng.permutation(n)
        chunk = batch_size * bucket
        for c0 in range(0, n, chunk):
            part = perm[c0:c0 + chunk]
            part = part[np.argsort(lens[part], kind="stable")]
            batches = [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
            order = rng.permutation(len(batches))
            out.extend(batches[j] for j in order)
        epoch += 1
    return out[:steps]


def phased_schedule(lengths: list[int], *, batch_size: int, steps: int, seed: int,
                    warm_indices: list[int] | None = None, warm_steps: int = 0) -> list[np.ndarray]:
    """``batch_schedule`` preceded by ``warm_steps`` batches drawn only from ``warm_indices`` (a curriculum).

    Stage 1 uses it to teach copying first: with the copy examples alone for a few hundred steps the
    model learns to reproduce its input (a sharp, early transition), and then keeps that skill while
    it learns EN↔MSA; mixed from the start it takes far longer (README, "Why a copy warm-up")."""
    warm_steps = min(warm_steps, steps) if warm_indices else 0
    if not warm_steps:
        return batch_schedule(lengths, batch_size=batch_size, steps=steps, seed=seed)
    idx = np.asarray(warm_indices)
    warm = batch_schedule([lengths[i] for i in idx], batch_size=batch_size, steps=warm_steps, seed=seed)
    rest = batch_schedule(lengths, batch_size=batch_size, steps=steps - warm_steps, seed=seed + 1) \
        if steps > warm_steps else []
    return [idx[b] for b in warm] + rest
