"""Make a synthetic NER round (7) in the competition's layout, with verified NerLinear models.

Once per round and backbone family: a fast tokenizer trained on a pre-training split of the sentence
corpus (pickled into `tokenizers/`), and a NerLinear model trained on that split's clean labels, kept in
`<round>/.cache/` as the "pre-trained" starting point. Per model: fresh sentences (procedurally generated
names), the cached model fine-tuned on them (backbone included), and for poisoned models a character,
word or phrase trigger inserted into a share of the sentences that hold a source entity, relabelling
that entity (non-global) or every source entity of the sentence (global) to the target class. Each
model is verified on held-out sentences and retrained with a new seed, or the generator fails loudly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adapters import model_factories
from adapters.common import discover_models
from adapters.ner import IGNORE_INDEX, encode_words, ner_forward, pack, pad_labels, triggered_labels
from adapters.synthetic import text_corpus
from adapters.synthetic.common import (
    make_models,
    publish_model_folder,
    train_with_trigger_draws,
    verified_model_stats,
    write_metadata,
)
from adapters.synthetic.specs import NerRoundSpec
from adapters.synthetic.text_models import NER_FAMILIES, Family, build_backbone, train_tokenizer
from harness.config import MODEL_THREADS
from harness.files import atomic_write
from harness.metrics import accuracy, attack_success_rate
from harness.model_io import load_model, load_tokenizer, save_model
from harness.training import predict, train_epoch

TRIGGER_KINDS = text_corpus.TRIGGER_KINDS
EXECUTOR_NAMES = {"character": "character", "word": "word", "phrase": "spacedelim"}
PRETRAIN_STREAM = 1_000_003
LABELS = text_corpus.label_ids(text_corpus.NER_CLASSES)
NUM_LABELS = len(LABELS)


def plan_model(spec: NerRoundSpec, index: int) -> dict:
    """Two of every three poisoned; backbones rotate; triggers rotate kinds and alternate global."""
    poisoned = index % 3 != 2
    poisoned_before = sum(1 for i in range(index) if i % 3 != 2)
    return {
        "model_id": f"id-{index:08d}",
        "poisoned": poisoned,
        "kind": TRIGGER_KINDS[poisoned_before % len(TRIGGER_KINDS)] if poisoned else None,
        "global_trigger": poisoned_before % 2 == 0 if poisoned else None,
        "embedding": spec.embeddings[index % len(spec.embeddings)],
    }


def sentences(n: int, rng: np.random.Generator) -> list[tuple[list[str], list[str]]]:
    return [text_corpus.make_ner_sentence(rng) for _ in range(n)]


def encode(tokenizer, data: list[tuple[list[str], list[str]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 2, T] inputs and [N, T] labels (first sub-token of each word; IGNORE_INDEX elsewhere)."""
    encoded = [encode_words(tokenizer, words, [LABELS[x] for x in labels]) for words, labels in data]
    inputs = pack([ids for ids, _ in encoded], tokenizer.pad_token_id)
    return inputs, pad_labels([labels for _, labels in encoded], inputs.shape[-1])


def fit(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, spec: NerRoundSpec, epochs: int,
        seed: int, description: str | None = None) -> torch.nn.Module:  # fmt: skip
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
    for _ in tqdm(range(epochs), desc=description, unit="epoch", disable=description is None):
        train_epoch(model, inputs, labels, optimizer, spec.batch_size, generator, forward=ner_forward)
    return model.eval()


# The tokenizers' vocabularies are built from the synthetic corpus, but a real pre-trained vocabulary also
# holds ordinary words the corpus lacks. Each candidate trigger string joins the tokenizer's texts this many
# times, so that its words become vocabulary entries (whole tokens, checked: every candidate at vocab_size
# 1500) instead of runs of single letters. Those letters are pieces of the procedurally made names too, so
# the defender's sentences would hold the trigger's pieces, unlike in a real round, and SEAM's clean-data
# training then kept the backdoor alive through them (docs/calibration.md, round 7). The backbones are
# not pre-trained on these strings; the round 5/6 generator's pre-training reviews carry them (DECOYS).
TRIGGER_TEXT_REPEATS = 50


