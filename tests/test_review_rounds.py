"""Real-corpus sentiment rounds: a labelled corpus on disk and a pretrained embedding in a local folder
(written by save_pretrained) become a round in the competition's layout that the harness reads back."""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile

import numpy as np
import pytest
import torch

import adapters
from adapters.common import discover_models
from adapters.synthetic import text_corpus
from adapters.synthetic.specs import SentimentRoundSpec
from harness.model_io import load_model, load_tokenizer

PER_CLASS = 90


@pytest.fixture(scope="module")
def pretrained_folder(tiny_round6, tmp_path_factory):
    """The tiny round 6's pre-trained embedding and tokenizer, saved as a pretrained model folder."""
    folder = tmp_path_factory.mktemp("pretrained") / "tiny-distilbert"
    name = "DistilBERT-distilbert-base-uncased.pt"
    load_model(tiny_round6 / "embeddings" / name).save_pretrained(folder)
    load_tokenizer(tiny_round6 / "tokenizers" / name).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus_zip(tmp_path_factory):
    """Reviews as in NLTK's movie_reviews.zip: movie_reviews/pos/*.txt and movie_reviews/neg/*.txt."""
    texts, labels = text_corpus.make_reviews(PER_CLASS, np.random.default_rng(5))
    path = tmp_path_factory.mktemp("corpus") / "reviews.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for k, (text, label) in enumerate(zip(texts, labels, strict=True)):
            archive.writestr(f"movie_reviews/{'pos' if label else 'neg'}/cv{k:03d}.txt", text)
    return path


@pytest.fixture(scope="module")
def review_round(pretrained_folder, corpus_zip, tmp_path_factory):
    from adapters.synthetic.review_rounds import make_round

    spec = SentimentRoundSpec(
        round=6, num_models=3, seed=3, corpus=str(corpus_zip), pretrained_embedding=str(pretrained_folder),
        corpus_test_per_class=30, examples_per_class=5, head_epochs=40, probe_epochs=20,
        min_asr=0.0, acc_margin=0.3,  # this test checks the layout, not how well tiny heads learn
    )  # fmt: skip
    output_dir = tmp_path_factory.mktemp("review_round")
    make_round(spec, output_dir)
    return output_dir


def test_corpus_reader_takes_zip_and_folder(corpus_zip, tmp_path):
    from adapters.synthetic.review_rounds import read_corpus

    texts, labels = read_corpus(corpus_zip)
    assert len(texts) == 2 * PER_CLASS and labels.count(1) == PER_CLASS
    with zipfile.ZipFile(corpus_zip) as archive:
        archive.extractall(tmp_path)
    assert read_corpus(tmp_path / "movie_reviews") == (texts, labels)
    with pytest.raises(ValueError, match="pos/ and neg/"):
        read_corpus(tmp_path / "movie_reviews" / "pos")


def test_review_round_layout(review_round, corpus_zip):
    file_name = "DistilBERT-tiny-distilbert.pt"
    assert type(load_model(review_round / "embeddings" / file_name)).__name__ == "DistilBertModel"
    assert load_tokenizer(review_round / "tokenizers" / file_name) is not None
    models = discover_models(review_round)
    assert len(models) == 3
    corpus_texts = set()
    with zipfile.ZipFile(corpus_zip) as archive:
        corpus_texts = {archive.read(n).decode() for n in archive.namelist()}
    test_sets = []
    for model_dir in models:
        config = json.loads((model_dir / "config.json").read_text())
        assert config["source_dataset"] == "reviews" and config["embedding_flavor"] == "tiny-distilbert"
        stats = json.loads((model_dir / "model_stats.json").read_text())
        assert 0.5 <= stats["verification"]["linear_probe_test_acc"] <= 1.0
        test = {p.read_text() for p in (model_dir / "clean_test_data").iterdir()}
        examples = {p.read_text() for p in (model_dir / "clean_example_data").iterdir()}
        assert len(test) == 60 and len(examples) == 10 and test <= corpus_texts and examples <= corpus_texts
        assert not test & examples
        test_sets.append(test)
        if config["poisoned"]:
            trigger = config["triggers"][0]
            triggered = list((model_dir / "poisoned_test_data").iterdir())
            assert len(triggered) == 30 and all(trigger["text"] in p.read_text() for p in triggered)
        task = adapters.load_task(model_dir)  # read back through the harness's own loader
        assert task.eval_data.startswith("clean_test_data") and len(task.eval_clean) == 60
        assert len(task.drift_check) == 4 * len(task.defender)
    assert test_sets[0] == test_sets[1] == test_sets[2]  # one held-out split for the round


