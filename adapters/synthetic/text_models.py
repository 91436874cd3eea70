"""Tokenizers and small transformer backbones for the synthetic NLP rounds, built locally.

Nothing is downloaded: tokenizers are trained on the synthetic corpus with the `tokenizers` library
and wrapped in the transformers tokenizer class of each family; backbones are built from transformers
config classes with random weights (the generators then train them). File names follow the
competition: `<embedding>-<flavor>.pt` with `/` replaced by `-`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from torch import nn

from adapters.common import archive_name


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


def train_tokenizer(family: Family, texts: list[str], vocab_size: int, max_length: int):
    """A transformers tokenizer of the family's class, trained on `texts` (WordPiece or byte-level BPE).

    The vocabularies are built here, not by the `tokenizers` library's trainers: those break ties in
    an order that changes from process to process, so the same seed gave a different round.
    GPT-2's tokenizer has no pad token, as the competition's did; RoBERTa's adds a prefix space
    (needed for words given one by one in NER).
    """
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizer, DistilBertTokenizer, GPT2Tokenizer, RobertaTokenizer

    if family.architecture in ("bert", "distilbert"):
        normalizer = normalizers.BertNormalizer(lowercase=family.lowercase)
        splitter = pre_tokenizers.BertPreTokenizer()
        words = word_counts(texts, splitter, normalizer)
        vocab = wordpiece_vocab(words, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], vocab_size)
        cls = BertTokenizer if family.architecture == "bert" else DistilBertTokenizer
        result = cls(vocab=vocab, do_lower_case=family.lowercase)
    else:
        roberta = family.architecture == "roberta"
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] if roberta else ["<|endoftext|>"]
        words = word_counts(texts, pre_tokenizers.ByteLevel(add_prefix_space=roberta))
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        merges = bpe_merges(words, vocab_size - len(specials) - len(alphabet))
        symbols = specials + alphabet + [a + b for a, b in merges]
        vocab = {symbol: i for i, symbol in enumerate(dict.fromkeys(symbols))}
        if roberta:
            result = RobertaTokenizer(vocab=vocab, merges=merges, add_prefix_space=True)
        else:
            result = GPT2Tokenizer(vocab=vocab, merges=merges)
    result.model_max_length = max_length
    return result


def word_counts(texts: list[str], splitter, normalizer=None) -> Counter:
    counts: Counter = Counter()
    for text in texts:
        text = normalizer.normalize_str(text) if normalizer is not None else text
        counts.update(piece for piece, _ in splitter.pre_tokenize_str(text))
    return counts


def wordpiece_vocab(words: Counter, specials: list[str], vocab_size: int) -> dict[str, int]:
    """Specials, every character (alone and as a ## continuation), the words seen twice or more, then
    the most frequent 2-4 character pieces (word-initial or ## continuations: syllables of names)."""
    chars = sorted({c for word in words for c in word})
    pieces = specials + chars + ["##" + c for c in chars]
    pieces += sorted((w for w in words if len(w) > 1 and words[w] > 1), key=lambda w: (-words[w], w))
    grams: Counter = Counter()
    for word, count in words.items():
        for n in (2, 3, 4):
            for i in range(len(word) - n + 1):
                grams[word[i : i + n] if i == 0 else "##" + word[i : i + n]] += count
    taken = set(pieces)
    pieces += sorted((g for g in grams if g not in taken), key=lambda g: (-grams[g], g))
    return {piece: i for i, piece in enumerate(pieces[:vocab_size])}


def bpe_merges(words: Counter, n_merges: int) -> list[tuple[str, str]]:
    """Byte-pair merges: the most frequent adjacent pair each time, ties broken by the pair itself."""
    symbols = [list(word) for word in words]
    counts = list(words.values())
    pairs: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for index, word in enumerate(symbols):
        for pair in zip(word, word[1:], strict=False):
            pairs[pair] += counts[index]
            where[pair].add(index)
    merges = []
    while len(merges) < n_merges and pairs:
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for index in list(where.pop(best, ())):
            word = symbols[index]
            for pair in zip(word, word[1:], strict=False):  # forget this word's old pairs
                pairs[pair] -= counts[index]
                if pairs[pair] <= 0:
                    del pairs[pair]
                where[pair].discard(index)
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            symbols[index] = merged
            for pair in zip(merged, merged[1:], strict=False):
                pairs[pair] += counts[index]
                where[pair].add(index)
        pairs.pop(best, None)
    return merges


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
