"""Apply docs/robust-seam.md's adoption rule to a study's summary, mechanically.

    python benchmarks/adoption_rule.py S/study_summary.csv [--budgets 5 10] [--guard_rule B] [--no_fidelity]
        [--fallback VARIANT]

Prints, per round type, each variant against `defaults` and the variant the rule adopts. The guard twin of
a variant is the same settings plus the guard (`guard` for `defaults`, `distill_guard` for `distill`).
With `--guard_rule B` (the second calibration) the twin clause is off: the variant `guard` is judged as a
flag by rule B, on S/study_rows.csv beside the summary. With `--fallback VARIANT` (the seventh calibration),
a variant that differs from `defaults` only after a failed run and misses rule 2 is judged by the fallback
clause, on the same rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from harness.methods.seam import FAILED  # the statuses after which SEAM restarts
from harness.study import KEPT_DROP, RUINED_DROP

GUARD_TWIN = {"defaults": "guard", "distill": "distill_guard"}
P10_TOLERANCE, SHARE_TOLERANCE, DROP_TOLERANCE, GAIN = 0.02, 0.05, 0.01, 0.05


def figures(summary: pd.DataFrame, round_: int, variant: str, budgets: list[str]) -> pd.DataFrame:
    rows = summary[(summary["round"] == round_) & (summary["variant"] == variant)]
    rows = rows.set_index(rows["defender_per_class"].astype(str))
    missing = [b for b in budgets if b not in rows.index]
    if missing:
        raise SystemExit(f"round {round_}, variant {variant}: no summary rows for budgets {missing}")
    return rows.loc[budgets]


def no_worse(candidate: pd.DataFrame, reference: pd.DataFrame) -> bool:
    """Rule 1, at every budget."""
    return bool(
        (candidate["p10_fidelity"] >= reference["p10_fidelity"] - P10_TOLERANCE).all()
        and (candidate["share_cleaned"] >= reference["share_cleaned"] - SHARE_TOLERANCE).all()
        and (candidate["mean_acc_drop_clean"] <= reference["mean_acc_drop_clean"] + DROP_TOLERANCE).all()
    )


def better(candidate: pd.DataFrame, reference: pd.DataFrame) -> bool:
    """Rule 2, at one budget at least."""
    return bool(
        (candidate["p10_fidelity"] >= reference["p10_fidelity"] + GAIN).any()
        or (candidate["share_cleaned"] >= reference["share_cleaned"] + GAIN).any()
    )


def adopted(summary: pd.DataFrame, round_: int, budgets: list[str], guard_twins: bool = True) -> str:
    variants = sorted(summary[summary["round"] == round_]["variant"].unique())
    base = figures(summary, round_, "defaults", budgets)
    qualifying = []
    for variant in variants:
        if variant == "defaults" or (not guard_twins and variant == "guard"):
            continue
        own = figures(summary, round_, variant, budgets)
        verdict = no_worse(own, base), better(own, base)
        print(
            f"  {variant:14s} rule 1 {verdict[0]!s:5s} rule 2 {verdict[1]!s:5s}"
            f"  p10 {list(own['p10_fidelity'].round(3))} share {list(own['share_cleaned'].round(3))}"
            f"  drop {list(own['mean_acc_drop_clean'].round(3))} silent {int(own['silent_ruined'].sum())}"
        )
        if all(verdict):
            qualifying.append((-own["p10_fidelity"].iloc[0], own["mean_seconds"].mean(), variant))
    print(
        f"  {'defaults':14s}{'':24s}  p10 {list(base['p10_fidelity'].round(3))} share"
        f" {list(base['share_cleaned'].round(3))} drop {list(base['mean_acc_drop_clean'].round(3))}"
        f" silent {int(base['silent_ruined'].sum())}"
    )
    winner = min(qualifying)[2] if qualifying else "defaults"
    twin = GUARD_TWIN.get(winner) if guard_twins else None
    if twin in variants:
        own, reference = figures(summary, round_, twin, budgets), figures(summary, round_, winner, budgets)
        if no_worse(own, reference) and own["silent_ruined"].sum() < reference["silent_ruined"].sum():
            print(f"  {twin} meets rule 1 against {winner} and flags what {winner} left silent")
            winner = twin
    return winner


CAUGHT, FALSE_ALARMS, FIDELITY_TOLERANCE = 0.75, 0.25, 0.02


def guard_rule(rows: pd.DataFrame, round_: int, budgets: list[str], fidelity: bool = True) -> bool:
    """Rule B: at every budget the guard flags >= 0.75 of its ruined runs (ACC down > 10 points), <= 0.25
    of its kept ones (down <= 5), and its unflagged poisoned runs keep mean Fidelity >= defaults' - 0.02
    (not applied with `fidelity` False: rounds whose backdoors are not verified)."""
    met = True
    for budget in budgets:
        at = rows[(rows["round"] == round_) & (rows["defender_per_class"].astype(str) == budget)]
        at = at[at["acc_after"].notna()]
        guard, base = at[at["variant"] == "guard"], at[at["variant"] == "defaults"]
        drop = guard["acc_before"] - guard["acc_after"]
        flagged = guard["status"] != "ok"
        ruined, kept = drop > RUINED_DROP, drop <= KEPT_DROP
        caught = (ruined & flagged).sum() / ruined.sum() if ruined.any() else 1.0
        alarms = (kept & flagged).sum() / kept.sum() if kept.any() else 0.0
        passed = guard[~flagged & guard["poisoned"].astype(bool)]["fidelity"].mean()
        reference = base[base["poisoned"].astype(bool)]["fidelity"].mean()
        kept_fidelity = not fidelity or passed >= reference - FIDELITY_TOLERANCE
        ok = caught >= CAUGHT and alarms <= FALSE_ALARMS and kept_fidelity
        print(
            f"  guard at {budget}: caught {caught:.2f} of {int(ruined.sum())} ruined, false alarms"
            f" {alarms:.2f} of {int(kept.sum())} kept, unflagged F {passed:.3f} vs defaults {reference:.3f}:"
            f" {'met' if ok else 'not met'}"
        )
        met &= bool(ok)
    return met


def fallback_rule(rows: pd.DataFrame, round_: int, variant: str, budgets: list[str]) -> bool:
    """The fallback clause: at least one run that failed under `defaults` ends cleaned (poisoned: `ok`,
    Fidelity >= 0.85) or kept (clean: `ok`, drop <= 5 points) after the variant's retry, and no retried
    run ends `ok` with a drop of more than 10 points (silent ruined). Rule 1 is checked by the caller."""
    at = rows[(rows["round"] == round_) & rows["defender_per_class"].astype(str).isin(budgets)]
    key = ["round_name", "model_id", "defender_per_class", "seam_seed"]
    base, own = (at[at["variant"] == name].set_index(key) for name in ("defaults", variant))
    own = own.assign(drop=own["acc_before"] - own["acc_after"])
    passed = own["status"] == "ok"
    good = passed & ((own["poisoned"].astype(bool) & (own["fidelity"] >= 0.85)) | (own["drop"] <= KEPT_DROP))
    retried = own[own["runs"] > 1]
    failed = base.index[base["status"].isin(FAILED)].intersection(own.index)
    rescued = int(good.loc[failed].sum())
    silent = int(((retried["status"] == "ok") & (retried["drop"] > RUINED_DROP)).sum())
    print(
        f"  fallback {variant}: {len(failed)} runs failed under defaults, {rescued} of them cleaned or kept"
        f" after the retry; {len(retried)} retried, {silent} of them silent ruined"
    )
    return rescued >= 1 and silent == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary")
    parser.add_argument("--budgets", nargs="+", default=["5", "10"])
    parser.add_argument("--guard_rule", choices=["twin", "B"], default="twin")
    parser.add_argument("--no_fidelity", action="store_true", help="Rule B without its Fidelity condition.")
    parser.add_argument("--fallback", help="A variant judged by the fallback clause when it misses rule 2.")
    options = parser.parse_args()
    summary = pd.read_csv(options.summary)
    rows = None
    if options.guard_rule == "B" or options.fallback:
        rows = pd.read_csv(Path(options.summary).with_name("study_rows.csv"))
    for round_ in sorted(summary["round"].unique()):
        print(f"round {round_}:")
        winner = adopted(summary, round_, options.budgets, options.guard_rule == "twin")
        if winner == "defaults" and options.fallback:
            own = figures(summary, round_, options.fallback, options.budgets)
            rule_1 = no_worse(own, figures(summary, round_, "defaults", options.budgets))
            if fallback_rule(rows, round_, options.fallback, options.budgets) and rule_1:
                winner = options.fallback
        print(f"  adopted: {winner}")
        if options.guard_rule == "B":
            joins = guard_rule(rows, round_, options.budgets, not options.no_fidelity)
            print(f"  guard joins the defaults: {joins}")


if __name__ == "__main__":
    main()
