"""`seam-harness` command line: a thin jsonargparse layer over plain functions.

Heavy imports (torch, adapters) happen inside the commands, so `--help` answers at once.
"""

from __future__ import annotations

import functools
import os
import sys
import typing
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from adapters.common import NamedFiles
from adapters.synthetic.specs import ImageRoundSpec, NerRoundSpec, SentimentRoundSpec
from harness.config import MODEL_THREADS, EvalConfig, SeamConfig, round_config_path
from harness.slurm import SlurmOptions


class UserError(Exception):
    """Bad input from the user: printed as one clear line, without a traceback."""


# Exit statuses of `run` (README): 0 every model has a result row; 1 bad input or an output that cannot
# be written (one-line error); 3 at least one model's row is an error or a timeout, or it has no record.
EXIT_MODEL_ERRORS = 3


def outcome_line(final, n_models: int) -> str:
    """The last line of `run`: how many models (with several jobs: results) were ok, flagged, errors,
    timeouts (and missing, if any)."""
    from harness.records import FLAGGED

    flagged = sum(final[s] for s in FLAGGED)
    total = sum(final.values())
    counted = f"models: {total}" if total == n_models else f"results: {total} ({n_models} models)"
    line = f"{counted}: {final['ok']} ok, {flagged} flagged ({', '.join(FLAGGED)})"
    line += f", {final['error']} errors, {final['timeout']} timeouts"
    return line + (f", {final['missing']} without a record" if final["missing"] else "")


def make_round_command(
    spec: ImageRoundSpec | SentimentRoundSpec | NerRoundSpec, output_dir: Path, n_jobs: int
) -> None:
    if isinstance(spec, SentimentRoundSpec) and (spec.corpus or spec.pretrained_embedding):
        from adapters.synthetic.review_rounds import make_round
    elif isinstance(spec, SentimentRoundSpec):
        from adapters.synthetic.sentiment_rounds import make_round
    elif isinstance(spec, NerRoundSpec):
        from adapters.synthetic.ner_rounds import make_round
    else:
        from adapters.synthetic.image_rounds import make_round

    from adapters.synthetic.common import VerificationError

    try:
        models = make_round(spec, output_dir, n_jobs=n_jobs)
    except VerificationError as error:
        raise UserError(
            f"{error}. The model folders finished so far are kept in {output_dir}; the same command"
            " fails the same way (it is deterministic), so try another --seed or looser targets"
            " (min_asr, max_attempts, max_trigger_draws)."
        ) from None
    print(f"round {spec.round}: {len(models)} models in {output_dir}")


def method_jobs(options: Namespace) -> list:
    """One job per (budget, method) from --methods, --defender_per_class and each method's settings."""
    from harness.methods import method, sections
    from harness.pipeline import Job

    configs = {section: cls(**options[section]) for section, cls in sections().items()}
    for config in configs.values():
        config.device = concrete_device(options.device or config.device)
    names = list(dict.fromkeys(options.methods))
    if not names:
        raise UserError("--methods is empty: name at least one method")
    chosen = [method(name) for name in names]
    budgets = options.defender_per_class or [None]
    return [Job(m.name, configs[m.section], budget) for budget in budgets for m in chosen]


def concrete_device(name: str) -> str:
    """ "auto" made concrete, so the records name the device really used."""
    return auto_device() if name == "auto" else name


@functools.cache  # said once on stderr per command
def auto_device() -> str:
    from harness.training import resolve_device

    device = str(resolve_device("auto"))
    print(f"seam-harness: device auto: using {device}", file=sys.stderr)
    return device


