"""One model, start to finish: load the Task, measure, run each method, measure again, make the records.

The batch scheduler and the per-model entrypoints all call `process_jobs` (or `process_model`, its
one-method form), so the same model and seed give the same numbers whichever way it is run.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

import adapters
from adapters.common import NamedFiles
from harness import __version__, methods
from harness.config import EvalConfig, SeamConfig
from harness.ensemble import ProbabilityAverage
from harness.files import OutputError
from harness.kernels import kernels_in_effect
from harness.metrics import (
    accuracy,
    accuracy_counted,
    asr_counted,
    attack_success_rate,
    defense_effectiveness_rate,
    fidelity,
    fidelity_interval,
    wilson_interval,
)
from harness.model_io import ModelLoadError, save_model
from harness.task import LabelledData, Task
from harness.training import NonFiniteLoss, predict


def evaluate(model: nn.Module, task: Task) -> dict:
    """ACC on the clean evaluation data; ASR and robust accuracy (RA) on the triggered evaluation data.

    With a background class, ACC leaves its positions out and `acc_all_labels` counts them too.
    """
    clean_predictions = predict(model, task.eval_clean.inputs, task.forward)
    result = {
        "acc": accuracy(clean_predictions, task.eval_clean.labels, task.background_class),
        "acc_n": int(accuracy_counted(task.eval_clean.labels, task.background_class).sum()),
    }
    if task.background_class is not None:
        result["acc_all_labels"] = accuracy(clean_predictions, task.eval_clean.labels)
    triggered = task.eval_triggered
    if triggered is None:
        return result | {"asr": math.nan, "asr_n": 0, "ra": math.nan}
    predictions = predict(model, triggered.inputs, task.forward)
    return result | {
        "asr": attack_success_rate(predictions, triggered.labels, triggered.targets),
        "asr_n": int(asr_counted(triggered.labels, triggered.targets).sum()),
        "ra": accuracy(predictions, triggered.labels),
    }


def intervals(before: dict, after: dict) -> dict:
    """How many items each figure rests on, and its 95 % interval (README, "Evaluation protocol")."""
    fields = {"acc_n": before["acc_n"], "asr_n": before["asr_n"]}
    for stage, figures in (("before", before), ("after", after)):
        for metric in ("acc", "asr"):
            low, high = wilson_interval(figures[metric], figures[f"{metric}_n"])
            fields |= {f"{metric}_{stage}_low": low, f"{metric}_{stage}_high": high}
    low, high = fidelity_interval(before["acc"], after["acc"], after["asr"], before["acc_n"], after["asr_n"])
    return fields | {"fidelity_low": low, "fidelity_high": high}


def all_labels_accuracy(before: dict, after: dict) -> dict:
    """Record fields for tasks with a background class (NER: accuracy over all tokens, O included)."""
    if "acc_all_labels" not in before:
        return {}
    return {
        "acc_all_labels_before": before["acc_all_labels"],
        "acc_all_labels_after": after["acc_all_labels"],
    }


NO_DRIFT_CHECK = {"drift_n": 0, "drift_acc_before": math.nan, "drift_acc_after": math.nan,
                  "drift_agreement": math.nan, "drift_agreement_members_min": math.nan,
                  "drifted": False}  # fmt: skip


def drift_predictions(task: Task, model: nn.Module) -> torch.Tensor | None:
    """`model`'s predicted classes on the drift-check inputs (None if the task has none)."""
    return None if task.drift_check is None else predict(model, task.drift_check.inputs, task.forward)


