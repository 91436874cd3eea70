"""Rounds 5-7 as NIST shipped them: hand-written folders in the competition's file formats, through the
adapters and through `seam-harness run`."""

from __future__ import annotations

import json
import shutil
import sys

import pandas as pd
import pytest
import torch
from conftest import FAST_SEAM, seam_harness
from nlp_fixtures import NER_FILES, REVIEWS, TRIGGERED_REVIEWS, make_ner_round, make_sentiment_round

import adapters
from adapters import ner, sentiment
from adapters.common import discover_models, read_config
from harness.config import EvalConfig, SeamConfig, round_seam_config
from harness.model_io import ModelLoadError, load_model
from harness.pipeline import process_model
from harness.records import RESULT_COLUMNS
from harness.task import IGNORE_INDEX, LabelledData

FAST_SETTINGS = dict(  # what conftest.FAST_SEAM sets on the command line
    forget_max_epochs=3,
    forget_epochs_below_alpha=1,
    recover_max_epochs=3,
    recover_epochs_after_goal=0,
    restarts=0,
)


@pytest.fixture(scope="module")
def sentiment_round(tmp_path_factory):
    return make_sentiment_round(tmp_path_factory.mktemp("round6"))


@pytest.fixture(scope="module")
def ner_round(tmp_path_factory):
    return make_ner_round(tmp_path_factory.mktemp("round7"))


def test_model_factories_pickles_name_the_competition_module(sentiment_round):
    head = load_model(sentiment_round / "models" / "id-00000001" / "model.pt")
    assert type(head).__module__ == "model_factories" and type(head).__name__ == "GruLinearModel"
    raw = (sentiment_round / "models" / "id-00000001" / "model.pt").read_bytes()
    assert b"model_factories" in raw and b"adapters.model_factories" not in raw
    assert head(torch.zeros(3, 1, 16)).shape == (3, 2)  # [N, 1, H] -> [N, 2]


def test_reduced_and_full_sentiment_configs_load(sentiment_round):
    reduced, full = discover_models(sentiment_round)
    task = adapters.load_task(reduced)
    assert task.info["round"] == 6 and task.info["model_architecture"] == "LstmLinear"
    assert task.info["poisoned"] is None and task.eval_triggered is None
    assert task.defender.inputs.shape[1:] == (1, 16)  # cached vectors, not text
    assert len(task.defender) + len(task.eval_clean) == len(REVIEWS)
    task = adapters.load_task(full)
    assert task.info["poisoned"] is True and task.info["trigger_type"] == "word"
    assert task.eval_triggered.labels.tolist() == [0, 0] and task.eval_triggered.targets.tolist() == [1, 1]
    assert task.eval_data == "clean_example_holdout(fraction=0.5,seed=0)+poisoned_example_data"


def test_embedding_runs_once_per_example(sentiment_round, monkeypatch):
    """SEAM and both evaluations run only the head: the embedding sees each example text once, and
    the drift check's windows of the defender's texts once."""
    rows = []
    real_load = sentiment.load_model

    def counting_load(path, trust_pickles=False):
        model = real_load(path, trust_pickles)
        if path.parent.name == "embeddings":
            model.register_forward_hook(lambda module, args, kwargs_or_out: rows.append(len(args[0])))
        return model

    monkeypatch.setattr(sentiment, "load_model", counting_load)
    model_dir = discover_models(sentiment_round)[1]
    record = process_model(model_dir, SeamConfig(forget_max_epochs=3, recover_max_epochs=3), EvalConfig())
    assert record["status"] != "error", record.get("error")
    windows = sentiment.WINDOWS_PER_TEXT * record["defender_examples"]
    assert sum(rows) == len(REVIEWS) + len(TRIGGERED_REVIEWS) + windows


def test_sentiment_augmentation_is_noise_scaled_by_the_defender_spread():
    vectors = torch.randn(40, 1, 6) * torch.tensor([0.0, 0.1, 1.0, 1.0, 2.0, 5.0])
    labels = torch.randint(0, 2, (40,))
    augment = sentiment.vector_noise(vectors, scale=2.0)
    noisy, same_labels = augment(vectors, labels, torch.Generator().manual_seed(0))
    again, _ = augment(vectors, labels, torch.Generator().manual_seed(0))
    assert noisy.shape == vectors.shape and torch.equal(noisy, again)
    assert torch.equal(same_labels, labels)
    change = (noisy - vectors).std(dim=(0, 1)) / vectors.std(dim=(0, 1)).clamp(min=1e-12)
    assert torch.equal(noisy[..., 0], vectors[..., 0])  # a feature that never varies gets no noise
    assert torch.allclose(change[1:], torch.full((5,), 2.0), rtol=0.35)


