"""`seam-harness` command line: a thin jsonargparse layer over plain functions.

Heavy imports (torch, adapters) happen inside the commands, so `--help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from adapters.specs import ImageRoundSpec
from harness.config import EvalConfig, SeamConfig, round_config_path


class UserError(Exception):
    """Bad input from the user: printed as one clear line, without a traceback."""


def make_round_command(spec: ImageRoundSpec, output_dir: Path, n_jobs: int) -> None:
    from adapters.image_make_round import make_round

    models = make_round(spec, output_dir, n_jobs=n_jobs)
    print(f"round {spec.round}: {len(models)} models in {output_dir}")


def run_command(
    round_dir: Path,
    output_dir: Path,
    seam: SeamConfig,
    eval: EvalConfig,
    n_jobs: int,
    save_models: bool,
    retry_errors: bool,
    shard_index: int,
    num_shards: int,
) -> None:
    from adapters import detect_round
    from harness.records import aggregate
    from harness.scheduler import run_batch

    round_number = detect_round(round_dir)
    statuses = run_batch(
        round_dir,
        output_dir,
        seam,
        eval,
        n_jobs,
        save_models,
        retry_errors,
        shard_index,
        num_shards,
        round_number,
    )
    print("done: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()) if count))
    summary = aggregate(output_dir)
    print_summary(summary, output_dir)


def aggregate_command(output_dir: Path) -> None:
    from harness.records import aggregate

    print_summary(aggregate(output_dir), output_dir)


def print_summary(summary, output_dir: Path) -> None:
    columns = [
        "round", "method", "n_models", "n_poisoned", "n_clean", "n_errors", "n_not_ok", "mean_fidelity",
        "min_fidelity", "mean_asr_before", "mean_asr_after", "mean_acc_drop_clean", "mean_seconds",
    ]  # fmt: skip
    overall = summary[summary["group_by"] == "all"][columns]
    print(overall.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"tables: {Path(output_dir) / 'results.csv'}, {Path(output_dir) / 'summary.csv'}")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="seam-harness", description="SEAM backdoor removal over TrojAI-style rounds."
    )
    commands = parser.add_subcommands(dest="command")

    make = ArgumentParser(
        description="Make a synthetic round in the TrojAI layout, with verified backdoored models."
    )
    make.add_class_arguments(ImageRoundSpec, nested_key=None, fail_untyped=False)
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
        "--n_jobs", type=int, default=1, help="Models processed in parallel; threads = cores / n_jobs."
    )
    run.add_argument(
        "--save_models", type=bool, default=True, help="Save O/models/<id>/model.pt for status ok."
    )
    run.add_argument(
        "--retry_errors", type=bool, default=False, help="Recompute models whose record is an error."
    )
    run.add_argument(
        "--shard_index", type=int, default=0, help="Which share of the sorted models to process."
    )
    run.add_argument("--num_shards", type=int, default=1, help="How many shares the models are split into.")
    run.add_class_arguments(SeamConfig, "seam")
    run.add_class_arguments(EvalConfig, "eval")
    commands.add_subcommand("run", run)

    aggregate = ArgumentParser(description="Rebuild results.csv and summary.csv from O/records/.")
    aggregate.add_argument("--output_dir", type=Path, required=True)
    commands.add_subcommand("aggregate", aggregate)
    return parser


def with_round_config(argv: list[str]) -> list[str]:
    """For `run` without --config, put the detected round's YAML first, so explicit flags override it."""
    if not argv or argv[0] != "run" or any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    round_dir = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--round_dir"), None)
    round_dir = round_dir or next((a.split("=", 1)[1] for a in argv if a.startswith("--round_dir=")), None)
    if round_dir is None:
        return argv
    from adapters import detect_round
    from adapters.common import RoundFormatError

    try:
        path = round_config_path(detect_round(Path(round_dir)))
    except RoundFormatError as error:
        raise UserError(str(error)) from None
    return ["run", "--config", str(path), *argv[1:]] if path.is_file() else argv


def dispatch(args: Namespace) -> None:
    command = args.command
    options = args[command]
    if command == "make-round":
        spec = ImageRoundSpec(
            **{k: v for k, v in options.items() if k in ImageRoundSpec.__dataclass_fields__}
        )
        make_round_command(spec, Path(options.output_dir), options.n_jobs)
    elif command == "run":
        run_command(
            Path(options.round_dir),
            Path(options.output_dir),
            SeamConfig(**options.seam),
            EvalConfig(**options.eval),
            options.n_jobs,
            options.save_models,
            options.retry_errors,
            options.shard_index,
            options.num_shards,
        )
    elif command == "aggregate":
        aggregate_command(Path(options.output_dir))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(with_round_config(argv))
        dispatch(args)
    except UserError as error:
        sys.exit(f"seam-harness: error: {error}")
    except Exception as error:
        from adapters.common import RoundFormatError
        from harness.model_io import ModelLoadError

        if isinstance(error, RoundFormatError | ModelLoadError | FileNotFoundError | ValueError):
            sys.exit(f"seam-harness: error: {error}")
        raise


if __name__ == "__main__":
    main()
