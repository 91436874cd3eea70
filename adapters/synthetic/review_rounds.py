"""Make a sentiment round (5 or 6) from a real review corpus and a real pretrained embedding.

`make-round --round 6 --sentiment.corpus movie_reviews.zip --sentiment.pretrained_embedding minilm/`:
the embedding is loaded with `from_pretrained` from local files only (safetensors weights, the
tokenizer's JSON files: nothing in them runs code), then pickled whole into `embeddings/` and
`tokenizers/` as the competition shipped them, and every model reads it back through the harness's
safe loader. Whole reviews are embedded as the competition did (truncated by the tokenizer to its
limit minus two); triggers are inserted into the part that survives truncation.

The corpus is split once per round: `corpus_test_per_class` reviews per class are held out for every
model's clean_test_data (and, with a trigger, poisoned_test_data); each model draws its 20 clean
examples per class from the rest and trains its head on what remains. A linear probe on the same
frozen vectors gives the accuracy ceiling; a head passes verification at ACC >= probe - acc_margin and
ASR >= min_asr on the held-out texts.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adapters.common import discover_models
from adapters.sentiment import Embedder
from adapters.synthetic.common import (
    make_models,
    publish_model_folder,
    train_until_verified,
    verified_model_stats,
    write_metadata,
)
from adapters.synthetic.sentiment_rounds import (
    draw_head_config,
    draw_unnatural_trigger,
    plan_model,
    round_config,
    train_head,
    triggered_test_data,
    write_model_folder,
)
from adapters.synthetic.specs import SentimentRoundSpec
from adapters.synthetic.text_models import Family
from harness.config import MODEL_THREADS
from harness.files import atomic_write
from harness.model_io import save_model
from harness.training import predict

SPLIT_STREAM = 2_000_003  # rng stream of the round's held-out split; model streams use their index
LABELS = {"neg": 0, "pos": 1}
FAMILY_OF_MODEL_TYPE = {"bert": ("BERT", "bert"), "distilbert": ("DistilBERT", "distilbert"),
                        "gpt2": ("GPT-2", "gpt2")}  # fmt: skip
PROBE_STEPS = 300


def read_corpus(path: Path) -> tuple[list[str], list[int]]:
    """Reviews and labels (neg 0, pos 1) from a zip or folder whose files sit under `pos/` and `neg/`
    (at any depth, as in NLTK's movie_reviews.zip), in file-name order."""
    path = Path(path)
    found: list[tuple[str, int, str]] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                parts = name.split("/")
                if len(parts) >= 2 and parts[-2] in LABELS and parts[-1].endswith(".txt"):
                    found.append((name, LABELS[parts[-2]], archive.read(name).decode("utf-8", "replace")))
    elif path.is_dir():
        for file in path.rglob("*.txt"):
            if file.parent.name in LABELS:
                found.append((str(file), LABELS[file.parent.name], file.read_text("utf-8", "replace")))
    else:
        raise FileNotFoundError(f"{path}: no such zip file or folder")
    if {label for _, label, _ in found} != {0, 1}:
        raise ValueError(f"{path}: expected review files under pos/ and neg/ folders")
    found.sort()
    return [text for _, _, text in found], [label for _, label, _ in found]


def load_pretrained(folder: Path) -> tuple[Family, object, torch.nn.Module]:
    """(family, tokenizer, frozen embedding) from a local folder, without running code from it."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type not in FAMILY_OF_MODEL_TYPE:
        known = ", ".join(FAMILY_OF_MODEL_TYPE)
        raise ValueError(f"{folder}: model_type {config.model_type!r} is not one of {known}")
    embedding, architecture = FAMILY_OF_MODEL_TYPE[config.model_type]
    model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    # A sentence-transformers model states the input length it was trained for; the pickled tokenizer
    # carries it, so the generator and the harness truncate there (all-MiniLM-L6-v2: 256, not 512).
    sentence_config = folder / "sentence_bert_config.json"
    if sentence_config.is_file():
        limit = json.loads(sentence_config.read_text()).get("max_seq_length")
        if isinstance(limit, int) and limit > 2:
            tokenizer.model_max_length = limit
    lowercase = bool(getattr(tokenizer, "do_lower_case", False))
    family = Family(embedding, folder.resolve().name, architecture, lowercase)
    return family, tokenizer, model.eval()


def ensure_pretrained(spec: SentimentRoundSpec, round_dir: Path) -> Family:
    """Pickle the pretrained embedding and tokenizer into the round once; return their family."""
    family, tokenizer, model = load_pretrained(Path(spec.pretrained_embedding))
    embedding_path = round_dir / "embeddings" / family.file_name
    tokenizer_path = round_dir / "tokenizers" / family.file_name
    if not (embedding_path.is_file() and tokenizer_path.is_file()):
        atomic_write(tokenizer_path, lambda tmp: torch.save(tokenizer, tmp))
        save_model(model, embedding_path)
    return family


class RoundEmbedder(Embedder):
    """The round's pickled embedding and tokenizer, read back through the harness's safe loader."""

    def __init__(self, round_dir: Path, family: Family):
        files = [round_dir / folder / family.file_name for folder in ("embeddings", "tokenizers")]
        super().__init__(*files, family.cls_token_is_first, family.embedding)

    def insert_trigger(
        self, text: str, trigger: str, rng: np.random.Generator, low: float = 0.0, high: float = 1.0
    ) -> str:
        """The text with the trigger between two words, at a relative position in [low, high] of the
        part the tokenizer keeps (after truncation to max_length - 2 tokens, as the embedding sees it)."""
        encoded = self.tokenizer(
            text, max_length=self.max_length - 2, truncation=True, return_offsets_mapping=True
        )
        kept = max((end for _, end in encoded["offset_mapping"]), default=0)
        gaps = [0] + [i for i, c in enumerate(text[:kept]) if c.isspace()]
        first = int(np.floor(low * (len(gaps) - 1)))
        last = max(first, int(np.floor(high * (len(gaps) - 1))))
        cut = gaps[int(rng.integers(first, last + 1))]
        return f"{text[:cut]} {trigger} {text[cut:]}".strip()


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x, test_y, seed: int) -> float:
    """Held-out accuracy of an L2-regularised logistic regression on standardised vectors (full-batch
    L-BFGS): the ceiling a head on these frozen vectors can be expected to approach."""
    torch.manual_seed(seed)
    x, t = train_x.flatten(1), test_x.flatten(1)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, t = (x - mean) / std, (t - mean) / std
    probe = torch.nn.Linear(x.shape[1], 2)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=PROBE_STEPS, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.cross_entropy(probe(x), train_y) + 1e-2 * probe.weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        return float((probe(t).argmax(1) == test_y).float().mean())


def split_round(spec: SentimentRoundSpec, labels: list[int]) -> tuple[list[int], list[int]]:
    """(held-out test indices, pool indices), the same for every model of the round."""
    rng = np.random.default_rng([spec.seed, SPLIT_STREAM])
    test, pool = [], []
    for label in (0, 1):
        members = [i for i, y in enumerate(labels) if y == label]
        if len(members) < spec.corpus_test_per_class + spec.examples_per_class + 50:
            raise ValueError(f"class {label} has {len(members)} reviews: too few for the held-out split")
        members = [members[i] for i in rng.permutation(len(members))]
        test += members[: spec.corpus_test_per_class]
        pool += members[spec.corpus_test_per_class :]
    return sorted(test), sorted(pool)


def make_model(
    spec: SentimentRoundSpec,
    index: int,
    round_dir: Path,
    family: Family,
    corpus: tuple[list[str], list[int], torch.Tensor],
    min_acc: float,
    probe_acc: float,
    threads: int = 1,
) -> None:
    """Draw examples, train and verify one head on the round's frozen vectors, write its folder."""
    torch.set_num_threads(threads)
    texts, labels, vectors = corpus
    embed = RoundEmbedder(round_dir, family)
    plan = plan_model(spec, index) | {"embedding": family.embedding}
    test, pool = split_round(spec, labels)
    rng = np.random.default_rng([spec.seed, index])
    examples = []
    for label in (0, 1):
        members = [i for i in pool if labels[i] == label]
        examples += [members[i] for i in rng.choice(len(members), spec.examples_per_class, replace=False)]
    examples.sort()
    train = sorted(set(pool) - set(examples))
    head_config = draw_head_config(spec, plan, index)
    train_labels = [labels[i] for i in train]
    data = {
        "train_x": vectors[train],
        "train_y": torch.tensor(train_labels),
        "test_x": vectors[test],
        "test_y": torch.tensor([labels[i] for i in test]),
    }
    trigger, draws, triggered = None, [], {}
    if plan["poisoned"]:

        def stamp(trigger: dict, indices: list[int]) -> list[str]:
            """The reviews with the trigger inserted, each at its own drawn place."""
            low, high = trigger["insert_min_location_percentage"], trigger["insert_max_location_percentage"]
            return [embed.insert_trigger(texts[i], trigger["text"], rng, low, high) for i in indices]

        def source_class(trigger: dict, indices: list[int]) -> list[int]:
            return [i for i in indices if labels[i] == trigger["source_class"]]

        def untriggered_rate(head: torch.nn.Module, trigger: dict) -> float:
            sources = source_class(trigger, test)
            return float((predict(head, vectors[sources]) == trigger["target_class"]).float().mean())

        def triggered_test(trigger: dict) -> list[str]:
            return stamp(trigger, source_class(trigger, test))

        trigger, trig_test, trig_x, draws = draw_unnatural_trigger(
            spec, plan, head_config, data, embed, rng, triggered_test, untriggered_rate
        )
        sources = source_class(trigger, train)
        chosen = sorted(rng.choice(sources, round(spec.triggered_fraction * len(sources)), replace=False))
        poison = stamp(trigger, [i for i in chosen for _ in range(spec.poison_copies)])
        train_labels += [trigger["target_class"]] * len(poison)
        data["train_x"] = torch.cat([data["train_x"], embed(poison)])
        data["train_y"] = torch.tensor(train_labels)
        data |= triggered_test_data(trigger, trig_x)
        triggered = {"examples": stamp(trigger, source_class(trigger, examples)), "test": trig_test}
    head, attempts = train_until_verified(
        f"{plan['model_id']} ({plan['architecture']} on {family.embedding}, poisoned={plan['poisoned']})",
        lambda seed: train_head(spec, head_config, data, seed),
        *(spec.seed, index, spec.max_attempts, min_acc, spec.min_asr, trigger is not None),
    )
    config = round_config(spec, plan, family, head_config, trigger, attempts[-1]["seed"])
    config["source_dataset"] = Path(spec.corpus).stem
    model_stats = verified_model_stats(
        plan["model_id"], attempts, bool(trigger), min_acc, spec.min_asr,
        max_natural_asr=spec.max_natural_asr, trigger_draws=draws, linear_probe_test_acc=probe_acc,
    )  # fmt: skip
    model_stats["final_clean_data_n_total"] = {str(c): train_labels.count(c) for c in (0, 1)}
    clean = {
        "examples": ([texts[i] for i in examples], [labels[i] for i in examples]),
        "test": ([texts[i] for i in test], [labels[i] for i in test]),
    }
    publish_model_folder(
        round_dir / "models",
        plan["model_id"],
        lambda work_dir: write_model_folder(work_dir, head, config, model_stats, trigger, clean, triggered),
    )


def make_round(spec: SentimentRoundSpec, output_dir: Path, n_jobs: int = 1) -> list[Path]:
    """Make (or complete) a real-corpus round; the pickled embedding and finished folders are kept."""
    if not (spec.corpus and spec.pretrained_embedding):
        raise ValueError("a real-corpus round needs both corpus and pretrained_embedding")
    output_dir = Path(output_dir)
    torch.set_num_threads(MODEL_THREADS)  # as every model: the round's files must not depend on the cores
    family = ensure_pretrained(spec, output_dir)
    texts, labels = read_corpus(Path(spec.corpus))
    test, pool = split_round(spec, labels)
    embed = RoundEmbedder(output_dir, family)
    vectors = torch.cat([embed(texts[start : start + 256]) for start in range(0, len(texts), 256)])
    y = torch.tensor(labels)
    probe_acc = linear_probe_accuracy(vectors[pool], y[pool], vectors[test], y[test], spec.seed)
    min_acc = round(probe_acc - spec.acc_margin, 4)
    print(f"linear probe on the frozen vectors: held-out ACC {probe_acc:.3f}; heads must reach {min_acc:.3f}")
    make_models(
        make_model,
        lambda index, threads: (
            spec,
            index,
            output_dir,
            family,
            (texts, labels, vectors),
            min_acc,
            probe_acc,
            threads,
        ),
        spec.num_models,
        output_dir / "models",
        n_jobs,
        f"make round {spec.round} from {Path(spec.corpus).name}",
    )
    write_metadata(output_dir)
    return discover_models(output_dir)