def run_command(
    round_dir: Path,
    output_dir: Path,
    jobs: list,
    eval: EvalConfig,
    n_jobs: int,
    save_models: bool,
    retry_errors: bool,
    shard_index: int | None,
    num_shards: int | None,
    aggregate_tables: bool = True,
    trust_pickles: bool = False,
    model_timeout_s: float | None = None,
    threads: int = MODEL_THREADS,
) -> None:
    from adapters import detect_round
    from harness.records import aggregate
    from harness.scheduler import run_batch

    round_number = detect_round(round_dir)
    shard_index, num_shards = resolve_shard(shard_index, num_shards)
    outcome = run_batch(
        round_dir,
        output_dir,
        jobs,
        eval,
        n_jobs,
        save_models,
        retry_errors,
        shard_index,
        num_shards,
        round_number,
        trust_pickles,
        model_timeout_s,
        threads,
    )
    done = ", ".join(f"{count} {status}" for status, count in sorted(outcome.this_call.items()) if count)
    print(f"done: {done}")
    if aggregate_tables:
        summary = aggregate(output_dir)
        print_summary(summary, output_dir)
        print_few_examples_warning(summary)
    print(outcome_line(outcome.final, outcome.n_models))
    if outcome.final["error"] or outcome.final["timeout"] or outcome.final["missing"]:
        sys.exit(EXIT_MODEL_ERRORS)


def model_command(
    model_filepath: Path,
    result_filepath: Path,
    scratch_dirpath: Path,
    examples_dirpath: Path,
    output_dirpath: Path | None,
    jobs: list,
    eval: EvalConfig,
    named: NamedFiles | None = None,
    trust_pickles: bool = False,
) -> None:
    """One model, TrojAI container style: config.json beside the model, examples where the flag says.

    One job: the record is the result file and the model output_dirpath/model.pt. Several: the result
    file holds a list of records and each model goes to output_dirpath/<model id>.<method>[...]/model.pt.
    """
    import dataclasses
    import json

    from harness.pipeline import process_jobs
    from harness.records import key_of, record_key, write_json

    scratch_dirpath.mkdir(parents=True, exist_ok=True)
    output_dirpath = output_dirpath or scratch_dirpath / "mitigated"
    model_id = model_filepath.parent.name
    for i, job in enumerate(jobs):
        folder = (
            output_dirpath
            if len(jobs) == 1
            else output_dirpath / record_key(model_id, job.method, job.defender_per_class)
        )
        jobs[i] = dataclasses.replace(job, save_path=folder / "model.pt")
    records = list(
        process_jobs(
            model_filepath.parent, jobs, eval, model_filepath, examples_dirpath, named, trust_pickles
        )
    )
    write_json(result_filepath, records[0] if len(records) == 1 else records)
    shown = ("status", "acc_before", "acc_after", "asr_before", "asr_after", "fidelity", "saved_model")
    for record in records:
        print(
            json.dumps(
                {"model_id": record["model_id"], "job": key_of(record), **{k: record.get(k) for k in shown}}
            )
        )
    errors = [record["error"] for record in records if record["status"] == "error"]
    if errors:
        raise UserError(errors[0])


def resolve_shard(shard_index: int | None, num_shards: int | None) -> tuple[int, int]:
    """Flags win; a missing one is taken from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set."""
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        num_shards = int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    if shard_index is None and num_shards is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        shard_index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    return shard_index or 0, num_shards or 1


def slurm_command(round_dir: Path, output_dir: Path, options: SlurmOptions, submit_jobs: bool) -> None:
    from harness.slurm import submit, submit_commands, write_scripts

    if not Path(round_dir).is_dir():
        raise UserError(f"{round_dir}: no such round directory")
    array_path, aggregate_path = write_scripts(options, round_dir, output_dir)
    print(f"wrote {array_path}\nwrote {aggregate_path}")
    if not submit_jobs:
        print("submit with:\n" + submit_commands(array_path, aggregate_path))
        return
    try:
        array_id, aggregate_id = submit(array_path, aggregate_path)
    except RuntimeError as error:
        raise UserError(str(error)) from None
    print(f"submitted array job {array_id} ({options.num_shards} tasks) and aggregation job {aggregate_id}")


