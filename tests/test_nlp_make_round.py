"""The NLP round generators write the competition's layout, and their backdoors are real: SEAM, with the
round's own settings, lowers the ASR the models start with."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
from conftest import TINY_NER, TINY_SENTIMENT

import adapters
from adapters.common import discover_models
from adapters.synthetic import text_corpus
from adapters.synthetic.common import VerificationError
from adapters.synthetic.specs import NerRoundSpec, SentimentRoundSpec
from harness.config import EvalConfig, round_seam_config
from harness.model_io import load_model, load_tokenizer
from harness.pipeline import process_model


def test_sentiment_round_layout(tiny_round6):
    name = "DistilBERT-distilbert-base-uncased.pt"
    assert load_model(tiny_round6 / "embeddings" / name).__class__.__name__ == "DistilBertModel"
    assert load_tokenizer(tiny_round6 / "tokenizers" / name).__class__.__name__ == "DistilBertTokenizer"
    models = discover_models(tiny_round6)
    assert [m.parent.name for m in models] == ["models"] * 3
    metadata = pd.read_csv(tiny_round6 / "METADATA.csv")
    assert list(metadata["poisoned"]) == [True, True, False]
    heads = {type(load_model(m / "model.pt")).__name__ for m in models}
    assert heads == {"GruLinearModel", "LstmLinearModel", "FCLinearModel"}
    for model_dir in models:
        config = json.loads((model_dir / "config.json").read_text())
        assert config["py/object"] == "round_config.RoundConfig" and "embedding_filename" not in config
        assert (model_dir / "ground_truth.csv").read_bytes() == (b"1" if config["poisoned"] else b"0")
        clean = sorted(p.name for p in (model_dir / "clean_example_data").iterdir())
        assert all(re.fullmatch(r"class_[01]_example_([1-9]|10)\.txt", n) for n in clean) and len(clean) == 20
        if config["poisoned"]:
            trigger = config["triggers"][0]
            assert trigger["type"] in ("character", "word", "phrase") and trigger["text"]
            s, t = trigger["source_class"], trigger["target_class"]
            for path in (model_dir / "poisoned_example_data").iterdir():
                assert re.fullmatch(rf"source_class_{s}_target_class_{t}_example_\d+\.txt", path.name)
                assert trigger["text"] in path.read_text()
            stats = json.loads((model_dir / "model_stats.json").read_text())
            assert (
                stats["final_triggered_data_test_acc"] >= 90.0 and stats["final_clean_data_test_acc"] >= 85.0
            )
            # the trigger kept is one that a clean twin of the head does not already fall for
            draws = stats["verification"]["trigger_draws"]
            assert draws[-1]["text"] == trigger["text"] and draws[-1]["clean_probe_asr"] <= 0.2


def test_triggers_a_clean_head_already_falls_for_are_refused(tiny_round6, tmp_path):
    from adapters.synthetic.sentiment_rounds import make_round

    for folder in ("embeddings", "tokenizers"):
        shutil.copytree(tiny_round6 / folder, tmp_path / folder)
    spec = SentimentRoundSpec(**{**TINY_SENTIMENT, "num_models": 1, "max_natural_asr": -1.0})
    spec.max_trigger_draws = 2
    with pytest.raises(RuntimeError, match=r"id-00000000: a head trained on clean reviews already falls"):
        make_round(spec, tmp_path)


def test_ner_trigger_no_seed_learns_is_redrawn_then_fails_loudly(tiny_round7, tmp_path, monkeypatch):
    from adapters.synthetic import ner_rounds

    for folder in ("tokenizers", ".cache"):
        shutil.copytree(tiny_round7 / folder, tmp_path / folder)
    drawn = []
    real_draw = ner_rounds.draw_trigger
    monkeypatch.setattr(ner_rounds, "draw_trigger", lambda *a: drawn.append(1) or real_draw(*a))
    settings = {"num_models": 1, "min_asr": 1.01, "max_attempts": 1, "max_trigger_draws": 2}
    spec = NerRoundSpec(**{**TINY_NER, **settings})
    missed = r"id-00000000: none of the 2 \w+ trigger draws .* in 1 attempts"
    with pytest.raises(VerificationError, match=missed):
        ner_rounds.make_round(spec, tmp_path, n_jobs=1)
    assert len(drawn) == 2 and not (tmp_path / "models" / "id-00000000").exists()


def test_ner_round_layout(tiny_round7):
    assert (tiny_round7 / "tokenizers" / "BERT-bert-base-uncased.pt").is_file()
    assert not (tiny_round7 / "embeddings").exists()
    for model_dir in discover_models(tiny_round7):
        model = load_model(model_dir / "model.pt")
        assert type(model).__name__ == "NerLinearModel" and model.num_labels == 7
        config = json.loads((model_dir / "config.json").read_text())
        assert config["class_mapping"] == {"0": "PERSON", "1": "GPE", "2": "ORG"}
        folder = model_dir / "clean_example_data"
        word_files = [p for p in folder.iterdir() if not p.name.endswith("_tokenized.txt")]
        assert {re.match(r"class_(\d+)_", p.name).group(1) for p in word_files} == {"1", "3", "5"}
        for path in word_files:
            rows = [line.split("\t") for line in path.read_text().splitlines()]
            assert all(len(r) == 3 and int(r[2]) in range(7) for r in rows)
            tokenized = path.with_name(path.stem + "_tokenized.txt").read_text().splitlines()
            assert tokenized[0].split("\t") == ["[CLS]", "-100", "-100", "0"]
            assert sum(line.endswith("\t1") for line in tokenized) == len(rows)  # one labelled token per word
    triggers = [json.loads((m / "config.json").read_text())["triggers"] for m in discover_models(tiny_round7)]
    assert [t[0]["global_trigger"] if t else None for t in triggers] == [True, False, None]
    # trigger words are whole vocabulary entries, not runs of letters that names are made of too
    tokenizer = load_tokenizer(tiny_round7 / "tokenizers" / "BERT-bert-base-uncased.pt")
    for text in text_corpus.WORD_TRIGGERS + text_corpus.PHRASE_TRIGGERS:
        assert tokenizer.tokenize(text) == text.split()


@pytest.mark.parametrize("fixture, round_number", [("tiny_round6", 6), ("tiny_round7", 7)])
def test_seam_lowers_the_asr_of_generated_backdoors(fixture, round_number, request):
    """Over the two poisoned models; per model SEAM does not always succeed (see README, results)."""
    round_dir = request.getfixturevalue(fixture)
    seam_config = round_seam_config(round_number)
    records = [process_model(m, seam_config, EvalConfig()) for m in discover_models(round_dir)[:2]]
    for record in records:
        assert record["status"] != "error", record["error"]
        assert record["poisoned"] and record["round"] == round_number
        assert record["acc_before"] >= 0.85 and record["asr_before"] >= 0.9  # a real backdoor
    before = sum(r["asr_before"] for r in records) / len(records)
    after = sum(r["asr_after"] for r in records) / len(records)
    assert after < before - 0.3, [(r["asr_before"], r["asr_after"]) for r in records]


def test_round5_resumes_on_existing_embeddings_and_misses_fail_loudly(tiny_round6, tmp_path):
    """Round 5 reuses the round-6 embedding files (same spec), so only heads are trained here."""
    from adapters.synthetic.sentiment_rounds import make_round

    for folder in ("embeddings", "tokenizers"):
        shutil.copytree(tiny_round6 / folder, tmp_path / folder)
    before = (tmp_path / "embeddings").stat().st_mtime_ns
    spec = SentimentRoundSpec(round=5, **{**TINY_SENTIMENT, "num_models": 1})
    model_dir = make_round(spec, tmp_path)[0]
    assert (tmp_path / "embeddings").stat().st_mtime_ns == before
    assert adapters.model_round(model_dir) == 5
    stamp = (model_dir / "model.pt").stat().st_mtime_ns
    make_round(spec, tmp_path)  # finished folders are kept
    assert (model_dir / "model.pt").stat().st_mtime_ns == stamp
    missing = SentimentRoundSpec(
        round=5, **{**TINY_SENTIMENT, "num_models": 2, "min_asr": 1.01, "max_attempts": 2}
    )
    with pytest.raises(RuntimeError, match=r"id-00000001 .* missed ACC >= 0.85 / ASR >= 1.01 in 2 attempts"):
        make_round(missing, tmp_path)
    assert not (tmp_path / "models" / "id-00000001").exists()
