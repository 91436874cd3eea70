"""Tokenizers and small transformer backbones for the synthetic NLP rounds, built locally.

Nothing is downloaded: tokenizers are trained on the synthetic corpus with the `tokenizers` library
and wrapped in the transformers tokenizer class of each family; backbones are built from transformers
config classes with random weights (the generators then train them). File names follow the
competition: `<embedding>-<flavor>.pt` with `/` replaced by `-`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Family:
    embedding: str  # the competition's `embedding` value
    flavor: str  # `embedding_flavor`
    architecture: str  # bert | distilbert | gpt2 | roberta
    lowercase: bool

    @property
    def file_name(self) -> str:
        return archive_name(self.embedding, self.flavor)

    @property
    def cls_token_is_first(self) -> bool:
        return self.architecture != "gpt2"


SENTIMENT_FAMILIES = {
    "BERT": Family("BERT", "bert-base-uncased", "bert", True),
    "GPT-2": Family("GPT-2", "gpt2", "gpt2", False),
    "DistilBERT": Family("DistilBERT", "distilbert-base-uncased", "distilbert", True),
}
NER_FAMILIES = {
    "BERT": Family("BERT", "bert-base-uncased", "bert", True),
    "DistilBERT": Family("DistilBERT", "distilbert-base-cased", "distilbert", False),
    "RoBERTa": Family("RoBERTa", "roberta-base", "roberta", False),
}


def archive_name(embedding: str, flavor: str) -> str:
    """`<embedding>-<flavor>.pt` with `/` -> `-`, as the competition named embeddings and tokenizers."""
    return f"{embedding}-{flavor}.pt".replace("/", "-")


def train_tokenizer(family: Family, texts: list[str], vocab_size: int, max_length: int):
    """A transformers tokenizer of the family's class, trained on `texts` (WordPiece or byte-level BPE).

    GPT-2's has no pad token, as the competition's did; RoBERTa's adds a prefix space (needed for
    words given one by one in NER).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer, DistilBertTokenizer, GPT2Tokenizer, RobertaTokenizer

    if family.architecture in ("bert", "distilbert"):
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=family.lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
        tokenizer.train_from_iterator(texts, trainer)
        cls = BertTokenizer if family.architecture == "bert" else DistilBertTokenizer
        result = cls(vocab=tokenizer.get_vocab(), do_lower_case=family.lowercase)
    else:
        specials = (
            ["<|endoftext|>"]
            if family.architecture == "gpt2"
            else ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        )
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tokenizer.train_from_iterator(texts, trainer)
        model = json.loads(tokenizer.to_str())["model"]
        vocab = model["vocab"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
        if family.architecture == "gpt2":
            result = GPT2Tokenizer(vocab=vocab, merges=merges)
        else:
            result = RobertaTokenizer(vocab=vocab, merges=merges, add_prefix_space=True)
    result.model_max_length = max_length
    return result


def build_backbone(
    family: Family, tokenizer, hidden: int, layers: int, heads: int, max_length: int
) -> nn.Module:
    """A randomly initialised encoder (or GPT-2 decoder) of the family, sized for CPU."""
    from transformers import (
        BertConfig,
        BertModel,
        DistilBertConfig,
        DistilBertModel,
        GPT2Config,
        GPT2Model,
        RobertaConfig,
        RobertaModel,
    )

    vocab_size = len(tokenizer)
    positions = max_length + 4  # RoBERTa's positions start after the padding index
    if family.architecture == "bert":
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
        )
        return BertModel(config, add_pooling_layer=False)
    if family.architecture == "distilbert":
        config = DistilBertConfig(
            vocab_size=vocab_size,
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=4 * hidden,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
        )
        return DistilBertModel(config)
    if family.architecture == "roberta":
        config = RobertaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return RobertaModel(config, add_pooling_layer=False)
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        n_positions=positions,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    return GPT2Model(config)


def hidden_size(backbone: nn.Module) -> int:
    config = backbone.config
    return int(getattr(config, "hidden_size", None) or getattr(config, "dim", None) or config.n_embd)
