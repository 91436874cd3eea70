"""Damaged model folders through `seam-harness run`: the batch finishes with one clear row per folder.

The suite runs one folder per kind of damage (image and text rounds); `pytest tests/test_fuzz.py
--fuzz-all -s` runs the full 200 folders and prints the counts and the distinct error messages.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import FAST_SEAM, seam_harness
from fuzz_folders import IMAGE, TEXT, make_fuzz_round
from nlp_fixtures import make_sentiment_round

from harness.records import read_record

FULL_COUNTS = {"image": 130, "text": 70}


@pytest.mark.parametrize("kind", ["image", "text"])
def test_damaged_folders_each_give_one_clear_row(kind, tiny_round3, tmp_path, request):
    good = tiny_round3 if kind == "image" else make_sentiment_round(tmp_path / "good")
    mutations = IMAGE if kind == "image" else TEXT
    count = FULL_COUNTS[kind] if request.config.getoption("--fuzz-all") else len(mutations)
    made = make_fuzz_round(good, tmp_path / "fuzz", mutations, count)
    output_dir = tmp_path / "out"
    result = seam_harness(
        "run", "--round_dir", tmp_path / "fuzz", "--output_dir", output_dir, *FAST_SEAM, check=False
    )
    assert result.returncode in (0, 3) and "Traceback" not in result.stderr, result.stderr
    results = pd.read_csv(output_dir / "results.csv").set_index("model_id")
    assert sorted(results.index) == sorted(made)  # exactly one row per folder
    assert not list(output_dir.rglob(".tmp-*"))
    assert all(read_record(p) is not None for p in (output_dir / "records").glob("*.json"))
    errors = results[results["status"] == "error"]
    unclear = {
        made[model_id]: message
        for model_id, message in errors["error"].items()
        if "\n" in message or "Traceback" in message or str(tmp_path / "fuzz") not in message
    }
    assert unclear == {}, "error messages must name the file and the cause in one line"
    messages = errors["error"].map(lambda m: re.sub(r"id-\d+|broken-id-\d+\.pt", "id-N", m))
    print(f"\n{kind}: {len(made)} folders, {len(results)} rows, {len(errors)} errors")
    print(results["status"].value_counts().to_string())
    for mutation, message in sorted(set(zip(errors.index.map(made), messages, strict=True))):
        print(f"  {mutation}: {message}")