def mitigation_seam_config(
    model_filepath: Path,
    metaparameters: Path | None,
    schema: Path | None,
    batch_size: int | None,
    device: str,
) -> SeamConfig:
    """The model's round YAML, then the metaparameters file, then --batch_size and --device."""
    from adapters import model_round
    from harness.config import round_seam_config
    from harness.mitigation import read_metaparameters

    settings = read_metaparameters(metaparameters, schema)
    return round_seam_config(
        model_round(model_filepath.parent), **{**settings, "batch_size": batch_size, "device": device}
    )


def mitigate_command(
    model_filepath: Path,
    dataset_dirpath: Path,
    output_dirpath: Path,
    model_output_name: str,
    seam_config: SeamConfig,
) -> None:
    import json

    from harness.mitigation import mitigate

    summary = mitigate(model_filepath, dataset_dirpath, output_dirpath / model_output_name, seam_config)
    print(json.dumps(summary))
    if summary["saved_model"] is None:
        raise UserError(f"SEAM ended with status {summary['status']}: no mitigated model was saved")


def test_command(
    model_filepath: Path, dataset_dirpath: Path, output_dirpath: Path, batch_size: int, device: str
):
    from harness.mitigation import test
    from harness.training import resolve_device

    path = test(model_filepath, dataset_dirpath, output_dirpath, batch_size, str(resolve_device(device)))
    print(f"logits for the test split: {path}")


def compare_command(output_dir: Path) -> None:
    from harness.compare import compare

    for path in compare(output_dir):
        print(f"wrote {path}")


def aggregate_command(output_dir: Path) -> None:
    from harness.records import aggregate

    print_summary(aggregate(output_dir), output_dir)


def print_summary(summary, output_dir: Path) -> None:
    columns = [
        "round", "method", "defender_per_class", "n_models", "n_poisoned", "n_clean", "n_errors", "n_not_ok",
        "mean_fidelity",
        "min_fidelity", "mean_asr_before", "mean_asr_after", "mean_acc_drop_clean", "mean_seconds",
    ]  # fmt: skip
    overall = summary[summary["group_by"] == "all"][columns]
    print(overall.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"tables: {Path(output_dir) / 'results.csv'}, {Path(output_dir) / 'summary.csv'}")


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def add_threads_argument(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=MODEL_THREADS,
        help=f"torch threads per model (default {MODEL_THREADS}, whatever the cores, so a model's result does"
        " not depend on the machine; other counts change float sums, and so the result).",
    )


TRUST = (
    "Load model, embedding and tokenizer pickles with the plain unpickler, which runs any code they name"
    " (default: an allowlist). Only for files you trust; the row records it."
)


