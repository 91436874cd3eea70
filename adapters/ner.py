"""Named-entity recognition, round 7: a pickled `model_factories.NerLinearModel` (a fine-tuned transformer
with a token classifier) and a pickled fast tokenizer at `<round>/tokenizers/<file>.pt`.

Example files hold one `word<TAB>label<TAB>label_id` per line (the `_tokenized` twins are skipped).
Label ids: O = 0, B-<class_mapping[k]> = 2k+1, I- = 2k+2. Each word's label goes on its first sub-token;
continuations, special tokens and padding get IGNORE_INDEX. Inputs are stored as one long tensor
[N, 2, T] (input_ids, attention_mask), so SEAM's batches index them like any other input.

Metrics (see README): O is the Task's background class, so ACC is the accuracy over entity tokens;
`acc_all_labels` counts every labelled token. ASR is the share of triggered source-entity tokens predicted
as the target's label (B- -> B-, I- -> I-). In a poisoned file the triggered entity tokens carry the
target labels (what the backdoor makes the model say); a file whose tokens carry the source labels
instead is read that way (every source-entity token counts).
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
from harness.task import IGNORE_INDEX, LabelledData, Task, TriggeredData

ROUNDS = (7,)
OUTSIDE = 0  # the O label id
CLEAN_NAME = re.compile(r"^class_(\d+)_example_(\d+)\.txt$")
TRIGGERED_NAME = re.compile(r"^source_class_(\d+)_target_class_(\d+)_example_(\d+)\.txt$")
MAX_LENGTH = 512


def recognises(config: dict) -> bool:
    return str(config.get("model_architecture")) == "NerLinear" or "class_mapping" in config


def round_number(config: dict) -> int:
    return 7


def tokenizer_file_name(config: dict) -> str:
    """`tokenizer_filename` (reduced config) or `<embedding>-<embedding_flavor>.pt` (full config)."""
    return round_file_name(config, "tokenizer_filename")


def trigger_type(config: dict) -> str:
    triggers = config.get("triggers")
    if missing(triggers):
        return "none"
    names = {str(t.get("type") or t.get("trigger_executor_name")) for t in triggers}
    return "+".join(sorted(names))


def read_word_file(path: Path) -> tuple[list[str], list[int]]:
    """Words and label ids of one `word<TAB>label<TAB>label_id` file."""
    words, ids = [], []
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise RoundFormatError(f"{path}:{number}: expected word<TAB>label<TAB>label_id, got {line!r}")
        words.append(parts[0].strip())
        ids.append(int(parts[2]))
    return words, ids


def encode_words(tokenizer, words: list[str], label_ids: list[int]) -> tuple[list[int], list[int]]:
    """Token ids and per-token labels: each word's label on its first sub-token, IGNORE_INDEX elsewhere."""
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=MAX_LENGTH)
    labels, previous = [], None
    for word in encoded.word_ids():
        labels.append(IGNORE_INDEX if word is None or word == previous else label_ids[word])
        previous = word
    return encoded["input_ids"], labels


def pack(token_ids: list[list[int]], pad_id: int) -> torch.Tensor:
    """[N, 2, T]: right-padded input ids and their attention mask."""
    length = max((len(ids) for ids in token_ids), default=0)
    inputs = torch.full((len(token_ids), 2, length), pad_id, dtype=torch.long)
    inputs[:, 1] = 0
    for i, ids in enumerate(token_ids):
        inputs[i, 0, : len(ids)] = torch.tensor(ids)
        inputs[i, 1, : len(ids)] = 1
    return inputs