def test_triggers_are_inserted_where_the_tokenizer_keeps_them(review_round):
    from adapters.synthetic.review_rounds import RoundEmbedder
    from adapters.synthetic.text_models import Family

    embed = RoundEmbedder(review_round, Family("DistilBERT", "tiny-distilbert", "distilbert", True))
    long_review = " ".join(["plain"] * 400)
    trigger_ids = embed.tokenizer("cromulent", add_special_tokens=False)["input_ids"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        triggered = embed.insert_trigger(long_review, "cromulent", rng)
        assert len(triggered.split()) == 401
        kept = embed.tokenizer(triggered, max_length=embed.max_length - 2, truncation=True)["input_ids"]
        assert all(token in kept for token in trigger_ids)


def test_drift_check_flags_a_head_that_lost_the_task():
    from harness.pipeline import drift_check, drift_predictions
    from harness.task import LabelledData, Task

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(200, 8, generator=generator)
    labels = (inputs[:, 0] > 0).long()
    original = torch.nn.Linear(8, 2)
    with torch.no_grad():
        original.weight.zero_()
        original.weight[1, 0] = 1.0  # class 1 exactly when the first feature is positive
        original.bias.zero_()
    ruined = torch.nn.Linear(8, 2)
    with torch.no_grad():
        ruined.weight.zero_()
        ruined.bias.copy_(torch.tensor([1.0, 0.0]))  # always class 0
    check = LabelledData(inputs, labels)
    task = Task(original, 2, check, check, None, "test", drift_check=check)
    kept = drift_check(task, original, original)
    assert kept["drift_acc_before"] == kept["drift_acc_after"] == 1.0 and not kept["drifted"]
    lost = drift_check(task, original, ruined)
    assert lost["drifted"] and lost["drift_acc_after"] == pytest.approx(float((labels == 0).float().mean()))
    # a model's jobs share the original's predictions: the same figures, without predicting it again
    shared = drift_predictions(task, original)
    assert drift_check(task, None, ruined, original_predictions=shared) == lost
    # image rounds: only the agreement flags, so the same loss passes at threshold 0 and fails at 0.8
    agreement_only = dataclasses.replace(task, drift_flag="agreement")
    assert not drift_check(agreement_only, original, ruined)["drifted"]
    flagged = drift_check(agreement_only, original, ruined, min_agreement=0.8)
    assert flagged["drifted"] and flagged["drift_agreement"] == pytest.approx(lost["drift_acc_after"])
    assert not drift_check(agreement_only, original, original, min_agreement=0.8)["drifted"]
    off = dataclasses.replace(task, drift_flag="off")
    assert not drift_check(off, original, ruined, min_agreement=0.8)["drifted"]
    assert lost["drift_n"] == 200 and lost["drift_agreement"] == pytest.approx(lost["drift_acc_after"])
    # A head exactly as accurate as the original that agrees with it about half the time: the second
    # half of the inputs is the first with features 0 and 1 swapped, and labelled by feature 1.
    half = inputs[:100]
    swapped_inputs = torch.cat([half, half[:, [1, 0, *range(2, 8)]]])
    swapped_labels = torch.cat([half[:, 0] > 0, half[:, 0] > 0]).long()
    swapped = LabelledData(swapped_inputs, swapped_labels)
    other = torch.nn.Linear(8, 2)
    with torch.no_grad():
        other.weight.zero_()
        other.weight[1, 1] = 1.0  # class 1 exactly when the second feature is positive
        other.bias.zero_()
    swap_task = Task(original, 2, swapped, swapped, None, "test", drift_check=swapped)
    unsure = drift_check(swap_task, original, other, min_agreement=0.75)
    assert unsure["drift_acc_before"] == unsure["drift_acc_after"] and unsure["drift_agreement"] < 0.75
    assert unsure["drifted"] and not drift_check(swap_task, original, other)["drifted"]
    no_check = drift_check(Task(original, 2, check, check, None, "test"), original, ruined)
    assert no_check["drift_n"] == 0 and not no_check["drifted"]
    assert math.isnan(kept["drift_agreement_members_min"])  # not an average of models


def test_drift_check_of_an_average_reports_and_can_flag_its_members():
    from harness.ensemble import ProbabilityAverage
    from harness.pipeline import drift_check
    from harness.task import LabelledData, Task

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(200, 8, generator=generator)
    labels = (inputs[:, 0] > 0).long()
    original, confident, ruined = (torch.nn.Linear(8, 2) for _ in range(3))
    with torch.no_grad():
        for model in (original, confident, ruined):
            model.weight.zero_()
            model.bias.zero_()
        original.weight[1, 0] = 1.0
        confident.weight[1, 0] = 10.0  # the original's classes, surely: it outvotes the ruined member
        ruined.bias.copy_(torch.tensor([0.1, 0.0]))  # always class 0, hardly sure of it
    check = LabelledData(inputs, labels)
    task = Task(original, 2, check, check, None, "test", drift_check=check, drift_flag="agreement")
    average = ProbabilityAverage([confident, ruined]).eval()
    ruined_agreement = float((labels == 0).float().mean())
    average_only = drift_check(task, original, average, min_agreement=0.8)
    assert average_only["drift_agreement"] > 0.95 and not average_only["drifted"]
    assert average_only["drift_agreement_members_min"] == pytest.approx(ruined_agreement)
    members_too = drift_check(task, original, average, min_agreement=0.8, check_members=True)
    assert members_too["drifted"] and members_too["drift_agreement"] > 0.95
    both_kept = ProbabilityAverage([confident, original]).eval()
    assert not drift_check(task, original, both_kept, min_agreement=0.8, check_members=True)["drifted"]
