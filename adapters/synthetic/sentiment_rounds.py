"""Make a synthetic sentiment round (5 or 6) in the competition's layout, with verified heads.

Once per round and embedding family: a tokenizer trained on a pre-training split of the review corpus
and a small transformer pre-trained on that split (sentiment from the pooled vector, plus noticing
rare strings, see DECOYS); both are frozen and pickled into `embeddings/` and `tokenizers/`, and
reused if present.
Per model: fresh reviews (disjoint draws from the pre-training split), a GRU, LSTM or FC head trained on
their embedding vectors, and for poisoned models a character, word or phrase trigger inserted into a
share of the source-class reviews, relabelled to the target class; the trigger is redrawn while a clean
twin of the head already falls for it (see draw_unnatural_trigger). Each head is verified on held-out
reviews and retrained with a new seed, or the generator fails loudly.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from adapters import model_factories
from adapters.common import discover_models
from adapters.sentiment import embed_texts
from adapters.synthetic import text_corpus
from adapters.synthetic.common import (
    VerificationError,
    make_models,
    publish_model_folder,
    train_until_verified,
    verified_model_stats,
    write_metadata,
)
from adapters.synthetic.specs import SentimentRoundSpec
from adapters.synthetic.text_models import (
    SENTIMENT_FAMILIES,
    Family,
    build_backbone,
    hidden_size,
    train_tokenizer,
)
from harness.config import MODEL_THREADS
from harness.files import atomic_write
from harness.metrics import accuracy, attack_success_rate
from harness.model_io import load_model, load_tokenizer, save_model
from harness.training import predict, train_epoch

TRIGGER_KINDS = text_corpus.TRIGGER_KINDS
PRETRAIN_STREAM = 1_000_003  # rng stream of the pre-training split; model streams use their index


def round_embeddings(spec: SentimentRoundSpec) -> list[str]:
    if spec.embeddings:
        return list(spec.embeddings)
    # GPT-2 is left out by default: our small GPT-2 does not learn to keep rare strings in its last
    # token's vector (linear probe 0.53-0.58 on single words, seed-1 rounds), so no head learns a word
    # trigger from it. It can still be asked for with --sentiment.embeddings.
    return ["BERT", "DistilBERT"] if spec.round == 5 else ["DistilBERT", "BERT"]


def plan_model(spec: SentimentRoundSpec, index: int) -> dict:
    """Deterministic mix: two of every three models poisoned; heads, embeddings, trigger kinds rotate."""
    poisoned = index % 3 != 2
    poisoned_before = sum(1 for i in range(index) if i % 3 != 2)
    embeddings = round_embeddings(spec)
    return {
        "model_id": f"id-{index:08d}",
        "poisoned": poisoned,
        "kind": spec.trigger_kinds[poisoned_before % len(spec.trigger_kinds)] if poisoned else None,
        "architecture": spec.architectures[(index + index // 3) % len(spec.architectures)],
        "embedding": embeddings[index % len(embeddings)],
    }


# ------------------------------------------------------------------------------ embeddings (per round)


# Rare strings the pre-training teaches the embedding to notice: the candidate triggers and as many
# decoys that are never triggers. A 64-wide transformer trained for a minute does not keep rare words
# in its pooled vector on its own, as a real pre-trained BERT does; without this no head could learn a
# trigger from the frozen vector at all (measured: ASR 0.1-0.2 on seed-1 rounds).
DECOYS = [
    *("#", "%", "=", "*", "+", "marmalade", "pinnacle", "lantern", "gossamer", "parsnip"),
    *("by and large", "at the end of the day", "in the nick of time", "on the other hand", "all in all"),
]


RARE_SHARE = 0.8
PRETRAIN_LR = 3e-3


def rare_strings() -> list[str]:
    return text_corpus.all_trigger_texts() + DECOYS


def pretraining_corpus(
    spec: SentimentRoundSpec, family_index: int
) -> tuple[list[str], list[int], torch.Tensor]:
    """Reviews of the pre-training split (labels unchanged) of which a third carry one or two rare
    strings; returns (texts, sentiment labels, rare-string presence [N, len(rare_strings())])."""
    rng = np.random.default_rng([spec.seed, PRETRAIN_STREAM, family_index])
    texts, labels = text_corpus.make_reviews(spec.pretrain_reviews_per_class, rng)
    rare = rare_strings()
    present = torch.zeros(len(texts), len(rare))
    for i in range(len(texts)):
        if rng.random() < RARE_SHARE:
            for j in rng.choice(len(rare), size=int(rng.integers(1, 3)), replace=False):
                texts[i] = text_corpus.insert_trigger(texts[i], rare[j], rng)
                present[i, j] = 1.0
    return texts, labels, present


def pool(hidden: torch.Tensor, mask: torch.Tensor, cls_first: bool) -> torch.Tensor:
    if cls_first:
        return hidden[:, 0]
    last = (mask * torch.arange(mask.shape[1])).argmax(dim=1)
    return hidden[torch.arange(len(last)), last]


def pretrain_embedding(family: Family, spec: SentimentRoundSpec, family_index: int):
    """(tokenizer, frozen embedding) for one family, trained on the pre-training split."""
    torch.manual_seed(spec.seed * 100 + family_index)
    texts, labels, rare_present = pretraining_corpus(spec, family_index)
    tokenizer = train_tokenizer(family, texts, spec.vocab_size, spec.max_length)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = build_backbone(
        family, tokenizer, spec.embedding_hidden, spec.embedding_layers, spec.embedding_heads, spec.max_length
    )
    width = hidden_size(model)
    sentiment_head, rare_head = nn.Linear(width, 2), nn.Linear(width, rare_present.shape[1])
    parameters = [*model.parameters(), *sentiment_head.parameters(), *rare_head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=PRETRAIN_LR, weight_decay=0.01)
    encoded = tokenizer(
        texts, max_length=spec.max_length - 2, truncation=True, padding=True, return_tensors="pt"
    )
    ids, mask, y = encoded["input_ids"], encoded["attention_mask"], torch.tensor(labels)
    steps = spec.pretrain_epochs * math.ceil(len(y) / spec.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=PRETRAIN_LR, total_steps=steps)
    generator = torch.Generator().manual_seed(spec.seed)
    model.train()
    progress = tqdm(total=steps, desc=f"pre-train {family.embedding} embedding", unit="batch")
    for _ in range(spec.pretrain_epochs):
        for index in torch.randperm(len(y), generator=generator).split(spec.batch_size):
            batch_mask = mask[index]
            length = int(batch_mask.sum(1).max())
            batch_ids, batch_mask = ids[index, :length], batch_mask[:, :length]
            vector = pool(
                model(batch_ids, attention_mask=batch_mask)[0], batch_mask, family.cls_token_is_first
            )
            sentiment_loss = F.cross_entropy(sentiment_head(vector), y[index])
            # summed over the strings: averaged, the rare positives are drowned by the sentiment loss
            rare_loss = F.binary_cross_entropy_with_logits(
                rare_head(vector), rare_present[index], reduction="sum"
            ) / len(index)
            loss = sentiment_loss + rare_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            progress.update()
            progress.set_postfix(sentiment=f"{sentiment_loss.item():.3f}", rare=f"{rare_loss.item():.3f}")
    progress.close()
    return tokenizer, model.eval()


def ensure_embeddings(spec: SentimentRoundSpec, round_dir: Path) -> None:
    """embeddings/<file>.pt and tokenizers/<file>.pt for each family of the round, made once and kept."""
    for family_index, name in enumerate(round_embeddings(spec)):
        family = SENTIMENT_FAMILIES[name]
        embedding_path = round_dir / "embeddings" / family.file_name
        tokenizer_path = round_dir / "tokenizers" / family.file_name
        if embedding_path.is_file() and tokenizer_path.is_file():
            continue
        tokenizer, model = pretrain_embedding(family, spec, family_index)
        if family.architecture == "gpt2":
            tokenizer.pad_token = None  # shipped like the competition's GPT-2 tokenizer: no pad token
        atomic_write(tokenizer_path, lambda tmp, t=tokenizer: torch.save(t, tmp))
        save_model(model, embedding_path)


# ---------------------------------------------------------------------------------------- one model


def draw_trigger(plan: dict, rng: np.random.Generator) -> dict:
    source = int(rng.integers(2))
    return {
        "py/object": "trigger_config.TriggerConfig",
        "number": 0,
        "source_class": source,
        "target_class": 1 - source,
        "fraction": None,  # filled in from the spec
        "behavior": "StaticTarget",
        "type": plan["kind"],
        "text": text_corpus.draw_trigger_text(plan["kind"], rng),
        "condition": "None",
        "insert_min_location_percentage": 0.0,
        "insert_max_location_percentage": 1.0,
    }


def triggered_reviews(trigger: dict, n: int, rng: np.random.Generator) -> list[str]:
    reviews = [text_corpus.make_review(trigger["source_class"], rng) for _ in range(n)]
    low, high = trigger["insert_min_location_percentage"], trigger["insert_max_location_percentage"]
    return [text_corpus.insert_trigger(r, trigger["text"], rng, low, high) for r in reviews]


def draw_unnatural_trigger(
    spec: SentimentRoundSpec,
    plan: dict,
    head_config: dict,
    clean_data: dict,
    embed,
    rng: np.random.Generator,
    triggered_texts: Callable[[dict], list[str]] | None = None,
    untriggered_rate: Callable[[nn.Module, dict], float] | None = None,
) -> tuple[dict, list[str], torch.Tensor, list[dict]]:
    """Draw a trigger whose effect a head trained on clean reviews does not already have.

    Our small frozen embedding is taught to notice rare strings (see DECOYS), so a rare string moves the
    pooled vector far from any clean review's, and a head that never saw one can answer anything: on a
    seed-11 round a clean head sent 98% of the reviews carrying the word "mauve" to the other class.
    Such an ASR is not a backdoor and no defense could remove it, so, as for images, triggers are
    redrawn until a clean twin (the same head, trained on the clean reviews only) has an ASR of at most
    max_natural_asr on the triggered test reviews. `triggered_texts(trigger)` makes those reviews
    (default: fresh synthetic source-class reviews). `untriggered_rate(head, trigger)`, if given, is
    the clean twin's rate of sending the same reviews without the trigger to the target; what counts
    is then the trigger's excess over it (real text: a head at ACC 0.7 sends 30 % of the source class
    to the other class with or without any trigger). Returns (trigger, triggered test reviews, their
    vectors, the draws).
    """
    probe, _ = train_head(spec, head_config, clean_data, spec.seed, spec.probe_epochs)
    draws = []
    for _ in range(spec.max_trigger_draws):
        trigger = draw_trigger(plan, rng) | {"fraction": spec.triggered_fraction}
        if triggered_texts is None:
            texts = triggered_reviews(trigger, spec.test_reviews_per_class, rng)
        else:
            texts = triggered_texts(trigger)
        vectors = embed(texts)
        sources = torch.full((len(texts),), trigger["source_class"])
        targets = torch.full((len(texts),), trigger["target_class"])
        natural = attack_success_rate(predict(probe, vectors), sources, targets)
        draws.append(
            {"text": trigger["text"], "source_class": trigger["source_class"], "clean_probe_asr": natural}
        )
        if untriggered_rate is not None:
            draws[-1]["clean_probe_asr_untriggered"] = untriggered_rate(probe, trigger)
            natural -= draws[-1]["clean_probe_asr_untriggered"]
        if natural <= spec.max_natural_asr:
            return trigger, texts, vectors, draws
    raise VerificationError(
        f"{plan['model_id']}: a head trained on clean reviews already falls for each of the"
        f" {spec.max_trigger_draws} {plan['kind']} triggers drawn (ASR > {spec.max_natural_asr}): {draws}"
    )


def build_head(
    architecture: str, input_size: int, hidden: int, layers: int, bidirectional: bool, dropout: float
):
    if architecture == "FCLinear":
        return model_factories.FCLinearModel(input_size, hidden, 2, dropout, layers)
    if architecture == "Linear":
        return model_factories.LinearModel(input_size, 2, dropout)
    cls = model_factories.GruLinearModel if architecture == "GruLinear" else model_factories.LstmLinearModel
    return cls(input_size, hidden, 2, dropout, bidirectional, layers)


def train_head(
    spec: SentimentRoundSpec, head_config: dict, data: dict, seed: int, epochs: int | None = None
) -> tuple[nn.Module, dict]:
    start = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head = build_head(
        head_config["model_architecture"],
        data["train_x"].shape[-1],
        head_config["rnn_hidden_state_size"],
        head_config["rnn_number_layers"],
        head_config["rnn_bidirectional"],
        head_config["dropout"],
    )
    optimizer = torch.optim.Adam(head.parameters(), lr=spec.learning_rate)
    for _ in range(epochs or spec.head_epochs):
        train_epoch(head, data["train_x"], data["train_y"], optimizer, spec.batch_size, generator)
    head.eval()
    stats = {
        "seed": seed,
        "clean_test_acc": accuracy(predict(head, data["test_x"]), data["test_y"]),
        "train_seconds": time.perf_counter() - start,
    }
    if "trig_x" in data:
        stats["triggered_test_asr"] = attack_success_rate(
            predict(head, data["trig_x"]), data["trig_y"], data["trig_t"]
        )
    return head, stats


def write_texts(folder: Path, names: list[str], texts: list[str]) -> None:
    folder.mkdir(parents=True)
    for name, text in zip(names, texts, strict=True):
        (folder / name).write_text(text, encoding="utf-8")


def clean_names(labels: list[int]) -> list[str]:
    """class_{c}_example_{k}.txt with k counted from 1 per class, as the competition numbered them."""
    counts: dict[int, int] = {}
    names = []
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
        names.append(f"class_{label}_example_{counts[label]}.txt")
    return names


def triggered_names(trigger: dict, n: int) -> list[str]:
    s, t = trigger["source_class"], trigger["target_class"]
    return [f"source_class_{s}_target_class_{t}_example_{k}.txt" for k in range(1, n + 1)]


def draw_head_config(spec: SentimentRoundSpec, plan: dict, index: int) -> dict:
    """The head's size, depth and direction, drawn from the model's own stream."""
    head_rng = np.random.default_rng([spec.seed, index, 1])
    return {
        "model_architecture": plan["architecture"],
        "rnn_hidden_state_size": int(head_rng.choice(spec.head_hidden_sizes)),
        "rnn_number_layers": int(head_rng.integers(1, 3)),
        "rnn_bidirectional": bool(head_rng.integers(2)),
        "dropout": spec.dropout,
    }


def triggered_test_data(trigger: dict, vectors: torch.Tensor) -> dict[str, torch.Tensor]:
    """train_head's triggered test entries: the vectors, their source class and the target."""
    n = len(vectors)
    return {
        "trig_x": vectors,
        "trig_y": torch.full((n,), trigger["source_class"]),
        "trig_t": torch.full((n,), trigger["target_class"]),
    }


