"""The byte-level BPE tokenizer of the small default model, and what any tokenizer needs for batching."""

from __future__ import annotations

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ..data.varieties import variety_tag

SPECIALS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}


def train_tokenizer(texts: list[str], *, vocab_size: int, tags: list[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the corpus (no unknown tokens: any input encodes).

    The variety tags are added as special tokens so each is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(SPECIALS.values()) + [variety_tag(t) for t in tags]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS["pad"], bos_token=SPECIALS["bos"],
        eos_token=SPECIALS["eos"], unk_token=SPECIALS["unk"],
    )
    fast.add_special_tokens({"additional_special_tokens": [variety_tag(t) for t in tags]})
    return fast


def prepare_tokenizer(tok) -> None:
    """Make a tokenizer usable for batched training and left-padded generation."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    tok.padding_side = "left"


def load_tokenizer(folder) -> PreTrainedTokenizerFast:
    """A tokenizer saved with ``save_pretrained`` (offline), ready for batching."""
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    prepare_tokenizer(tok)
    return tok