def test_ner_augmentation_inserts_a_pseudo_word_of_outside_tokens_before_an_entity():
    # two sentences: [CLS]=1, O tokens 10-13, entity tokens 20/21 (B/I), a continuation 30, [SEP]=2, pad=0
    ids = torch.tensor([[1, 10, 20, 21, 11, 2, 0], [1, 12, 13, 20, 30, 2, 0]])
    labels = torch.tensor([[-100, 0, 1, 2, 0, -100, -100], [-100, 0, 0, 3, -100, -100, -100]])
    inputs = torch.stack([ids, (ids != 0).long()], dim=1)
    augment = ner.word_insertion(LabelledData(inputs, labels), pad_id=0, rate=1.0, max_tokens=3)
    for seed in range(10):
        longer, moved = augment(inputs, labels, torch.Generator().manual_seed(seed))
        assert longer.shape == (2, 2, 7 + 3) and moved.shape == (2, 7 + 3)
        for row in range(2):
            used = int(inputs[row, 1].sum())
            k = int(longer[row, 1].sum()) - used
            assert 1 <= k <= 3
            at = int((labels[row] % 2 == 1).nonzero()[0])  # the sentence's only entity (a B- label)
            word = longer[row, 0, at : at + k]
            assert set(word.tolist()) <= {10, 11, 12, 13}  # the defender's O tokens
            assert moved[row, at : at + k].tolist() == [0] + [-100] * (k - 1)  # O, then continuations
            # everything else is the sentence as it was, the entity and what follows shifted by k
            assert torch.equal(longer[row, 0, :at], ids[row, :at])
            assert torch.equal(longer[row, 0, at + k : used + k], ids[row, at:used])
            assert torch.equal(moved[row, :at], labels[row, :at])
            assert torch.equal(moved[row, at + k : used + k], labels[row, at:used])
            assert (longer[row, 0, used + k :] == 0).all() and (moved[row, used + k :] == -100).all()
    never = ner.word_insertion(LabelledData(inputs, labels), pad_id=0, rate=0.0)
    padded, same = never(inputs, labels, torch.Generator())
    assert torch.equal(padded[:, :, :7], inputs) and (padded[:, 1, 7:] == 0).all()
    assert torch.equal(same[:, :7], labels)


def test_gpt2_style_vector_is_the_last_non_padding_token():
    """Batched with padding, each text's vector equals the one it gets alone."""
    from nlp_fixtures import CORPUS

    from adapters.synthetic.text_models import SENTIMENT_FAMILIES, build_backbone, train_tokenizer

    family = SENTIMENT_FAMILIES["GPT-2"]
    tokenizer = train_tokenizer(family, CORPUS, 300, 64)
    assert tokenizer.pad_token is None
    torch.manual_seed(0)
    model = build_backbone(family, tokenizer, 16, 1, 2, 64).eval()
    texts = ["I love it .", "Terrible , flimsy and noisy headphones , I hate them ."]
    together = sentiment.embed_texts(texts, tokenizer, model, False, 64)
    alone = torch.cat([sentiment.embed_texts([t], tokenizer, model, False, 64) for t in texts])
    assert tokenizer.pad_token == tokenizer.eos_token
    assert torch.allclose(together, alone, atol=1e-5)


def test_ner_labels_go_on_first_sub_tokens(ner_round):
    task = adapters.load_task(ner_round / "models" / "id-00000000")
    assert task.num_classes == 7 and task.background_class == 0 and task.info["round"] == 7
    data = task.defender
    assert data.inputs.shape[1] == 2 and data.labels.shape == (len(data), data.inputs.shape[2])
    for name, row in zip(data.names, data.labels, strict=True):
        expected = [label_id for _, _, label_id in NER_FILES[name]]
        assert [v for v in row.tolist() if v != IGNORE_INDEX] == expected  # one label per word, in order
    triggered = task.eval_triggered
    counted = triggered.labels != IGNORE_INDEX
    # the two words of the triggered PERSON entity: true B-/I-PERSON (1, 2), targets B-/I-ORG (5, 6)
    assert triggered.labels[counted].tolist() == [1, 2] and triggered.targets[counted].tolist() == [5, 6]


def test_ner_file_that_shows_true_labels_is_read_too():
    labels = torch.tensor([[IGNORE_INDEX, 0, 1, 2, 0, IGNORE_INDEX]])
    true, goal = ner.triggered_labels(labels[0], source_b=1, target_b=5)
    assert true.tolist() == [IGNORE_INDEX, IGNORE_INDEX, 1, 2, IGNORE_INDEX, IGNORE_INDEX]
    assert goal.tolist() == [IGNORE_INDEX, IGNORE_INDEX, 5, 6, IGNORE_INDEX, IGNORE_INDEX]