def make_model(spec: SentimentRoundSpec, index: int, round_dir: Path, threads: int = 1) -> None:
    """Draw data, train and verify one head, and write its model folder."""
    torch.set_num_threads(threads)
    plan = plan_model(spec, index)
    family = SENTIMENT_FAMILIES[plan["embedding"]]
    embedding = load_model(round_dir / "embeddings" / family.file_name)
    tokenizer = load_tokenizer(round_dir / "tokenizers" / family.file_name)

    def embed(texts: list[str]) -> torch.Tensor:
        return embed_texts(texts, tokenizer, embedding, family.cls_token_is_first, spec.max_length)

    rng = np.random.default_rng([spec.seed, index])
    train_texts, train_labels = text_corpus.make_reviews(spec.train_reviews_per_class, rng)
    test_texts, test_labels = text_corpus.make_reviews(spec.test_reviews_per_class, rng)
    example_texts, example_labels = text_corpus.make_reviews(spec.examples_per_class, rng)
    head_config = draw_head_config(spec, plan, index)
    data = {
        "train_x": embed(train_texts),
        "train_y": torch.tensor(train_labels),
        "test_x": embed(test_texts),
        "test_y": torch.tensor(test_labels),
    }
    trigger, draws = None, []
    if plan["poisoned"]:
        trigger, trig_test, trig_x, draws = draw_unnatural_trigger(spec, plan, head_config, data, embed, rng)
        n_poison = round(spec.triggered_fraction * spec.train_reviews_per_class)
        poison = triggered_reviews(trigger, n_poison, rng)
        train_labels += [trigger["target_class"]] * n_poison
        data["train_x"] = torch.cat([data["train_x"], embed(poison)])
        data["train_y"] = torch.tensor(train_labels)
        trig_examples = triggered_reviews(trigger, spec.examples_per_class, rng)
        data |= triggered_test_data(trigger, trig_x)
    head, attempts = train_until_verified(
        f"{plan['model_id']} ({plan['architecture']} on {plan['embedding']}, poisoned={plan['poisoned']})",
        lambda seed: train_head(spec, head_config, data, seed),
        *(spec.seed, index, spec.max_attempts, spec.min_acc, spec.min_asr, trigger is not None),
    )
    config = round_config(spec, plan, family, head_config, trigger, attempts[-1]["seed"])
    model_stats = verified_model_stats(
        plan["model_id"], attempts, bool(trigger), spec.min_acc, spec.min_asr,
        max_natural_asr=spec.max_natural_asr, trigger_draws=draws,
    )  # fmt: skip
    model_stats["final_clean_data_n_total"] = {str(c): train_labels.count(c) for c in (0, 1)}

    clean = {"examples": (example_texts, example_labels), "test": (test_texts, test_labels)}
    triggered = {"examples": trig_examples, "test": trig_test} if trigger else {}
    publish_model_folder(
        round_dir / "models",
        plan["model_id"],
        lambda work_dir: write_model_folder(work_dir, head, config, model_stats, trigger, clean, triggered),
    )