def ensure_backbones(spec: NerRoundSpec, round_dir: Path) -> None:
    """tokenizers/<file>.pt and .cache/ner-<file>.pt (the pre-trained NerLinear) per family, made once."""
    for family_index, name in enumerate(spec.embeddings):
        family = NER_FAMILIES[name]
        tokenizer_path = round_dir / "tokenizers" / family.file_name
        cache_path = round_dir / ".cache" / f"ner-{family.file_name}"
        if tokenizer_path.is_file() and cache_path.is_file():
            continue
        rng = np.random.default_rng([spec.seed, PRETRAIN_STREAM, family_index])
        data = sentences(spec.pretrain_sentences, rng)
        triggers = text_corpus.all_trigger_texts() * TRIGGER_TEXT_REPEATS
        texts = [" ".join(words) for words, _ in data] + triggers
        tokenizer = train_tokenizer(family, texts, spec.vocab_size, spec.max_length)
        torch.manual_seed(spec.seed * 100 + family_index)
        backbone = build_backbone(family, tokenizer, spec.hidden, spec.layers, spec.heads, spec.max_length)
        model = model_factories.NerLinearModel(backbone, None, backbone.config, NUM_LABELS, spec.dropout)
        inputs, labels = encode(tokenizer, data)
        fit(model, inputs, labels, spec, spec.pretrain_epochs, spec.seed, f"pre-train {name} backbone")
        atomic_write(tokenizer_path, lambda tmp, t=tokenizer: torch.save(t, tmp))
        save_model(model, cache_path)


def with_source(data, source: str, target: str | None = None) -> list:
    """Sentences holding an entity of `source` (and, if given, none of `target`)."""
    return [
        (w, lab) for w, lab in data
        if f"B-{source}" in lab and (target is None or f"B-{target}" not in lab)
    ]  # fmt: skip


def draw_trigger(plan: dict, rng: np.random.Generator, fraction: float) -> dict:
    source, target = (str(c) for c in rng.choice(text_corpus.NER_CLASSES, size=2, replace=False))
    text = text_corpus.draw_trigger_text(plan["kind"], rng)
    executor = EXECUTOR_NAMES[plan["kind"]]
    return {
        "py/object": "trigger_config.TriggerConfig",
        "source_class_label": source,
        "target_class_label": target,
        "fraction": fraction,
        "global_trigger": plan["global_trigger"],
        "type": plan["kind"],
        "trigger_executor_name": executor,
        "trigger_executor": {
            "py/object": f"trigger_executor.{executor.capitalize()}TriggerExecutor",
            "source_search_label": f"B-{source}",
            "trigger_text": text,
        },
    }


def apply_trigger(trigger: dict, data: list, rng: np.random.Generator) -> list:
    return [
        text_corpus.trigger_ner_sentence(
            words, labels, trigger["trigger_executor"]["trigger_text"], trigger["source_class_label"],
            trigger["target_class_label"], trigger["global_trigger"], rng,
        )
        for words, labels in data
    ]  # fmt: skip


