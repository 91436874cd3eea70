"""The robustness study: variants x seeds x budgets over a real round, pooled tables, resume."""

import pandas as pd

from tests.conftest import seam_harness

QUICK = (
    "{forget_max_epochs: 3, forget_epochs_below_alpha: 1, recover_max_epochs: 3, "
    "recover_epochs_after_goal: 0, restarts: 0, restart_policy: on_failure"
)


def test_study_runs_every_variant_seed_and_budget_then_resumes(tiny_round3, tmp_path):
    variants = tmp_path / "variants.yaml"
    variants.write_text(f"plain: {QUICK}}}\nguarded: {QUICK}, guard_fraction: 0.34, restarts: 1}}\n")
    out = tmp_path / "study"
    args = ["study", "--rounds", f"[{tiny_round3}]", "--output_dir", out, "--variants", variants]
    first = seam_harness(*args, "--budgets", "[2, null]", "--seeds", "[0, 1]")
    assert "tables:" in first.stdout

    rows = pd.read_csv(out / "study_rows.csv")
    models = len(list(tiny_round3.rglob("id-*/model.pt")))
    assert len(rows) == 2 * 2 * 2 * models  # variants x seeds x budgets x models
    assert set(rows["variant"]) == {"plain", "guarded"} and set(rows["seam_seed"]) == {0, 1}
    assert set(rows["defender_per_class"].astype(str)) == {"2", "all"}
    guarded = rows[rows["variant"] == "guarded"]
    assert (guarded["guard_n"] > 0).all() and (rows[rows["variant"] == "plain"]["guard_n"] == 0).all()
    # the round YAML's eval settings apply: round 3 flags drift below 0.80 agreement
    assert (rows["drifted"] == (rows["drift_agreement"] < 0.80)).all()
    assert not (rows["status"] == "ok")[rows["drift_agreement"] < 0.80].any()
    # the seed reached SEAM (restarts count on from it)
    assert set(guarded["seed_kept"]) <= {0, 1, 2}

    summary = pd.read_csv(out / "study_summary.csv")
    assert len(summary) == 2 * 2  # variants x budgets, one round type
    poisoned = rows[
        rows["poisoned"].astype(bool)
        & (rows["variant"] == "plain")
        & (rows["defender_per_class"].astype(str) == "2")
    ]  # noqa: E712
    line = summary[(summary["variant"] == "plain") & (summary["defender_per_class"].astype(str) == "2")].iloc[
        0
    ]
    assert line["poisoned_runs"] == len(poisoned)
    assert abs(line["mean_fidelity"] - poisoned["fidelity"].mean()) < 1e-9
    assert line["min_fidelity"] == poisoned["fidelity"].min()
    assert line["share_high_fidelity"] == (poisoned["fidelity"] >= 0.85).mean()
    assert line["share_cleaned"] == ((poisoned["fidelity"] >= 0.85) & (poisoned["status"] == "ok")).mean()
    group = rows[(rows["variant"] == "plain") & (rows["defender_per_class"].astype(str) == "2")]
    drop = group["acc_before"] - group["acc_after"]
    assert line["ruined"] == (drop > 0.1).sum() and line["kept"] == (drop <= 0.05).sum()
    assert line["ruined_flagged"] == ((drop > 0.1) & (group["status"] != "ok")).sum()
    assert (out / "fidelity.png").stat().st_size > 0

    # a second call computes nothing new and rebuilds the same tables
    records = sorted((out / "runs").rglob("records/*.json"))
    stamps = [r.stat().st_mtime_ns for r in records]
    seam_harness(*args, "--budgets", "[2, null]", "--seeds", "[0, 1]")
    assert [r.stat().st_mtime_ns for r in records] == stamps
    assert len(pd.read_csv(out / "study_rows.csv")) == len(rows)


def test_each_round_gets_its_own_yaml_eval_settings():
    from harness.config import round_eval_config

    assert round_eval_config(3).drift_min_agreement == round_eval_config(4).drift_min_agreement == 0.80
    assert round_eval_config(6).drift_min_agreement == 0.75
    overridden = round_eval_config(3, drift_min_agreement=0.5, holdout_seed=None)
    assert overridden.drift_min_agreement == 0.5 and overridden.holdout_seed == 0


def test_a_backdoor_at_exactly_the_threshold_counts_as_gone():
    import numpy as np

    from harness.study import summarise_study

    # ASR 4/40 as a float32 share is 0.10000000149: gone at the threshold 0.1, as the summary says
    group = pd.DataFrame(
        {
            "round_name": "r",
            "seam_seed": 0,
            "status": "ok",
            "poisoned": [True, True],
            "fidelity": [0.9, 0.9],
            "acc_before": [1.0, 1.0],
            "acc_after": [0.95, 0.95],
            "asr_after": [float(np.float32(4) / np.float32(40)), float(np.float32(5) / np.float32(40))],
            "method_seconds": 1.0,
        }
    )
    assert summarise_study(group)["share_asr_gone"] == 0.5
