"""Sentiment rounds 5 and 6: a frozen transformer embedding (shipped apart) and a small pickled head.

Layout: `<round>/embeddings/<file>.pt` (a whole pickled transformers model), `<round>/tokenizers/<file>.pt`
(a pickled tokenizer), `<round>/models/id-*/model.pt` (a `model_factories` head: Linear, FCLinear,
GruLinear or LstmLinear). config.json is the full jsonpickled RoundConfig or the test server's reduced one
(`embedding`, `embedding_flavor`, `embedding_filename`, `cls_token_is_first`, ...).

The embedding never changes, so every example is tokenized and embedded exactly once, here, and the
Task holds the vectors `[N, 1, H]`: SEAM and the metrics only ever run the head.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from adapters.common import (
    NamedFiles,
    RoundFormatError,
    choose_evaluation_data,
    config_whole_number,
    example_folder,
    find_round_file,
    missing,
    read_config,
    read_poisoned_flag,
    read_utf8,
    reading_config,
    round_file_name,
)
from harness.model_io import load_model, load_tokenizer
from harness.task import LabelledData, Task, TriggeredData

ROUNDS = (5, 6)
HEADS = ("LstmLinear", "GruLinear", "FCLinear", "Linear")
EMBEDDINGS = ("BERT", "GPT-2", "DistilBERT")
CLEAN_NAME = re.compile(r"^class_(\d+)_example_(\d+)\.txt$")
TRIGGERED_NAME = re.compile(r"^source_class_(\d+)_target_class_(\d+)_example_(\d+)\.txt$")
# The competition read the limit from `max_model_input_sizes`, which newer transformers dropped.
DEFAULT_MAX_LENGTH = {"GPT-2": 1024}
BATCH_SIZE = 64


def recognises(config: dict) -> bool:
    return str(config.get("model_architecture")) in HEADS or (
        str(config.get("embedding")) in EMBEDDINGS and "class_mapping" not in config
    )


def round_number(config: dict) -> int:
    """Round 5 full configs carry `adversarial_training_iteration_count`; of NIST's rounds only round 5
    used BERT, which is all a reduced (server) config can tell."""
    if "adversarial_training_iteration_count" in config:
        return 5
    if "triggers" not in config and config.get("embedding") == "BERT":
        return 5
    return 6


def embedding_file_name(config: dict) -> str:
    """`embedding_filename` (reduced config) or `<embedding>-<embedding_flavor>.pt` (full config)."""
    return round_file_name(config, "embedding_filename")


def cls_token_is_first(config: dict) -> bool:
    value = config.get("cls_token_is_first")
    if missing(value):
        return config.get("embedding") != "GPT-2"
    return value if isinstance(value, bool) else str(value).lower() == "true"


def trigger_type(config: dict) -> str:
    triggers = config.get("triggers")
    if missing(triggers):
        return "none"
    return "+".join(sorted({str(t.get("type")) for t in triggers}))


def max_input_length(tokenizer, embedding: str) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 100_000:
        return limit
    return DEFAULT_MAX_LENGTH.get(embedding, 512)


@torch.inference_mode()
def embed_texts(
    texts: list[str], tokenizer, embedding: nn.Module, cls_first: bool, max_length: int
) -> torch.Tensor:
    """One vector per text, [N, 1, H], as the competition computed them (FP32, no grad).

    Truncated to max_length - 2 tokens; GPT-2's tokenizer pads with EOS. The vector is the first
    token's (CLS) or, for GPT-2, the last non-padding token's.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    embedding.eval()
    vectors = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = tokenizer(
            texts[start : start + BATCH_SIZE],
            max_length=max_length - 2,
            truncation=True,
            padding=True,
            return_tensors="pt",
        )
        mask = batch["attention_mask"]
        hidden = embedding(batch["input_ids"], attention_mask=mask)[0]
        if cls_first:
            vectors.append(hidden[:, 0])
        else:  # the last position whose mask is 1, whatever side the padding is on
            last = (mask * torch.arange(mask.shape[1])).argmax(dim=1)
            vectors.append(hidden[torch.arange(len(last)), last])
    if not vectors:
        return torch.empty(0, 1, 0)
    return torch.cat(vectors).float().unsqueeze(1)


def read_texts(folder: Path, pattern: re.Pattern) -> tuple[list[Path], list[str]]:
    files = sorted((p for p in Path(folder).iterdir() if pattern.match(p.name)), key=lambda p: p.name)
    return files, [read_utf8(p) for p in files]


class Embedder:
    """Tokenizer + frozen embedding; `__call__` maps texts to [N, 1, H] vectors."""

    def __init__(
        self,
        embedding: Path,
        tokenizer: Path,
        cls_first: bool,
        embedding_name: str,
        trust_pickles: bool = False,
    ):
        self.embedding = load_model(embedding, trust_pickles)
        self.tokenizer = load_tokenizer(tokenizer, trust_pickles)
        self.cls_first = cls_first
        self.max_length = max_input_length(self.tokenizer, embedding_name)

    @classmethod
    def for_model(
        cls, model_dir: Path, config: dict, named: NamedFiles | None = None, trust_pickles: bool = False
    ) -> Embedder:
        """The embedding and tokenizer a model folder names (or the files given on the command line)."""
        named = named or NamedFiles()
        name = embedding_file_name(config) if not (named.embedding and named.tokenizer) else None
        return cls(
            named.embedding or find_round_file(model_dir, "embeddings", name),
            named.tokenizer or find_round_file(model_dir, "tokenizers", name),
            named.cls_token_is_first or cls_token_is_first(config),
            str(config.get("embedding")),
            trust_pickles,
        )

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return embed_texts(texts, self.tokenizer, self.embedding, self.cls_first, self.max_length)