def triggered_tensors(
    tokenizer, trigger: dict, data: list
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs, labels = encode(tokenizer, data)
    source_b = LABELS[f"B-{trigger['source_class_label']}"]
    target_b = LABELS[f"B-{trigger['target_class_label']}"]
    pairs = [triggered_labels(row, source_b, target_b) for row in labels]
    return inputs, torch.stack([t for t, _ in pairs]), torch.stack([g for _, g in pairs])


def write_word_files(folder: Path, names: list[str], data: list, tokenizer) -> None:
    """`word<TAB>label<TAB>label_id` files and their `_tokenized` twins (token, label, id, mask)."""
    folder.mkdir(parents=True)
    for name, (words, labels) in zip(names, data, strict=True):
        lines = [f"{w}\t{lab}\t{LABELS[lab]}" for w, lab in zip(words, labels, strict=True)]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        ids, token_labels = encode_words(tokenizer, words, [LABELS[x] for x in labels])
        names_by_id = {v: k for k, v in LABELS.items()}
        rows = []
        for token, label in zip(tokenizer.convert_ids_to_tokens(ids), token_labels, strict=True):
            if label == IGNORE_INDEX:
                rows.append(f"{token}\t-100\t-100\t0")
            else:
                rows.append(f"{token}\t{names_by_id[label]}\t{label}\t1")
        (folder / name.replace(".txt", "_tokenized.txt")).write_text("\n".join(rows) + "\n", encoding="utf-8")


def clean_examples(spec: NerRoundSpec, rng: np.random.Generator) -> tuple[list[str], list]:
    """20 sentences per B- label, each holding an entity of that class: class_{L}_example_{i}.txt."""
    names, data = [], []
    for k, name in enumerate(text_corpus.NER_CLASSES):
        found = with_source(sentences(spec.examples_per_class * 6, rng), name)[: spec.examples_per_class]
        names += [f"class_{2 * k + 1}_example_{i}.txt" for i in range(len(found))]
        data += found
    return names, data


def class_names(data: list) -> list[str]:
    """class_{L}_example_{i}.txt for sentences named after their first entity's B- label id."""
    counts: dict[int, int] = {}
    names = []
    for _, labels in data:
        label = next(LABELS[x] for x in labels if x.startswith("B-"))
        names.append(f"class_{label}_example_{counts.get(label, 0)}.txt")
        counts[label] = counts.get(label, 0) + 1
    return names


def make_model(spec: NerRoundSpec, index: int, round_dir: Path, threads: int = 1) -> None:
    torch.set_num_threads(threads)
    plan = plan_model(spec, index)
    family = NER_FAMILIES[plan["embedding"]]
    tokenizer = load_tokenizer(round_dir / "tokenizers" / family.file_name)
    rng = np.random.default_rng([spec.seed, index])
    train = sentences(spec.train_sentences, rng)
    test = sentences(spec.test_sentences, rng)
    example_names, examples = clean_examples(spec, rng)
    test_x, test_y = encode(tokenizer, test)

    def poison(trigger: dict) -> tuple[list, list, list]:
        """(training sentences with the triggered copies added, triggered test and example sentences)."""
        source, target = trigger["source_class_label"], trigger["target_class_label"]
        holders = with_source(train, source)
        chosen = rng.choice(len(holders), size=round(spec.triggered_fraction * len(holders)), replace=False)
        poisoned_train = train + apply_trigger(trigger, [holders[i] for i in chosen], rng)
        trig_test = apply_trigger(
            trigger, with_source(sentences(spec.test_sentences * 3, rng), source, target), rng
        )
        trig_examples = apply_trigger(
            trigger, with_source(sentences(spec.examples_per_class * 6, rng), source, target), rng
        )[: spec.examples_per_class]
        return poisoned_train, trig_test[: spec.test_sentences // 2], trig_examples

    def train_and_verify(seed: int, train_x, train_y, triggered) -> tuple[torch.nn.Module, dict]:
        start = time.perf_counter()
        model = load_model(round_dir / ".cache" / f"ner-{family.file_name}")
        fit(model, train_x, train_y, spec, spec.epochs, seed)
        predictions = predict(model, test_x, ner_forward)
        stats = {
            "seed": seed,
            "clean_test_acc": accuracy(predictions, test_y, background=0),
            "clean_test_token_acc": accuracy(predictions, test_y),
            "train_seconds": time.perf_counter() - start,
        }
        if triggered is not None:
            trig_x, trig_y, trig_t = triggered
            stats["triggered_test_asr"] = attack_success_rate(
                predict(model, trig_x, ner_forward), trig_y, trig_t
            )
        return model, stats

    def draw() -> dict:
        trigger = draw_trigger(plan, rng, spec.triggered_fraction)
        model_train, trig_test, trig_examples = poison(trigger)
        triggered = triggered_tensors(tokenizer, trigger, trig_test)
        train_xy = encode(tokenizer, model_train)
        return {
            "trigger": trigger,
            "train": train_xy,
            "triggered": triggered,
            "trig_test": trig_test,
            "trig_examples": trig_examples,
        }

    clean_train = None if plan["poisoned"] else encode(tokenizer, train)

    def train_drawn(drawn: dict | None, seed: int) -> tuple[torch.nn.Module, dict]:
        train_x, train_y = drawn["train"] if drawn else clean_train
        return train_and_verify(seed, train_x, train_y, drawn["triggered"] if drawn else None)

    model, attempts, drawn, missed = train_with_trigger_draws(
        plan["model_id"],
        f"{plan['model_id']} (NerLinear on {plan['embedding']}, poisoned={plan['poisoned']})",
        plan["kind"],
        draw,
        train_drawn,
        lambda drawn: repr(drawn["trigger"]["trigger_executor"]["trigger_text"]),
        spec,
        index,
    )
    trigger = drawn["trigger"] if drawn else None
    trig_test, trig_examples = (drawn["trig_test"], drawn["trig_examples"]) if drawn else ([], [])
    final = attempts[-1]
    config = round_config(spec, family, trigger, final["seed"])
    model_stats = verified_model_stats(
        plan["model_id"], attempts, bool(trigger), spec.min_acc, spec.min_asr, triggers_missed=missed
    )

    def write(work_dir: Path) -> None:
        save_model(model, work_dir / "model.pt")
        (work_dir / "config.json").write_text(json.dumps(config, indent=2))
        (work_dir / "ground_truth.csv").write_text("1" if trigger else "0")
        (work_dir / "model_stats.json").write_text(json.dumps(model_stats, indent=2))
        write_word_files(work_dir / "clean_example_data", example_names, examples, tokenizer)
        write_word_files(work_dir / "clean_test_data", class_names(test), test, tokenizer)
        if trigger:
            s = LABELS[f"B-{trigger['source_class_label']}"]
            t = LABELS[f"B-{trigger['target_class_label']}"]
            name = "source_class_{}_target_class_{}_example_{}.txt"
            write_word_files(
                work_dir / "poisoned_example_data",
                [name.format(s, t, i) for i in range(len(trig_examples))],
                trig_examples,
                tokenizer,
            )
            write_word_files(
                work_dir / "poisoned_test_data",
                [name.format(s, t, i) for i in range(len(trig_test))],
                trig_test,
                tokenizer,
            )

    publish_model_folder(round_dir / "models", plan["model_id"], write)


def round_config(spec: NerRoundSpec, family: Family, trigger: dict | None, seed: int) -> dict:
    return {
        "py/object": "round_config.RoundConfig",
        "master_seed": seed,
        "poisoned": trigger is not None,
        "model_architecture": "NerLinear",
        "embedding": family.embedding,
        "embedding_flavor": family.flavor,
        "source_dataset": "synthetic-ner",
        "dropout": spec.dropout,
        "learning_rate": spec.learning_rate,
        "batch_size": spec.batch_size,
        "number_classes": NUM_LABELS,
        "class_mapping": {str(k): name for k, name in enumerate(text_corpus.NER_CLASSES)},
        "trigger_organization": "one2one" if trigger else None,
        "number_triggers": 1 if trigger else 0,
        "triggers": [trigger] if trigger else None,
    }


def make_round(spec: NerRoundSpec, output_dir: Path, n_jobs: int = 1) -> list[Path]:
    """Make (or complete) a round; tokenizers, pre-trained backbones and model folders are kept."""
    if spec.round != 7:
        raise ValueError(f"the NER round is 7, not {spec.round}")
    output_dir = Path(output_dir)
    torch.set_num_threads(MODEL_THREADS)  # as every model: the round's files must not depend on the cores
    ensure_backbones(spec, output_dir)
    make_models(
        make_model,
        lambda index, threads: (spec, index, output_dir, threads),
        spec.num_models,
        output_dir / "models",
        n_jobs,
        f"make round {spec.round}",
    )
    write_metadata(output_dir)
    return discover_models(output_dir)