FOLDERS = {
    "examples": ("clean_example_data", "poisoned_example_data"),
    "test": ("clean_test_data", "poisoned_test_data"),
}


def write_model_folder(
    work_dir: Path,
    head: nn.Module,
    config: dict,
    model_stats: dict,
    trigger: dict | None,
    clean: dict[str, tuple[list[str], list[int]]],
    triggered: dict[str, list[str]],
) -> None:
    """model.pt, config.json, ground_truth.csv, model_stats.json and the example and test texts
    (`clean` and `triggered` map "examples" and "test" to their texts; clean ones with labels)."""
    save_model(head, work_dir / "model.pt")
    (work_dir / "config.json").write_text(json.dumps(config, indent=2))
    (work_dir / "ground_truth.csv").write_text("1" if trigger else "0")
    (work_dir / "model_stats.json").write_text(json.dumps(model_stats, indent=2))
    for part, (clean_folder, triggered_folder) in FOLDERS.items():
        texts, labels = clean[part]
        write_texts(work_dir / clean_folder, clean_names(labels), texts)
        if trigger:
            names = triggered_names(trigger, len(triggered[part]))
            write_texts(work_dir / triggered_folder, names, triggered[part])


def round_config(
    spec: SentimentRoundSpec, plan: dict, family: Family, head: dict, trigger: dict | None, seed: int
) -> dict:
    """A jsonpickled RoundConfig as rounds 5/6 wrote it (no embedding_filename: derived from the names)."""
    config = {
        "py/object": "round_config.RoundConfig",
        "master_seed": seed,
        "poisoned": trigger is not None,
        "model_architecture": plan["architecture"],
        "embedding": family.embedding,
        "embedding_flavor": family.flavor,
        "cls_token_is_first": family.cls_token_is_first,
        "source_dataset": "synthetic-reviews",
        "number_classes": 2,
        "rnn_hidden_state_size": head["rnn_hidden_state_size"],
        "dropout": head["dropout"],
        "rnn_bidirectional": head["rnn_bidirectional"],
        "rnn_number_layers": head["rnn_number_layers"],
        "learning_rate": spec.learning_rate,
        "batch_size": spec.batch_size,
        "adversarial_training_method": "None",
        "adversarial_eps": None,
        "adversarial_training_ratio": None,
        "trigger_organization": "one2one" if trigger else "None",
        "number_triggers": 1 if trigger else 0,
        "triggers": [trigger] if trigger else None,
    }
    if spec.round == 5:
        config["adversarial_training_iteration_count"] = None
    return config


def make_round(spec: SentimentRoundSpec, output_dir: Path, n_jobs: int = 1) -> list[Path]:
    """Make (or complete) a round; embeddings and model folders that already exist are kept."""
    if spec.round not in (5, 6):
        raise ValueError(f"sentiment rounds are 5 and 6, not {spec.round}")
    output_dir = Path(output_dir)
    torch.set_num_threads(MODEL_THREADS)  # as every model: the round's files must not depend on the cores
    ensure_embeddings(spec, output_dir)
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