def print_few_examples_warning(summary) -> None:
    from harness.records import FEW_EXAMPLES

    overall = summary[summary["group_by"] == "all"]
    few = overall["n_few_examples"].sum()
    if few > 0:
        print(
            f"warning: for {int(few)} models ACC or ASR rests on fewer than {FEW_EXAMPLES} examples"
            f" (as few as {int(overall['min_examples'].min())}); see their 95 % intervals in results.csv"
            " (acc_*_low/high, asr_*_low/high, fidelity_low/high)"
        )


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="seam-harness", description="SEAM backdoor removal over TrojAI-style rounds."
    )
    commands = parser.add_subcommands(dest="command")

    make = ArgumentParser(
        description="Make a synthetic round in the TrojAI layout, with verified backdoored models."
    )
    make.add_class_arguments(ImageRoundSpec, nested_key=None, fail_untyped=False)
    # Text rounds take --round/--num_models/--seed from above and the rest from their own group.
    common = {"round", "num_models", "seed"}
    make.add_class_arguments(SentimentRoundSpec, "sentiment", skip=common, fail_untyped=False)
    make.add_class_arguments(NerRoundSpec, "ner", skip=common, fail_untyped=False)
    make.add_argument("--output_dir", type=Path, required=True, help="Where the round is written.")
    make.add_argument("--n_jobs", type=int, default=2, help="Models trained in parallel.")
    commands.add_subcommand("make-round", make)

    run = ArgumentParser(
        description="Run SEAM over every model of a round; records, tables and mitigated models."
    )
    run.add_argument(
        "--config",
        action=ActionConfigFile,
        help="Round YAML (default: round_configs/roundN.yaml for the detected round).",
    )
    run.add_argument(
        "--round_dir", type=Path, required=True, help="A TrojAI round (id-* at the root or under models/)."
    )
    run.add_argument(
        "--output_dir", type=Path, required=True, help="Records, tables and mitigated models go here."
    )
    run.add_argument(
        "--n_jobs", type=int, default=1, help="Models processed in parallel (give each core one)."
    )
    add_threads_argument(run)
    run.add_argument(
        "--save_models", type=bool, default=True, help="Save O/models/<id>/model.pt for status ok."
    )
    run.add_argument(
        "--retry_errors", type=bool, default=False, help="Recompute models whose record is an error."
    )
    run.add_argument(
        "--shard_index",
        type=int | None,
        default=None,
        help="Share to process (default: SLURM_ARRAY_TASK_ID or 0).",
    )
    run.add_argument(
        "--num_shards",
        type=int | None,
        default=None,
        help="Number of shares (default: SLURM_ARRAY_TASK_COUNT or 1).",
    )
    run.add_argument(
        "--aggregate", type=bool, default=True, help="Rebuild the tables at the end (shards: false)."
    )
    run.add_argument("--trust_pickles", type=bool, default=False, help=TRUST)
    run.add_argument(
        "--model_timeout_s",
        type=float | None,
        default=None,
        help="Stop a model after this many seconds (a `timeout` row) and go on; each model then runs in a"
        " fresh child process (a few seconds more per model). Default: no limit.",
    )
    add_method_arguments(run)
    run.add_class_arguments(EvalConfig, "eval")
    commands.add_subcommand("run", run)

    slurm = ArgumentParser(
        description="Write (with --submit: submit) a Slurm array job over a round and an aggregation job."
    )
    slurm.add_argument("--round_dir", type=Path, required=True, help="The round, as for `run`.")
    slurm.add_argument("--output_dir", type=Path, required=True, help="As for `run`; scripts and logs too.")
    slurm.add_class_arguments(SlurmOptions, nested_key=None)
    slurm.add_argument("--submit", action="store_true", help="Submit with sbatch and print the job ids.")
    commands.add_subcommand("slurm", slurm)

    model = ArgumentParser(
        description="SEAM on one model, TrojAI rounds 3-7 container flags (unknown flags are ignored)."
    )
    model.add_argument("--config", action=ActionConfigFile, help="Round YAML (default: the model's round).")
    model.add_argument("--trust_pickles", type=bool, default=False, help=TRUST)
    add_threads_argument(model)
    model.add_argument(
        "--model_filepath", type=Path, default=Path("./model.pt"), help="The model; config.json beside it."
    )
    model.add_argument(
        "--result_filepath", type=Path, default=Path("./output"), help="The model's JSON record."
    )
    model.add_argument("--scratch_dirpath", type=Path, default=Path("./scratch"), help="Working space.")
    model.add_argument(
        "--examples_dirpath", type=Path, default=Path("./example"), help="Clean example images."
    )
    model.add_argument(
        "--output_dirpath",
        type=Path | None,
        default=None,
        help="Mitigated model.pt goes here (default: scratch/mitigated).",
    )
    model.add_argument(
        "--tokenizer_filepath",
        type=Path | None,
        default=None,
        help="Text rounds (default: from config.json, under <round>/tokenizers/ or beside the model).",
    )
    model.add_argument(
        "--embedding_filepath",
        type=Path | None,
        default=None,
        help="Rounds 5-6 (default: from config.json, under <round>/embeddings/ or beside the model).",
    )
    model.add_argument(
        "--cls_token_is_first",
        action="store_true",
        help="Rounds 5-6, a switch without a value (absent: config.json's cls_token_is_first).",
    )
    add_method_arguments(model)
    model.add_class_arguments(EvalConfig, "eval")
    commands.add_subcommand("model", model)

    for name, description in (
        ("mitigate", "Mitigation-round API (2024): SEAM on a dataset's train split, save the model."),
        ("test", "Mitigation-round API (2024): logits for a dataset's test split -> results.json."),
    ):
        api = ArgumentParser(description=description)
        api.add_argument(
            "--model_filepath", type=Path, default=Path("./model.pt"), help="config.json beside it."
        )
        api.add_argument(
            "--dataset_dirpath",
            type=Path,
            required=True,
            help="Images (uses its train/ or test/ if present).",
        )
        api.add_argument("--output_dirpath", type=Path, default=Path("./out"), help="Outputs go here.")
        if name == "mitigate":
            api.add_argument(
                "--model_output_name", default="mitigated.pt", help="File name of the saved model."
            )
            add_threads_argument(api)
        api.add_argument("--scratch_dirpath", type=Path, default=Path("./scratch"), help="Working space.")
        api.add_argument(
            "--batch_size", type=int | None, default=None, help="Default: the round's (mitigate), 32 (test)."
        )
        api.add_argument(
            "--device",
            default="auto",
            help="auto: CUDA when present, else the CPU; cuda falls back to cpu (with a warning) if absent.",
        )
        api.add_argument(
            "--num_workers", type=int, default=1, help="Accepted; data is read once into memory."
        )
        api.add_argument(
            "--metaparameters_filepath", type=Path | None, default=None, help="JSON of SEAM settings."
        )
        api.add_argument("--schema_filepath", type=Path | None, default=None, help="JSON Schema for it.")
        api.add_argument(
            "--round_training_dataset_dirpath", type=Path | None, default=None, help="Accepted, unused."
        )
        commands.add_subcommand(name, api)

    check = ArgumentParser(description="Check that this installation can run SEAM (a few seconds).")
    commands.add_subcommand("self-check", check)

    aggregate = ArgumentParser(description="Rebuild results.csv and summary.csv from O/records/.")
    aggregate.add_argument("--output_dir", type=Path, required=True)
    commands.add_subcommand("aggregate", aggregate)

    compare = ArgumentParser(
        description="Compare the methods of a run: compare.csv, compare.md, compare.png (and budget.png)."
    )
    compare.add_argument("--output_dir", type=Path, required=True, help="The output folder of `run`.")
    commands.add_subcommand("compare", compare)

    study = ArgumentParser(
        description="SEAM variants over rounds, budgets and seeds: study_rows.csv, study_summary.csv,"
        " fidelity.png (docs/robust-seam.md)."
    )
    study.add_argument("--rounds", type=list[Path], required=True, help="Round folders, e.g. '[r3a, r4a]'.")
    study.add_argument("--output_dir", type=Path, required=True, help="Records and tables go here.")
    study.add_argument(
        "--variants",
        type=Path | None,
        default=None,
        help="YAML mapping a variant name to SEAM settings over each round's YAML (default: the defaults).",
    )
    study.add_argument(
        "--budgets",
        type=list[int | None],
        default=[2, 5, 10, 20, None],
        help="Examples per class; null = all.",
    )
    study.add_argument("--seeds", type=list[int], default=[0, 1], help="SEAM seeds.")
    study.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else the CPU), cpu or cuda."
    )
    study.add_argument("--n_jobs", type=int, default=1, help="Models processed in parallel.")
    add_threads_argument(study)
    study.add_argument("--model_timeout_s", type=float | None, default=None, help="Per model and variant.")
    for name, kind in typing.get_type_hints(EvalConfig).items():  # None: each round's YAML value
        study.add_argument(f"--eval.{name}", type=kind | None, default=None, help="Default: round YAML's.")
    commands.add_subcommand("study", study)
    return parser


