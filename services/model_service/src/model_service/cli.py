"""``model-service train``, ``model-service serve`` and ``model-service calibrate-cpu``.

scikit-learn, Flask and waitress are imported only by the command that needs
them, so a bad setting is reported in a fraction of a second, not after the
seconds those imports take.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from model_service import __version__, dataset, settings
from model_service.errors import EXIT_FAILURE, ModelServiceError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-service", description="canarylab's restaurant-review sentiment model-service."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model and write DIR/model.joblib + DIR/model.json")
    train.add_argument(
        "--data",
        metavar="FILE_OR_URL",
        help="labelled TSV (label<TAB>review); default: the dataset shipped with the package",
    )
    train.add_argument("--sha256", metavar="HEX", help="expected sha256 of --data (required for a URL)")
    train.add_argument("--out", metavar="DIR", required=True, type=Path, help="where to write the model")
    train.add_argument("--seed", type=int, default=dataset.DEFAULT_SEED, help="split and model seed")
    train.add_argument(
        "--test-fraction",
        type=float,
        default=dataset.DEFAULT_TEST_FRACTION,
        help="share of the data held out to measure accuracy",
    )
    train.set_defaults(handler=_train)

    serve = sub.add_parser(
        "serve",
        help="serve the model with waitress, or gunicorn when MODEL_SERVICE_PROCESSES > 1 "
        "(settings: MODEL_SERVICE_* environment variables)",
        description="Settings come from the environment: "
        + ", ".join(
            (
                settings.ENV_MODEL_DIR,
                settings.ENV_THREADS,
                settings.ENV_VARIANT,
                settings.ENV_HOST,
                settings.ENV_PORT,
                settings.ENV_SIMULATED_LATENCY_MS,
                settings.ENV_CPU_COST_MS,
                settings.ENV_PROCESSES,
                settings.ENV_EMULATION_DISTRIBUTION,
                settings.ENV_CPU_ITERATIONS_PER_MS,
                settings.ENV_LOG_LEVEL,
            )
        )
        + ". See docs/model-service.md.",
    )
    serve.set_defaults(handler=_serve)

    calibrate = sub.add_parser(
        "calibrate-cpu",
        help="measure the CPU knob's loop on this host and print its iterations per millisecond",
        description=(
            f"Prints one number for {settings.ENV_CPU_ITERATIONS_PER_MS}: variants started side by "
            "side that are given the same calibration spend the same work per request."
        ),
    )
    calibrate.set_defaults(handler=_calibrate_cpu)
    return parser


def _calibrate_cpu(_args: argparse.Namespace) -> int:
    from model_service import cpu  # noqa: PLC0415 - small, but only this command needs it

    calibration = cpu.calibrate()
    print(f"{calibration.iterations_per_ms:.1f}")
    print(f"calibration: {calibration.describe()}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from model_service import training  # noqa: PLC0415 - heavy (scikit-learn): only when training

    data = dataset.load(args.data, args.sha256)
    print(f"dataset {data.source}: {len(data)} reviews, sha256 {data.sha256}")
    meta = training.train(data, args.out, seed=args.seed, test_fraction=args.test_fraction)
    print(f"held-out accuracy: {meta.accuracy:.4f} ({meta.n_test} reviews, seed {meta.seed})")
    print(f"model {meta.version} written to {args.out} (sklearn {meta.sklearn_version})")
    return 0


def _serve(_args: argparse.Namespace) -> int:
    config = settings.from_env(os.environ)  # fails fast, before the heavy imports
    if config.processes > 1:
        from model_service import prefork  # noqa: PLC0415 - heavy (gunicorn, Flask, scikit-learn)

        prefork.serve(config)
        return 0
    from model_service import server  # noqa: PLC0415 - heavy (Flask, waitress, scikit-learn)

    server.serve(config)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ModelServiceError as err:
        print(f"model-service: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"  -> {err.hint}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        print(f"model-service: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return code