def drift_check(
    task: Task,
    original: nn.Module,
    mitigated: nn.Module,
    min_agreement: float = 0.0,
    original_predictions: torch.Tensor | None = None,
    check_members: bool = False,
) -> dict:
    """The blind drift check: accuracy before and after on `task.drift_check` (inputs made from the
    defender's data that no method trains on) and how often the two models agree there. `drifted`, as
    `task.drift_flag` says: the accuracy after fell below the 95 % Wilson interval of the accuracy
    before ("accuracy_or_agreement" only), or the two models agree on less than `min_agreement` of the
    inputs. When `mitigated` averages several models (SEAM's `ensemble`), the lowest agreement of a
    member with the original is reported too, and with `check_members` it counts as the agreement does:
    an average can agree more with the original than any of its members. `original_predictions`:
    `drift_predictions(task, original)` if already computed (a model's jobs share them)."""
    check = task.drift_check
    if check is None:
        return dict(NO_DRIFT_CHECK)
    before = original_predictions if original_predictions is not None else drift_predictions(task, original)
    counted = accuracy_counted(check.labels, task.background_class)

    def agreement_with_original(model: nn.Module) -> tuple[torch.Tensor, float]:
        after = predict(model, check.inputs, task.forward)
        return after, float((before == after)[counted].float().mean())

    after, agreement = agreement_with_original(mitigated)
    members_min = math.nan
    if isinstance(mitigated, ProbabilityAverage):
        members_min = min(agreement_with_original(m)[1] for m in mitigated.members)
    acc_before = accuracy(before, check.labels, task.background_class)
    acc_after = accuracy(after, check.labels, task.background_class)
    low, _ = wilson_interval(acc_before, int(counted.sum()))
    lost_accuracy = task.drift_flag == "accuracy_or_agreement" and acc_after < low
    lowest = min(agreement, members_min) if check_members and not math.isnan(members_min) else agreement
    disagrees = task.drift_flag != "off" and lowest < min_agreement
    return {
        "drift_n": int(counted.sum()),
        "drift_acc_before": acc_before,
        "drift_acc_after": acc_after,
        "drift_agreement": agreement,
        "drift_agreement_members_min": members_min,
        "drifted": bool(lost_accuracy or disagrees),
    }


def status_after_drift_check(status: str, drift: dict) -> str:
    """A result that passed the method's own checks but failed the drift check is `drifted`."""
    return "drifted" if status == "ok" and drift["drifted"] else status


def cross_fit(task: Task, run_on) -> tuple[dict, dict, list[str]]:
    """(before, after, fold statuses): the method on each part of the clean-example split, measured on
    the other. ACC is pooled over both parts (each example counted once), ASR and RA averaged over the two
    models (they read the same triggered examples, so asr_n stays that set's size)."""
    parts = (task.defender, task.eval_clean)
    befores, afters, statuses = [], [], []
    for trained, held in (parts, parts[::-1]):
        measured_on = dataclasses.replace(task, eval_clean=held)
        result = run_on(trained)
        statuses.append(result.status)
        befores.append(evaluate(task.model, measured_on))
        afters.append(
            evaluate(result.model, measured_on) if result.status != methods.NOT_APPLICABLE else None
        )
    after = pooled(afters) if None not in afters else dict.fromkeys(befores[0], math.nan)
    return pooled(befores), after, statuses


def pooled(figures: list[dict]) -> dict:
    total = sum(f["acc_n"] for f in figures)
    result = {"acc_n": total, "asr_n": figures[0]["asr_n"]}
    for metric in ("acc", "acc_all_labels"):
        if metric in figures[0]:
            result[metric] = sum(f[metric] * f["acc_n"] for f in figures) / total if total else math.nan
    for metric in ("asr", "ra"):
        result[metric] = sum(f[metric] for f in figures) / len(figures)
    return result


def joined(first: LabelledData, second: LabelledData) -> LabelledData:
    names = first.names + second.names if first.names and second.names else []
    return LabelledData(
        torch.cat([first.inputs, second.inputs]), torch.cat([first.labels, second.labels]), names
    )


def error_message(model_dir: Path, error: BaseException) -> str:
    """One line naming the file (or at least the model folder) and the cause."""
    message = " ".join(f"{type(error).__name__}: {error}".split())
    if not isinstance(error, adapters.RoundFormatError | ModelLoadError | NonFiniteLoss):
        frame = traceback.extract_tb(error.__traceback__)[-1]  # where an unexpected error came from
        message += f" (at {Path(frame.filename).name}:{frame.lineno})"
    return message if str(model_dir) in message else f"{model_dir}: {message}"


def check_outputs(task: Task, model_file: Path) -> None:
    """The model must give a score for every class its examples and the round name."""
    with torch.no_grad():
        outputs = task.forward(task.model.eval(), task.defender.inputs[:1]).shape[-1]
    labels = [task.defender.labels, task.eval_clean.labels]
    if task.eval_triggered is not None:
        labels += [task.eval_triggered.labels, task.eval_triggered.targets]
    largest = max(int(part.max()) for part in labels if part.numel())
    if largest >= outputs or task.num_classes > outputs:
        raise adapters.RoundFormatError(
            f"{model_file}: the model gives {outputs} class scores, but its examples have labels up to"
            f" {largest} and the round {task.num_classes} classes"
        )