def study_command(options: Namespace) -> None:
    import yaml

    from harness.study import run_study

    variants = {"defaults": {}}
    if options.variants is not None:
        variants = yaml.safe_load(Path(options.variants).read_text())
        if not isinstance(variants, dict) or not all(isinstance(v, dict | None) for v in variants.values()):
            raise UserError(f"{options.variants}: expected a mapping of variant name to SEAM settings")
        variants = {name: settings or {} for name, settings in variants.items()}
    device = concrete_device(options.device)
    variants = {name: {"device": device, **settings} for name, settings in variants.items()}
    summary = run_study(
        [Path(r) for r in options.rounds],
        Path(options.output_dir),
        variants,
        options.budgets,
        options.seeds,
        options.eval.as_dict(),
        options.n_jobs,
        options.model_timeout_s,
        options.threads,
    )
    columns = ["round", "variant", "defender_per_class", "poisoned_runs", "mean_fidelity", "min_fidelity"]
    columns += ["p10_fidelity", "share_cleaned", "share_high_fidelity", "mean_acc_drop_clean", "flagged"]
    columns += ["silent_ruined"]
    print(summary[columns].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"tables: {options.output_dir}/study_summary.csv, study_rows.csv; plot: fidelity.png")


def add_method_arguments(parser: ArgumentParser) -> None:
    """--methods, --defender_per_class and every method's settings (--seam.*, --finetune.*, ...)."""
    from harness.methods import DEFAULT_METHODS, METHODS, sections

    parser.add_argument(
        "--methods",
        "--method",
        type=list[str],
        default=DEFAULT_METHODS,
        help=f"Methods to run, e.g. '[seam, finetune]': {', '.join(METHODS)} (seam_oracle reads the"
        " evaluation data: a reference, not a defense).",
    )
    parser.add_argument(
        "--device",
        type=str | None,
        default=None,
        help="auto (CUDA when present, else the CPU), cpu or cuda, for every method; default: each"
        " method's own setting (auto).",
    )
    parser.add_argument(
        "--defender_per_class",
        type=list[int] | None,
        default=None,
        help="Defender budgets, e.g. '[2, 5, 10, 20]': each job uses at most that many clean examples per"
        " class (nested draws; evaluation data unchanged). Default: all the folder's examples.",
    )
    for section, config_class in sections().items():
        parser.add_class_arguments(config_class, section)


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv, if present."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def with_round_config(argv: list[str]) -> list[str]:
    """For `run` and `model` without --config, put the round's YAML first, so explicit flags override it."""
    if not argv or argv[0] not in ("run", "model") or flag_value(argv, "--config") is not None:
        return argv
    if "-h" in argv or "--help" in argv:
        return argv
    from adapters import detect_round, model_round
    from adapters.common import RoundFormatError

    try:
        if argv[0] == "run":
            round_dir = flag_value(argv, "--round_dir")
            round_number = detect_round(Path(round_dir)) if round_dir else None
        else:
            round_number = model_round(Path(flag_value(argv, "--model_filepath") or "./model.pt").parent)
    except RoundFormatError as error:
        if argv[0] == "run":
            raise UserError(str(error)) from None
        return argv  # `model` still runs and writes an error record naming the problem
    path = round_config_path(round_number) if round_number else None
    return [argv[0], "--config", str(path), *argv[1:]] if path and path.is_file() else argv