def pad_labels(labels: list[list[int]], length: int) -> torch.Tensor:
    out = torch.full((len(labels), length), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(labels):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def ner_forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Token logits [N, T, L] from NerLinearModel, which returns (loss or None, emissions)."""
    return model(inputs[:, 0], attention_mask=inputs[:, 1])[1]


# SEAM's augmentation for token sequences (round 7), in both phases: with this probability a sentence gets
# a pseudo-word of 1 to INSERT_MAX_TOKENS tokens inserted just before one of its entities. The tokens are
# drawn from the first sub-tokens of the defender's own O words, so inserting them teaches nothing wrong
# about names; the pseudo-word's first token is labelled O and the rest are ignored, as any word's
# continuations are. Why: a word trigger is an unfamiliar word just before an entity, and the defender's
# sentences never show anything unfamiliar there, so neither phase otherwise trains the model on what a
# word in that place may or may not do to the entity's label.
INSERT_RATE = 0.5
INSERT_MAX_TOKENS = 4


def word_insertion(
    defender: LabelledData, pad_id: int, rate: float = INSERT_RATE, max_tokens: int = INSERT_MAX_TOKENS
):
    """An augmentation inserting a pseudo-word of the defender's O tokens before a random entity."""
    pool = defender.inputs[:, 0][defender.labels == OUTSIDE].unique()

    def augment(
        inputs: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = inputs.device  # token surgery row by row is CPU work; the batch goes back after
        inputs, labels = inputs.cpu(), labels.cpu()
        n_rows, _, length = inputs.shape
        out = torch.zeros((n_rows, 2, length + max_tokens), dtype=inputs.dtype)
        out[:, 0] = pad_id
        out[:, :, :length] = inputs
        out_labels = torch.full((n_rows, length + max_tokens), IGNORE_INDEX, dtype=labels.dtype)
        out_labels[:, :length] = labels
        for row in range(n_rows):
            if len(pool) == 0 or torch.rand(1, generator=generator).item() >= rate:
                continue
            entity_starts = ((labels[row] > OUTSIDE) & (labels[row] % 2 == 1)).nonzero().flatten()  # B- ids
            if len(entity_starts) == 0:
                continue
            at = int(entity_starts[torch.randint(len(entity_starts), (1,), generator=generator)])
            k = int(torch.randint(1, max_tokens + 1, (1,), generator=generator))
            used = int(inputs[row, 1].sum())
            word = pool[torch.randint(len(pool), (k,), generator=generator)]
            word_labels = torch.tensor([OUTSIDE] + [IGNORE_INDEX] * (k - 1), dtype=labels.dtype)
            out[row, 0, : used + k] = torch.cat([inputs[row, 0, :at], word, inputs[row, 0, at:used]])
            out[row, 1, : used + k] = 1
            out_labels[row, : used + k] = torch.cat([labels[row, :at], word_labels, labels[row, at:used]])
        return out.to(device), out_labels.to(device)

    return augment


class Encoder:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def files(self, folder: Path, pattern: re.Pattern) -> tuple[list[Path], torch.Tensor, torch.Tensor]:
        files = sorted((p for p in Path(folder).iterdir() if pattern.match(p.name)), key=lambda p: p.name)
        encoded = [encode_words(self.tokenizer, *read_word_file(p)) for p in files]
        inputs = pack([ids for ids, _ in encoded], self.pad_id)
        return files, inputs, pad_labels([labels for _, labels in encoded], inputs.shape[-1])


def read_clean_examples(folder: Path, encoder: Encoder) -> LabelledData:
    files, inputs, labels = encoder.files(folder, CLEAN_NAME)
    if not files:
        raise RoundFormatError(f"{folder}: no class_<L>_example_<i>.txt files")
    return LabelledData(inputs, labels, [p.name for p in files])


def triggered_labels(labels: torch.Tensor, source_b: int, target_b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(true labels, targets) of one file's tokens; only triggered source-entity tokens keep a label."""
    to_target = {source_b: target_b, source_b + 1: target_b + 1}
    from_target = {t: s for s, t in to_target.items()}
    carries_target = (labels == target_b) | (labels == target_b + 1)
    true = torch.full_like(labels, IGNORE_INDEX)
    goal = torch.full_like(labels, IGNORE_INDEX)
    if bool(carries_target.any()):  # the file shows what the backdoor makes the model say
        for label, source in from_target.items():
            true[labels == label], goal[labels == label] = source, label
    else:  # the file shows the true labels
        for label, target in to_target.items():
            true[labels == label], goal[labels == label] = label, target
    return true, goal


def read_triggered_examples(folder: Path, encoder: Encoder) -> TriggeredData | None:
    """source_class_{s}_target_class_{t}_example_{i}.txt, s and t the B- label ids of source and target."""
    if not Path(folder).is_dir():
        return None
    files, inputs, labels = encoder.files(folder, TRIGGERED_NAME)
    if not files:
        return None
    true, goal = [], []
    for path, row in zip(files, labels, strict=True):
        source_b, target_b, _ = (int(v) for v in TRIGGERED_NAME.match(path.name).groups())
        t, g = triggered_labels(row, source_b, target_b)
        true.append(t)
        goal.append(g)
    return TriggeredData(inputs, torch.stack(true), torch.stack(goal), [p.name for p in files])


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
    model = load_model(model_file or model_dir / "model.pt", trust_pickles)
    named = named or NamedFiles()
    tokenizer = named.tokenizer or find_round_file(model_dir, "tokenizers", tokenizer_file_name(config))
    encoder = Encoder(load_tokenizer(tokenizer, trust_pickles))
    clean = read_clean_examples(Path(examples_dir) if examples_dir else example_folder(model_dir), encoder)
    defender, eval_clean, eval_triggered, eval_data = choose_evaluation_data(
        model_dir,
        clean,
        lambda folder: read_clean_examples(folder, encoder),
        lambda folder: read_triggered_examples(folder, encoder),
        holdout_fraction,
        holdout_seed,
    )
    if not missing(config.get("number_classes")):
        num_classes = config_whole_number(config, "number_classes", model_dir, 2, 100_000)
    elif isinstance(config.get("class_mapping"), dict):
        num_classes = 1 + 2 * len(config["class_mapping"])
    else:
        num_classes = int(getattr(model, "num_labels", 0)) or int(clean.labels.max()) + 1
    return Task(
        model=model,
        num_classes=num_classes,
        defender=defender,
        eval_clean=eval_clean,
        eval_triggered=eval_triggered,
        eval_data=eval_data,
        info=folder_info(model_dir, config),
        augment=word_insertion(defender, encoder.pad_id),
        forward=ner_forward,
        background_class=OUTSIDE,
    )


def folder_info(model_dir: Path, config: dict) -> dict:
    """What the folder says about the model without loading it (also kept in error rows)."""
    triggers = config.get("triggers")
    with reading_config(model_dir, "model fields"):
        return {
            "round": 7,
            "model_architecture": str(config.get("model_architecture", "unknown")),
            "poisoned": read_poisoned_flag(model_dir, config),
            "trigger_type": trigger_type(config),
            "embedding": str(config.get("embedding", "unknown")),
            "global_trigger": bool(triggers[0].get("global_trigger")) if not missing(triggers) else None,
        }