@pytest.mark.parametrize("fixture", ["sentiment_round", "ner_round"])
def test_cli_run_gives_complete_rows(fixture, request, tmp_path):
    round_dir = request.getfixturevalue(fixture)
    seam_harness("run", "--round_dir", round_dir, "--output_dir", tmp_path, *FAST_SEAM)
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert (results["status"] != "error").all(), results["error"].tolist()
    for column in ("acc_before", "acc_after", "forget_epochs", "recover_epochs", "total_seconds"):
        assert results[column].notna().all(), column
    poisoned = results[results["poisoned"] == True]  # noqa: E712
    assert len(poisoned) == 1 and poisoned["asr_before"].notna().all() and poisoned["fidelity"].notna().all()
    if fixture == "ner_round":
        assert set(results["round"]) == {7}
        assert (
            results["acc_all_labels_before"].notna().all() and results["acc_all_labels_after"].notna().all()
        )
    else:
        assert set(results["round"]) == {6} and set(results["model_architecture"]) == {
            "LstmLinear",
            "GruLinear",
        }


def test_pickle_naming_a_missing_class_gives_an_error_row(sentiment_round, tmp_path):
    round_dir = shutil.copytree(sentiment_round, tmp_path / "round")
    model_dir = discover_models(round_dir)[1]

    class NoSuchModel(torch.nn.Module):  # pickled as model_factories.NoSuchModel, then gone
        pass

    NoSuchModel.__module__, NoSuchModel.__qualname__ = "model_factories", "NoSuchModel"
    factories = sys.modules["model_factories"]
    factories.NoSuchModel = NoSuchModel
    try:
        torch.save(NoSuchModel(), model_dir / "model.pt")
    finally:
        del factories.NoSuchModel
    with pytest.raises(ModelLoadError, match="model_factories.NoSuchModel"):
        load_model(model_dir / "model.pt")
    output_dir = tmp_path / "out"
    result = seam_harness(
        "run", "--round_dir", round_dir, "--output_dir", output_dir, *FAST_SEAM, check=False
    )
    assert result.returncode == 3
    assert result.stdout.strip().splitlines()[-1].endswith(", 1 errors, 0 timeouts")
    results = pd.read_csv(output_dir / "results.csv").set_index("model_id")
    assert results.loc[model_dir.name, "status"] == "error"
    assert results.loc[model_dir.name, "model_architecture"] == read_config(model_dir)["model_architecture"]
    assert "model_factories.NoSuchModel" in results.loc[model_dir.name, "error"]
    assert results.loc["id-00000000", "status"] != "error"


@pytest.mark.parametrize("family", ["BERT", "GPT-2"])
def test_tokenizer_training_is_reproducible(family):
    """Our vocabularies do not depend on hash order (the `tokenizers` trainers' did, run to run)."""
    from nlp_fixtures import CORPUS

    from adapters.synthetic.text_models import SENTIMENT_FAMILIES, train_tokenizer

    first, second = (train_tokenizer(SENTIMENT_FAMILIES[family], CORPUS, 300, 64) for _ in range(2))
    assert first.get_vocab() == second.get_vocab()
    text = "Zorburg Bank praised the sturdy blender ^ cromulent"
    assert first(text)["input_ids"] == second(text)["input_ids"]
    assert first.unk_token_id not in first(text)["input_ids"]


@pytest.mark.parametrize("fixture", ["sentiment_round", "ner_round"])
def test_model_entrypoint_on_a_server_shaped_text_folder(fixture, request, tmp_path):
    """The NIST server's shape: model.pt, config.json and example_data/ in an anonymous folder; the round's
    tokenizer (and embedding) named by flag, as the server passed them; same numbers as the batch path."""
    round_dir = request.getfixturevalue(fixture)
    source = discover_models(round_dir)[0]
    active = tmp_path / "active"
    active.mkdir()
    for name in ("model.pt", "config.json"):
        shutil.copy(source / name, active / name)
    examples = (
        source / "example_data" if (source / "example_data").is_dir() else source / "clean_example_data"
    )
    shutil.copytree(examples, active / "example_data")
    config = adapters.common.read_config(source)
    file_name = config.get("embedding_filename") or config.get("tokenizer_filename")
    if file_name is None:  # full config: <embedding>-<flavor>.pt
        file_name = next((round_dir / "tokenizers").iterdir()).name
    flags = ["--tokenizer_filepath", round_dir / "tokenizers" / file_name]
    if fixture == "sentiment_round":
        flags += ["--embedding_filepath", round_dir / "embeddings" / file_name, "--cls_token_is_first"]
    result = tmp_path / "result.json"
    completed = seam_harness(
        "model", "--model_filepath", active / "model.pt", "--result_filepath", result,
        "--scratch_dirpath", tmp_path / "scratch", "--examples_dirpath", active / "example_data",
        *flags, *FAST_SEAM,
    )  # fmt: skip
    record = json.loads(result.read_text())
    assert record["status"] != "error", record.get("error")
    assert record["model_id"] == "active", completed.stdout

    # the batch path's function on the original folder (files found from the round layout)
    seam = round_seam_config(record["round"], **FAST_SETTINGS)
    batch = process_model(source, seam, EvalConfig())
    for key in ("acc_before", "acc_after", "forget_epochs", "recover_epochs", "status"):
        assert batch[key] == record[key], key