def without_unknown_flags(argv: list[str], parser: ArgumentParser) -> list[str]:
    """For `model`: drop (with a warning) flags it does not know; NIST passes round-specific ones."""
    if not argv or argv[0] != "model":
        return argv
    model_parser = parser._subcommands_action.choices["model"]  # noqa: SLF001
    known = {flag for action in model_parser._actions for flag in action.option_strings}  # noqa: SLF001
    kept, i = [argv[0]], 1
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if arg.startswith("--") and name not in known:
            takes_value = "=" not in arg and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            print(f"seam-harness model: warning: ignoring unknown flag {arg}", file=sys.stderr)
            i += 2 if takes_value else 1
            continue
        kept.append(arg)
        i += 1
    return kept


def round_spec(options: Namespace) -> ImageRoundSpec | SentimentRoundSpec | NerRoundSpec:
    """The generator settings for --round: image (3, 4), sentiment (5, 6) or NER (7)."""
    common = {"round": options.round, "num_models": options.num_models, "seed": options.seed}
    if options.round not in (3, 4, 5, 6, 7):
        raise UserError(f"make-round makes rounds 3 to 7, not {options.round}")
    if options.round in (5, 6):
        return SentimentRoundSpec(**common, **options.sentiment)
    if options.round == 7:
        return NerRoundSpec(**common, **options.ner)
    return ImageRoundSpec(**{k: v for k, v in options.items() if k in ImageRoundSpec.__dataclass_fields__})


