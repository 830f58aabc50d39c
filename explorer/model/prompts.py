"""How a model reads its input, whatever the model: the prompt style and positions it was trained with, and the
encoder that lays out sequences that way (training, probe buffers, decoding and the app all ask here)."""

from __future__ import annotations

from ..data.examples import PROMPT_STYLES, Encoder
from ..data.varieties import HR, variety_tag


def target_position(model_or_config) -> int | None:
    """The position id at which the target side starts, for a model trained with aligned positions; else None.

    Our small model is trained with the target tag always at this position, whatever the source length, so
    that target token j sits at a fixed distance from source token j. Translation between close varieties is
    mostly monotone, and a fixed offset lets rotary attention learn "copy what is across" in a few hundred
    steps; with contiguous positions the offset changes with every source length and a model this small needs
    thousands of steps to learn to copy at all (README, "Why aligned positions"). Pre-trained models keep
    their own contiguous positions (None)."""
    cfg = getattr(model_or_config, "config", model_or_config)
    value = getattr(cfg, "dde_target_position", None)
    return int(value) if value is not None else None


def prompt_style(model_or_config, tokenizer) -> str:
    """The prompt style (``data.examples.PROMPT_STYLES``) a model reads.

    In order: the style recorded in its config (``dde_prompt_style``: the built-in model says ``tags``; a run's
    ``--prompt-style`` is set there when the model is loaded); ``tags`` for a model trained with aligned positions
    or whose tokenizer has the variety tags as single tokens (built by this tool before the style was recorded);
    otherwise ``instruction``, the natural-language prompt that suits a pre-trained LM."""
    cfg = getattr(model_or_config, "config", model_or_config)
    style = getattr(cfg, "dde_prompt_style", None)
    if style in PROMPT_STYLES:
        return style
    if target_position(cfg) is not None:
        return "tags"
    tag = variety_tag(HR)
    if tag in getattr(tokenizer, "all_special_tokens", ()) or tag in tokenizer.get_added_vocab():
        return "tags"
    return "instruction"


def encoder_for(model, tokenizer, codes: list[str], max_len: int) -> Encoder:
    """The encoder that lays out sequences the way ``model`` was trained: its prompt style (``prompt_style``) and
    its positions (aligned or not)."""
    return Encoder(tokenizer, codes, max_len, target_position(model), style=prompt_style(model, tokenizer))