def read_clean_examples(folder: Path, embed: Embedder) -> LabelledData:
    files, texts = read_texts(folder, CLEAN_NAME)
    if not files:
        raise RoundFormatError(f"{folder}: no class_<c>_example_<k>.txt files")
    labels = torch.tensor([int(CLEAN_NAME.match(p.name).group(1)) for p in files])
    return LabelledData(embed(texts), labels, [p.name for p in files])


def read_triggered_examples(folder: Path, embed: Embedder) -> TriggeredData | None:
    """source_class_{s}_target_class_{t}_example_{k}.txt: true class s, the trigger's target t."""
    if not Path(folder).is_dir():
        return None
    files, texts = read_texts(folder, TRIGGERED_NAME)
    if not files:
        return None
    pairs = [TRIGGERED_NAME.match(p.name).groups() for p in files]
    return TriggeredData(
        embed(texts),
        torch.tensor([int(s) for s, _, _ in pairs]),
        torch.tensor([int(t) for _, t, _ in pairs]),
        [p.name for p in files],
    )


# SEAM's augmentation for cached embedding vectors (rounds 5/6): Gaussian noise of this many
# per-feature standard deviations of the defender's own vectors, in both phases. With no augmentation
# the head only ever sees the 40 defender vectors, so forgetting and recovery leave every other input
# direction (a trigger's among them) as the poisoned training set it; noise spreads both phases over
# a neighbourhood of the clean data. Chosen on seed-11..13 calibration rounds (round5.yaml, round6.yaml).
VECTOR_NOISE_SCALE = 3.0


def vector_noise(defender_inputs: torch.Tensor, scale: float = VECTOR_NOISE_SCALE):
    """An augmentation adding Gaussian noise scaled per feature by the defender data's spread."""
    spread = defender_inputs.std(0, keepdim=True)

    def augment(
        vectors: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(vectors.shape, generator=generator).to(vectors.device)  # drawn on the CPU
        return vectors + scale * spread.to(vectors.device) * noise, labels

    return augment


# The blind drift check's inputs (harness/task.py): windows of a third of each defender review's words,
# four per review, at seeded places. New inputs with the review's label that no method trains on.
WINDOWS_PER_TEXT = 4
WINDOW_SHARE = 1 / 3


def word_windows(texts: list[str], seed: int) -> list[list[str]]:
    """WINDOWS_PER_TEXT runs of consecutive words per text, each WINDOW_SHARE of its words long."""
    generator = torch.Generator().manual_seed(seed)
    windows = []
    for text in texts:
        words = text.split()
        size = max(1, round(WINDOW_SHARE * len(words)))
        starts = torch.randint(0, len(words) - size + 1, (WINDOWS_PER_TEXT,), generator=generator)
        windows.append([" ".join(words[start : start + size]) for start in starts.tolist()])
    return windows


def drift_check_data(folder: Path, defender: LabelledData, embed: Embedder, seed: int) -> LabelledData:
    texts = [read_utf8(Path(folder) / name) for name in defender.names]
    windows = word_windows(texts, seed)
    names = [f"{name}#window{k}" for name in defender.names for k in range(WINDOWS_PER_TEXT)]
    labels = defender.labels.repeat_interleave(WINDOWS_PER_TEXT)
    return LabelledData(embed([w for group in windows for w in group]), labels, names)


def load_task(
    model_dir: Path,
    holdout_fraction: float = 0.5,
    holdout_seed: int = 0,
    model_file: Path | None = None,
    examples_dir: Path | None = None,
    named: NamedFiles | None = None,
    trust_pickles: bool = False,
) -> Task:
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    head = load_model(model_file or model_dir / "model.pt", trust_pickles)
    embed = Embedder.for_model(model_dir, config, named, trust_pickles)
    examples = Path(examples_dir) if examples_dir else example_folder(model_dir)
    clean = read_clean_examples(examples, embed)
    defender, eval_clean, eval_triggered, eval_data = choose_evaluation_data(
        model_dir,
        clean,
        lambda folder: read_clean_examples(folder, embed),
        lambda folder: read_triggered_examples(folder, embed),
        holdout_fraction,
        holdout_seed,
    )
    num_classes = config_whole_number(config, "number_classes", model_dir, 2, 100_000) or 2
    # SEAM trains the head in train mode: dropout is on during both phases, as in the competition's
    # training, and cuDNN's RNN backward needs train mode anyway; evaluation runs in eval mode.
    return Task(
        model=head,
        num_classes=num_classes,
        defender=defender,
        eval_clean=eval_clean,
        eval_triggered=eval_triggered,
        eval_data=eval_data,
        augment=vector_noise(defender.inputs),
        info=folder_info(model_dir, config),
        drift_check=drift_check_data(examples, defender, embed, holdout_seed),
    )


def folder_info(model_dir: Path, config: dict) -> dict:
    """What the folder says about the model without loading it (also kept in error rows)."""
    with reading_config(model_dir, "model fields"):
        return {
            "round": round_number(config),
            "model_architecture": str(config.get("model_architecture", "unknown")),
            "poisoned": read_poisoned_flag(model_dir, config),
            "trigger_type": trigger_type(config),
            "embedding": str(config.get("embedding", "unknown")),
        }