def dispatch(args: Namespace) -> None:
    command = args.command
    options = args[command]
    if command == "make-round":
        make_round_command(round_spec(options), Path(options.output_dir), options.n_jobs)
    elif command == "run":
        run_command(
            Path(options.round_dir),
            Path(options.output_dir),
            method_jobs(options),
            EvalConfig(**options.eval),
            options.n_jobs,
            options.save_models,
            options.retry_errors,
            options.shard_index,
            options.num_shards,
            options.aggregate,
            options.trust_pickles,
            options.model_timeout_s,
            options.threads,
        )
    elif command == "slurm":
        fields = SlurmOptions.__dataclass_fields__
        slurm_options = SlurmOptions(**{k: v for k, v in options.items() if k in fields})
        slurm_command(Path(options.round_dir), Path(options.output_dir), slurm_options, options.submit)
    elif command == "model":
        set_threads(options.threads)
        model_command(
            Path(options.model_filepath),
            Path(options.result_filepath),
            Path(options.scratch_dirpath),
            Path(options.examples_dirpath),
            Path(options.output_dirpath) if options.output_dirpath else None,
            method_jobs(options),
            EvalConfig(**options.eval),
            NamedFiles(
                tokenizer=Path(options.tokenizer_filepath) if options.tokenizer_filepath else None,
                embedding=Path(options.embedding_filepath) if options.embedding_filepath else None,
                cls_token_is_first=True if options.cls_token_is_first else None,
            ),
            options.trust_pickles,
        )
    elif command == "mitigate":
        set_threads(options.threads)
        model_filepath = Path(options.model_filepath)
        seam_config = mitigation_seam_config(
            model_filepath,
            options.metaparameters_filepath,
            options.schema_filepath,
            options.batch_size,
            options.device,
        )
        seam_config.device = concrete_device(seam_config.device)  # after the settings were read and checked
        mitigate_command(
            model_filepath,
            Path(options.dataset_dirpath),
            Path(options.output_dirpath),
            options.model_output_name,
            seam_config,
        )
    elif command == "test":
        test_command(
            Path(options.model_filepath),
            Path(options.dataset_dirpath),
            Path(options.output_dirpath),
            options.batch_size or 32,
            concrete_device(options.device),
        )
    elif command == "self-check":
        from harness.selfcheck import self_check

        print("\n".join(self_check()))
    elif command == "aggregate":
        aggregate_command(Path(options.output_dir))
    elif command == "compare":
        compare_command(Path(options.output_dir))
    elif command == "study":
        study_command(options)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(without_unknown_flags(with_round_config(argv), parser))
        dispatch(args)
    except UserError as error:
        sys.exit(f"seam-harness: error: {error}")
    except Exception as error:
        from adapters.common import RoundFormatError
        from harness.files import OutputError
        from harness.model_io import ModelLoadError

        one_line = (RoundFormatError, ModelLoadError, OutputError, FileNotFoundError, ValueError)
        if isinstance(error, one_line):
            sys.exit(f"seam-harness: error: {error}")
        raise


if __name__ == "__main__":
    main()