@dataclass
class Job:
    """One method at one defender budget, to run on a model; its mitigated model goes to `save_path`."""

    method: str = "seam"
    config: object = field(default_factory=SeamConfig)
    defender_per_class: int | None = None  # None: all the folder's clean examples
    save_path: Path | None = None


def defender_subset(data: LabelledData, per_class: int | None, seed: int) -> LabelledData:
    """At most `per_class` examples of each class, drawn with a fixed order per class, so that a smaller
    budget's examples are among a larger one's. None keeps everything."""
    if per_class is None:
        return data
    data.require_one_label_per_example("--defender_per_class")
    if per_class < 1:
        raise ValueError(f"--defender_per_class must be at least 1, got {per_class}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    chosen = torch.cat([order[data.labels[order] == label][:per_class] for label in data.labels.unique()])
    chosen = chosen.sort().values
    names = [data.names[i] for i in chosen.tolist()] if data.names else []
    return LabelledData(data.inputs[chosen], data.labels[chosen], names)


def job_fields(job: Job) -> dict:
    return {"method": job.method, "defender_per_class": job.defender_per_class}


def failure_record(
    model_dir: Path,
    message: str,
    seconds: float,
    trust_pickles: bool = False,
    status: str = "error",
    job: Job | None = None,
) -> dict:
    """The record of a model without a result (status error or timeout): what its folder says, and why."""
    return {
        **adapters.folder_info(model_dir),
        "model_id": Path(model_dir).name,
        **job_fields(job or Job()),
        "status": status,
        "error": message,
        "model_dir": str(Path(model_dir).resolve()),
        "total_seconds": seconds,
        "trust_pickles": trust_pickles,
    }


def process_model(
    model_dir: Path,
    config: object,
    eval_config: EvalConfig,
    save_path: Path | None = None,
    model_file: Path | None = None,
    examples_dir: Path | None = None,
    named: NamedFiles | None = None,
    trust_pickles: bool = False,
    method: str = "seam",
    defender_per_class: int | None = None,
) -> dict:
    """One method (SEAM by default) on one model: its record (an error record if anything fails)."""
    job = Job(method, config, defender_per_class, save_path)
    return next(process_jobs(model_dir, [job], eval_config, model_file, examples_dir, named, trust_pickles))


def process_jobs(
    model_dir: Path,
    jobs: list[Job],
    eval_config: EvalConfig,
    model_file: Path | None = None,
    examples_dir: Path | None = None,
    named: NamedFiles | None = None,
    trust_pickles: bool = False,
) -> Iterator[dict]:
    """Load and measure one model once, then run every job on it; yields one record per job as it ends.

    trust_pickles: load the model's files with the plain unpickler; the record says so.
    """
    model_dir = Path(model_dir)
    started = time.perf_counter()
    try:
        task = adapters.load_task(
            model_dir,
            eval_config.holdout_fraction,
            eval_config.holdout_seed,
            model_file,
            examples_dir,
            named,
            trust_pickles,
        )
        load_seconds = time.perf_counter() - started
        check_outputs(task, model_file or model_dir / "model.pt")
        eval_start = time.perf_counter()
        before = evaluate(task.model, task)
        drift_before = drift_predictions(task, task.model)
        eval_before_seconds = time.perf_counter() - eval_start
    except OutputError:  # the output, not the model, is at fault: stop the batch (a rerun redoes it)
        raise
    except Exception as error:  # one bad model must never stop a batch
        message = error_message(model_dir, error)
        for job in jobs:
            yield failure_record(model_dir, message, time.perf_counter() - started, trust_pickles, job=job)
        return
    shared = {"load_seconds": load_seconds, "eval_before_seconds": eval_before_seconds}
    for job in jobs:
        yield run_job(task, job, before, shared, eval_config, model_dir, trust_pickles, drift_before)


def run_job(
    task: Task,
    job: Job,
    before: dict,
    shared: dict,
    eval_config: EvalConfig,
    model_dir: Path,
    trust_pickles: bool,
    drift_before: torch.Tensor | None = None,
) -> dict:
    """One job on a loaded task: the method on the (possibly cut) defender data, measured after; with
    `eval_config.cross_fit` on a folder without test data, measured by cross-fitting (`cross_fit`).
    `drift_before`: the original model's predictions on the drift-check inputs (`drift_predictions`)."""
    started = time.perf_counter()
    try:
        method = methods.method(job.method)
        fold_statuses, eval_data = [], task.eval_data

        def run_on(examples: LabelledData) -> tuple[LabelledData, methods.MethodResult]:
            """The method on the job's budget of `examples`: (the examples it got, its result)."""
            defender = defender_subset(examples, job.defender_per_class, eval_config.holdout_seed)
            return defender, method.run(dataclasses.replace(task, defender=defender), job.config)

        if eval_config.cross_fit and task.eval_data.startswith("clean_example_holdout"):
            before, cross_fitted, fold_statuses = cross_fit(task, lambda part: run_on(part)[1])
            task = dataclasses.replace(task, defender=joined(task.defender, task.eval_clean))
            eval_data = task.eval_data.replace("clean_example_holdout", "cross_fit", 1)
        defender, result = run_on(task.defender)
        method_seconds = time.perf_counter() - started

        eval_start = time.perf_counter()
        applies = result.status != methods.NOT_APPLICABLE
        if not applies:
            after = dict.fromkeys(before, math.nan)
        else:  # cross-fitted: the folds' figures (the saved model has seen every clean example)
            after = cross_fitted if fold_statuses else evaluate(result.model, task)
        drift = (
            drift_check(
                task,
                task.model,
                result.model,
                eval_config.drift_min_agreement,
                drift_before,
                eval_config.drift_check_members,
            )
            if applies
            else dict(NO_DRIFT_CHECK)
        )
        eval_after_seconds = time.perf_counter() - eval_start
        status = status_after_drift_check(result.status, drift)

        saved, save_start = None, time.perf_counter()
        if job.save_path is not None and status == "ok":
            save_model(result.model, job.save_path)
            saved = str(job.save_path)
        save_seconds = time.perf_counter() - save_start
    except OutputError:
        raise
    except Exception as error:
        message = error_message(model_dir, error)
        seconds = sum(shared.values()) + time.perf_counter() - started
        return failure_record(model_dir, message, seconds, trust_pickles, job=job)

    eval_seconds = shared["eval_before_seconds"] + eval_after_seconds
    total = shared["load_seconds"] + eval_seconds + method_seconds + save_seconds
    return {
        "model_id": model_dir.name,
        **task.info,
        "num_classes": task.num_classes,
        **job_fields(job),
        "oracle": method.reads_evaluation,
        "acc_before": before["acc"],
        "asr_before": before["asr"],
        "acc_after": after["acc"],
        "asr_after": after["asr"],
        "fidelity": fidelity(before["acc"], after["acc"], after["asr"]),
        **intervals(before, after),
        "der": defense_effectiveness_rate(before["acc"], after["acc"], before["asr"], after["asr"]),
        "ra_before": before["ra"],
        "ra_after": after["ra"],
        **all_labels_accuracy(before, after),
        **drift,
        **{f"{phase}_seconds": seconds for phase, seconds in result.seconds.items()},
        "method_seconds": method_seconds,
        "eval_seconds": eval_seconds,
        **shared,
        "eval_after_seconds": eval_after_seconds,
        "save_seconds": save_seconds,
        "total_seconds": total,
        "eval_data": eval_data,
        "fold_statuses": fold_statuses,
        "status": status,
        "error": "",
        **result.figures,
        "defender_examples": len(defender),
        "eval_clean_examples": len(task.eval_clean),
        "eval_triggered_examples": len(task.eval_triggered) if task.eval_triggered is not None else 0,
        "model_dir": str(model_dir.resolve()),
        "saved_model": saved or "",
        "method_config": dataclasses.asdict(job.config),
        "trust_pickles": trust_pickles,
        "torch_threads": torch.get_num_threads(),
        "cpu_kernels": kernels_in_effect(),
        "harness_version": __version__,
    }
