"""What the synthetic round generators make (plain dataclasses, no torch import)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImageRoundSpec:
    """What to make. Defaults give a round that trains in about a minute per model on 2 CPU cores."""

    round: int = 3
    num_models: int = 6
    seed: int = 0
    num_classes: int = 5
    img_size_pixels: int = 36
    cnn_img_size_pixels: int = 32
    architectures: list[str] = field(
        default_factory=lambda: ["resnet18", "mobilenet_v2", "shufflenet_v2_x1_0"]
    )
    train_images_per_class: int = 300
    clean_examples_per_class: int = 20
    test_images_per_class: int = 40
    triggered_fraction: float = 0.3
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 5e-3
    min_acc: float = 0.9
    min_asr: float = 0.9
    max_attempts: int = 3
    max_natural_asr: float = 0.2
    probe_epochs: int = 8
    max_trigger_draws: int = 10


# `micro_cnn` models at 16 px: a few seconds per verified model, for rounds of thousands of models
# (benchmarks/scale.py) and for tests.
MICRO_ROUND = dict(
    architectures=["micro_cnn"],
    img_size_pixels=20,
    cnn_img_size_pixels=16,
    train_images_per_class=200,  # 100 left instagram-filter backdoors short of ASR 0.9 (docs/performance.md)
    test_images_per_class=20,
    epochs=20,
    probe_epochs=3,
)


@dataclass
class SentimentRoundSpec:
    """Rounds 5/6: frozen embeddings pre-trained once per round, GRU/LSTM/FC heads trained per model."""

    round: int = 6
    num_models: int = 6
    seed: int = 0
    embeddings: list[str] | None = None  # None: BERT and DistilBERT (see sentiment_make_round)
    architectures: list[str] = field(default_factory=lambda: ["GruLinear", "LstmLinear", "FCLinear"])
    vocab_size: int = 1200
    embedding_hidden: int = 64
    embedding_layers: int = 2
    embedding_heads: int = 4
    max_length: int = 96
    # Pre-train the embedding to convergence (final training loss about 0.04; with 1000 per class and
    # 12 epochs it stopped near 0.2 and clean heads reached only ACC 0.86-0.93).
    pretrain_reviews_per_class: int = 3000
    pretrain_epochs: int = 20
    train_reviews_per_class: int = 500
    test_reviews_per_class: int = 100
    examples_per_class: int = 20
    triggered_fraction: float = 0.2
    head_hidden_sizes: list[int] = field(default_factory=lambda: [32, 64])
    head_epochs: int = 150
    learning_rate: float = 1e-3
    batch_size: int = 64
    dropout: float = 0.1
    min_acc: float = 0.85
    min_asr: float = 0.9
    max_attempts: int = 3
    max_natural_asr: float = 0.2
    probe_epochs: int = 60
    max_trigger_draws: int = 8
    # A real-text round (adapters/synthetic/review_rounds.py; docs/real-rounds.md) is made when both of
    # these are given: a labelled review corpus (zip or folder with pos/ and neg/) and a local folder
    # holding a pretrained embedding (config.json, model.safetensors, tokenizer files).
    corpus: str | None = None
    pretrained_embedding: str | None = None
    corpus_test_per_class: int = 300  # held out from the corpus for every model's test data
    acc_margin: float = 0.05  # a real-corpus head passes at ACC >= linear probe - acc_margin
    poison_copies: int = 1  # triggered copies (at different places) of each poisoned review
    trigger_kinds: list[str] = field(default_factory=lambda: ["character", "word", "phrase"])


@dataclass
class NerRoundSpec:
    """Round 7: NerLinear models (a transformer backbone fine-tuned with a token classifier)."""

    round: int = 7
    num_models: int = 4
    seed: int = 0
    embeddings: list[str] = field(default_factory=lambda: ["BERT", "RoBERTa"])
    vocab_size: int = 1500
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    max_length: int = 64
    # The "pre-trained" backbone is a NER tagger trained on its own split: 10000 sentences for 6 epochs
    # (3000 for 3 left models at entity-token ACC 0.94-0.98, and SEAM cost them 5 points).
    pretrain_sentences: int = 10000
    pretrain_epochs: int = 6
    train_sentences: int = 1500
    test_sentences: int = 200
    examples_per_class: int = 20
    triggered_fraction: float = 0.3
    epochs: int = 8
    learning_rate: float = 5e-4
    batch_size: int = 32
    dropout: float = 0.1
    min_acc: float = 0.85
    min_asr: float = 0.9
    max_attempts: int = 3
    max_trigger_draws: int = 5
