"""The small default model: a Llama-style decoder trained from scratch, with aligned target positions."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ..data.varieties import variety_tag


def build_small_model(tok, *, d_model: int, n_layers: int, n_heads: int, d_ff: int, max_len: int,
                      seed: int, aligned_positions: bool = True) -> LlamaForCausalLM:
    """A small Llama-style decoder sized for a CPU (docs/design.md §4: the embedded default)."""
    extra = {"dde_target_position": max_len + 8} if aligned_positions else {}
    extra["dde_prompt_style"] = "tags"
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=d_model, intermediate_size=d_ff, num_hidden_layers=n_layers,
        num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=4 * max_len + 16,
        tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, rms_norm_eps=1e-5, **extra,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


@torch.no_grad()
def init_variety_tags(model, tokenizer, codes: list[str], *, like: str) -> list[str]:
    """Give every variety tag in ``codes`` that the model never trained on the embedding of the tag of ``like``.

    Which tags a base trained is in its ``config.json`` (``dde_trained_tags``, written by stage 1: MSA, English and,
    with dialect copies, the run's dialects); a tag listed there keeps what it learned.

    Stage 1 trains only the MSA and English tags; the dialect tags keep their random initial embeddings, so at the
    start of stage 2 a request for a dialect reads as noise and the first steps wreck what the base could do. Started
    from the MSA tag instead, a request for Egyptian is at first a request for MSA — copying, the base's strongest
    skill and exactly the entanglement the paper is about — and fine-tuning then pulls the tags apart. Only tags
    that are single tokens of the tokenizer are touched (a pre-trained model's tokenizer has none). Returns the codes
    whose tags were set."""

    def tag_id(code: str) -> int | None:
        ids = tokenizer(variety_tag(code), add_special_tokens=False)["input_ids"]
        return ids[0] if len(ids) == 1 else None

    src = tag_id(like)
    emb = model.get_input_embeddings().weight
    if src is None:
        return []
    trained = set(getattr(model.config, "dde_trained_tags", None) or ())
    done = []
    for code in codes:
        i = tag_id(code)
        if i is not None and i != src and code not in trained:
            emb[i] = emb[src]
            done.append(code)
    return done
