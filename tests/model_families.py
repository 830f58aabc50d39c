"""Tiny random-weight models of every family --model supports (issue 11), saved like a user's folder.

Each family is (config class, config values, the tokenizer's specials, chat template). The tokenizers mimic the real
ones where it matters here: which of bos/eos/pad exist, and chat templates. Used by conftest's ``family_models``
fixture and by tests that need one more folder of a family.
"""

from __future__ import annotations

import torch

TEXTS = ["hello world this is a test", "مرحبا بالعالم هذا اختبار", "عامل ايه يا صاحبي", "ما هو اسمك؟"] * 20

# The families --model supports (issue 11), each as (config class, config, the tokenizer's specials, chat template).
# The tokenizers mimic the real ones where it matters here: which of bos/eos/pad exist, and chat templates.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GEMMA_CHAT = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else "
              "m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
              "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 256}
FAMILIES = {
    "llama": ("LlamaConfig", SMALL, {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"}, None),
    "qwen2": ("Qwen2Config", SMALL, {"eos": "<|endoftext|>", "pad": "<|endoftext|>", "extra": ["<|im_start|>",
                                                                                             "<|im_end|>"]}, CHATML),
    "qwen3": ("Qwen3Config", {**SMALL, "head_dim": 8}, {"eos": "<|im_end|>", "pad": "<|endoftext|>",
                                                      "extra": ["<|im_start|>"]}, CHATML),
    "gemma3": ("Gemma3TextConfig", {**SMALL, "head_dim": 8, "sliding_window": 16, "query_pre_attn_scalar": 8},
               {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>", "extra": ["<start_of_turn>", "<end_of_turn>"]},
               GEMMA_CHAT),
    "mistral": ("MistralConfig", {**SMALL, "sliding_window": None}, {"bos": "<s>", "eos": "</s>", "unk": "<unk>"}, None),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256},
             {"bos": "<|endoftext|>", "eos": "<|endoftext|>"}, None),
}
FAMILY_TEXTS = TEXTS + ["Translate from Modern Standard Arabic to Egyptian Arabic:", "Moroccan English user model",
                        "assistant system Tunisian Levantine"] * 10


def family_tokenizer(specials: dict, chat_template: str | None):
    """A byte-level BPE with a family's special tokens (no pad where the real one has none) and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    names = [specials[k] for k in ("bos", "eos", "pad", "unk") if k in specials] + specials.get("extra", [])
    names = list(dict.fromkeys(names))
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(FAMILY_TEXTS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=names, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    kw = {f"{k}_token": specials[k] for k in ("bos", "eos", "pad", "unk") if k in specials}
    tok = PreTrainedTokenizerFast(tokenizer_object=core, **kw)
    if chat_template:
        tok.chat_template = chat_template
    return tok


def build_family_model(family: str, folder, *, missing_rows: int = 0):
    """A random-weight model of ``family`` (``FAMILIES``) and its tokenizer, saved with save_pretrained;
    ``missing_rows`` > 0 gives the model that many embedding rows fewer than the tokenizer has tokens."""
    import transformers

    cls_name, values, specials, chat = FAMILIES[family]
    tok = family_tokenizer(specials, chat)
    config = getattr(transformers, cls_name)(vocab_size=len(tok) - missing_rows, bos_token_id=tok.bos_token_id,
                                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **values)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
