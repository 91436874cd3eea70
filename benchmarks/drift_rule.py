"""The drift-agreement rules of docs/robust-seam.md, applied mechanically to study rows.

    python benchmarks/drift_rule.py choose S1/study_rows.csv [S2/...] --rule midpoint|kept_share
    python benchmarks/drift_rule.py check S/study_rows.csv --threshold 0.75
    python benchmarks/drift_rule.py members S1/study_rows.csv [S2/...] --threshold 0.80

`choose` pools the rows' kept runs (ACC drop <= KEPT_DROP) and ruined runs (drop > RUINED_DROP) and prints
the threshold τ the rule gives and whether it is adopted:
- `midpoint` (text): adopted if every kept run agrees more than every ruined run; τ is the midpoint of the
  lowest kept and the highest ruined agreement, rounded down to 0.05;
- `kept_share` (images): τ is the largest multiple of 0.05 below which at most 10 % of the kept runs fall;
  adopted if at least 75 % of the ruined runs fall below it.
`check` prints, per round (`round_name`) and budget, how many ruined and kept runs fall below a given τ.
`members` (rule C, the twelfth calibration): the rows of averaged runs that are `ok` but have a member
agreeing less than τ (`drift_agreement_members_min`), which checking the members would newly flag; bad
ones are poisoned rows below Fidelity CLEANED_FIDELITY and clean rows that lost more than KEPT_DROP.
Adopted if it newly flags at least 2 bad rows and at most half as many good ones.
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from harness.records import CLEANED_FIDELITY
from harness.study import KEPT_DROP, RUINED_DROP

KEPT_FLAGGED_AT_MOST, RUINED_FLAGGED_AT_LEAST = 0.10, 0.75


def read_rows(paths: list[str]) -> pd.DataFrame:
    rows = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    rows = rows[rows["drift_n"].fillna(0) > 0].copy()
    rows["drop"] = rows["acc_before"] - rows["acc_after"]
    return rows


def floor_to(value: float, step: float = 0.05) -> float:
    return math.floor(round(value / step, 6)) * step


def choose(rows: pd.DataFrame, rule: str) -> tuple[float | None, str]:
    kept = rows.loc[rows["drop"] <= KEPT_DROP, "drift_agreement"]
    ruined = rows.loc[rows["drop"] > RUINED_DROP, "drift_agreement"]
    figures = f"kept runs {len(kept)} (lowest agreement {kept.min():.3f}), ruined runs {len(ruined)}"
    figures += f" (highest {ruined.max():.3f})" if len(ruined) else ""
    if rule == "midpoint":
        if len(ruined) == 0 or kept.min() <= ruined.max():
            return None, figures + ": they overlap or nothing is ruined; no agreement flag"
        tau = floor_to((kept.min() + ruined.max()) / 2)
        return tau, figures + f": τ = {tau:.2f}"
    candidates = [t / 100 for t in range(0, 101, 5) if (kept < t / 100).mean() <= KEPT_FLAGGED_AT_MOST]
    tau = max(candidates)
    caught = float((ruined < tau).mean()) if len(ruined) else math.nan
    verdict = "adopted" if caught >= RUINED_FLAGGED_AT_LEAST else "not adopted"
    kept_below = float((kept < tau).mean())
    return (tau if verdict == "adopted" else None), (
        figures + f": τ = {tau:.2f} flags {kept_below:.2f} of kept and {caught:.2f} of ruined runs, {verdict}"
    )


def check(rows: pd.DataFrame, threshold: float) -> pd.DataFrame:
    rows = rows.assign(below=rows["drift_agreement"] < threshold)
    keys = [k for k in ("round_name", "defender_per_class") if k in rows]
    out = []
    for key, part in rows.groupby(keys, dropna=False):
        ruined, kept = part[part["drop"] > RUINED_DROP], part[part["drop"] <= KEPT_DROP]
        out.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                "runs": len(part),
                "ruined": len(ruined),
                "ruined_below": int(ruined["below"].sum()),
                "kept": len(kept),
                "kept_below": int(kept["below"].sum()),
            }
        )
    return pd.DataFrame(out)


def members(rows: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, str]:
    """Rule C: (the rows newly flagged, the verdict)."""
    poisoned = rows["poisoned"].astype(str) == "True"
    bad = (poisoned & (rows["fidelity"] < CLEANED_FIDELITY)) | (~poisoned & (rows["drop"] > KEPT_DROP))
    rows = rows.assign(bad=bad)
    newly = rows[(rows["status"] == "ok") & (rows["drift_agreement_members_min"] < threshold)]
    n_bad, n_good = int(newly["bad"].sum()), int((~newly["bad"]).sum())
    adopted = n_bad >= 2 and n_good <= n_bad / 2
    verdict = (
        f"{len(rows)} rows ({int(rows['bad'].sum())} bad); at τ = {threshold:.2f} the members' check newly"
        f" flags {n_bad} bad and {n_good} good rows: {'adopted' if adopted else 'not adopted'}"
    )
    return newly, verdict


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["choose", "check", "members"])
    parser.add_argument("rows", nargs="+", help="study_rows.csv files")
    parser.add_argument("--rule", choices=["midpoint", "kept_share"], default="midpoint")
    parser.add_argument("--threshold", type=float, default=0.75)
    args = parser.parse_args()
    rows = read_rows(args.rows)
    if args.mode == "choose":
        print(choose(rows, args.rule)[1])
    elif args.mode == "members":
        newly, verdict = members(rows, args.threshold)
        columns = ["round_name", "model_id", "defender_per_class", "seam_seed", "poisoned", "fidelity"]
        columns += ["asr_after", "drop", "drift_agreement", "drift_agreement_members_min", "bad"]
        print(newly[columns].to_string(index=False) if len(newly) else "no row newly flagged")
        print(verdict)
    else:
        print(check(rows, args.threshold).to_string(index=False))


if __name__ == "__main__":
    main()
