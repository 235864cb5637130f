"""The ``bst`` command line: train, evaluate, predict, export, validate, extract, demo.

Every command is a thin caller of :mod:`bst_core.pipeline`; choices and defaults come from
:mod:`bst_core.config`.

Set ``BST_DEBUG=1`` to see the full traceback of an unexpected error.

Exit codes: 0 success, 2 bad input (message on stderr), 1 anything else, 130 cancelled (Ctrl+C).

Output (:mod:`bst_core.console`): results on stdout; progress and notes on stderr. Progress is a
tqdm bar per stage when stderr is a terminal, else plain lines (stage started / done, and at most
one progress line every ``$BST_PROGRESS_INTERVAL`` s, default 5; never a ``\\r``). ``-q/--quiet``:
no progress, notes or Python warnings (stderr gets errors only). ``--json``: one JSON object on
stdout and nothing else there; an error still exits 2 or 1 with its message on stderr and prints no
JSON. Notes about the input (rows dropped, a text encoding guessed) go to stderr unless
``--quiet`` or ``--json`` (then they are in the object's ``notes``).
``bst --version`` prints the torch build, the encoder stacks and folders (``--json`` too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bst_core.abstain import add_abstain_argument
from bst_core.cli_analysis import add_zero_shot_arguments, cmd_predict_zero_shot
from bst_core.config import (
    DEFAULT_ENCODER,
    DEFAULT_PRECISION,
    ENCODER_NAMES,
    MISSING_AUDIO,
    MODES,
    PRECISIONS,
    TrainConfig,
)
from bst_core.console import (
    ProgressBars,
    ProgressRenderer,
    add_output_flags,
    make_progress,
    print_json,
    quiet_output,
)
from bst_core.errors import BadInputError
from bst_core.jobs import Cancelled, Job
from bst_core.metrics import ABSENT_MODES

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


__all__ = ["ProgressBars", "build_parser", "main"]   # ProgressBars moved to bst_core.console


def _job(args: argparse.Namespace) -> tuple[Job, ProgressRenderer]:
    progress = make_progress(getattr(args, "quiet", False), sys.stderr)
    return Job(progress), progress


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _print_notes(notes: Sequence[str], args: argparse.Namespace | None = None) -> None:
    """Notes about the input go to stderr, none under --quiet (only errors remain); with --json they
    are in the JSON object instead."""
    if args is not None and (_json(args) or getattr(args, "quiet", False)):
        return
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _metrics(report: Any) -> dict[str, float]:
    return dict(report.metrics())


# --- commands ------------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.metrics import format_per_class, format_table

    config = TrainConfig(mode=args.mode, folds=args.folds, seed=args.seed, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr,
                         patience=None if args.patience == 0 else args.patience,
                         augment=args.augment, label_smoothing=args.label_smoothing,
                         only_fold=args.only_fold, device=args.device, absent=args.absent,
                         missing_audio=args.missing_audio)
    config.validate()
    from bst_core.fold_engines import make_engine

    engine = make_engine(args.engine, address=args.address, workers=args.workers)
    job, bars = _job(args)
    try:
        corpus = pipeline.open_source(args.dataset, store=args.store, require_embeddings=True, job=job,
                                      truth_from_subfolders=args.truth_from_subfolders)
        _print_notes(corpus.notes, args)
        result = pipeline.cross_validate(corpus, args.out, config, job=job, engine=engine)
    finally:
        bars.close()
    if _json(args):
        print_json({
            "command": "train", "run_dir": str(args.out), "status": result.status,
            "dataset": result.dataset_label, "mode": config.mode, "n_items": result.n_items,
            "folds": [{"fold": k, "best_epoch": epoch, "reused": k in result.reused, "metrics": _metrics(report)}
                      for k, epoch, report in zip(result.folds, result.best_epochs, result.fold_reports,
                                                  strict=False)],
            "summary": {name: {"mean": mean, "std": std} for name, (mean, std) in result.summary.items()},
            "pooled": _metrics(result.report), "missing_folds": result.missing_folds,
            "reused_folds": result.reused, "notes": list(corpus.notes),
            **({"per_class": result.report.to_dict()["per_class"]} if args.per_class else {}),
        })
        return EXIT_OK
    print(format_table(result.fold_reports, title=f"{len(result.folds)} fold(s), mode {config.mode}, "
                                                   f"{result.dataset_label}"))
    if args.per_class:
        print(format_per_class(result.report))
    if result.reused:
        print(f"reused finished fold(s) {', '.join(map(str, result.reused))} from {args.out}")
    missing = f"; missing fold(s) {', '.join(map(str, result.missing_folds))}" if result.missing_folds else ""
    print(f"run folder: {args.out} ({result.status}{missing})")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.metrics import format_per_class, format_table
    from bst_core.predictions import Predictions
    from bst_core.submission import read_submission_csv, read_truth_csv
    from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS

    truth = read_truth_csv(args.truth)
    pred = read_submission_csv(args.pred)
    pred_ids = pred["id"].astype(str)
    if pred_ids.duplicated().any():
        raise BadInputError(f"{args.pred}: id {pred_ids[pred_ids.duplicated()].iloc[0]!r} is predicted "
                            "more than once; keep one row per id.")
    labels = pred["predicted_bst_second_level_class"].astype(str)
    unknown = labels[~labels.isin(CLASS_INDEX)]
    if len(unknown):
        raise BadInputError(f"{args.pred}: {len(unknown)} prediction(s) are not BST classes "
                            f"(e.g. {unknown.iloc[0]!r}); use the 23 second-level class keys.")
    probs = np.zeros((len(pred), len(CLASS_KEYS)))
    probs[np.arange(len(pred)), labels.map(CLASS_INDEX).to_numpy(int)] = 1.0
    predictions = Predictions(pred_ids.tolist(), probs)
    report = pipeline.score(predictions, pd.Series(truth["class"].astype(str).to_numpy(),
                                                   index=truth["id"].astype(str)),
                            lam=args.lam, absent=args.absent, source=str(args.truth))
    if args.json:
        print(json.dumps(report.to_dict(), allow_nan=False))
    else:
        print(format_table(report))
        print(format_per_class(report))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from bst_core import pipeline

    if args.zero_shot:
        return cmd_predict_zero_shot(args)
    if args.source is None:
        raise BadInputError("Give RUN_DIR and SOURCE_ROOT (or SOURCE_ROOT alone with --zero-shot, for labels "
                            "from CLAP with no run).")
    job, bars = _job(args)
    try:
        corpus = pipeline.open_source(args.source, store=args.store, require_embeddings=True, job=job,
                                      truth_from_subfolders=args.truth_from_subfolders)
        predictions = pipeline.predict(args.run, corpus, precision=args.precision, job=job)
    finally:
        bars.close()
    _print_notes(corpus.notes, args)
    out = pipeline.write_predictions_csv(predictions, args.out, probabilities=args.probabilities,
                                         abstain=args.abstain)
    if _json(args):
        print_json({"command": "predict", "n": len(predictions), "n_models": predictions.n_models,
                    "text_only": predictions.text_only_count, "out": str(out), "precision": args.precision,
                    "notes": list(corpus.notes)})
        return EXIT_OK
    text_only = f"; {predictions.text_only_count} from text only (audio not decoded)" \
        if predictions.text_only_count else ""
    print(f"predicted {len(predictions)} item(s) with {predictions.n_models} fold model(s){text_only} → {out}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.submission import check_label

    check_label(args.label)
    job, bars = _job(args)
    try:
        corpus = pipeline.open_source(args.eval_root, store=args.store, require_embeddings=True, job=job)
        package = pipeline.export(args.run, corpus, args.label, args.out, allow_partial=args.allow_partial,
                                  precision=args.precision, job=job)
    finally:
        bars.close()
    _print_notes(corpus.notes, args)
    if _json(args):
        print_json({"command": "export", "package": str(package), "valid": True,
                    "files": sorted(path.name for path in package.iterdir()), "notes": list(corpus.notes)})
        return EXIT_OK
    print(f"wrote and validated {package}")
    for path in sorted(package.iterdir()):
        print(f"  {path.name}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from bst_core.submission import read_eval_ids, validate_package

    eval_ids = read_eval_ids(args.eval_root) if args.eval_root else None
    problems = validate_package(args.package, eval_ids)
    if _json(args):
        print_json({"command": "validate", "package": str(args.package), "valid": not problems,
                    "problems": list(problems), "checked_ids": None if eval_ids is None else len(eval_ids)})
        if problems:
            print(f"bst validate: {args.package} has {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_BAD_INPUT if problems else EXIT_OK
    if problems:
        print(f"bst validate: {args.package} has {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    checked = f" against the {len(eval_ids)} ids of {args.eval_root}" if eval_ids is not None else ""
    print(f"{args.package} is a valid package{checked}")
    return EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    from bst_core import pipeline

    job, bars = _job(args)
    try:
        corpus = pipeline.open_source(args.source, job=job, truth_from_subfolders=args.truth_from_subfolders)
        extracted = pipeline.extract(corpus, encoder=args.encoder, store=args.out, checkpoint=args.checkpoint,
                                     device=args.device, allow_download=args.download_checkpoint,
                                     batch_size=args.batch_size, job=job, engine=args.engine,
                                     ray_options=_ray_options(args))
    finally:
        bars.close()
    summary = extracted.summary
    if _json(args):
        print_json({"command": "extract", "computed": summary.computed, "reused": summary.reused,
                    "failed": summary.failed, "changed": summary.changed, "text_only": summary.text_only,
                    "store": str(extracted.corpus.store), "failures": summary.failures,
                    "warnings": summary.warnings, "notes": [*corpus.notes, *summary.notes]})
        return EXIT_OK
    _print_notes(corpus.notes, args)
    print(summary.format())
    print(f"store: {extracted.corpus.store}")
    return EXIT_OK


def _ray_options(args: argparse.Namespace) -> Any:
    """``--address/--workers/--gpus-per-worker`` as :class:`bst_core.ray_extract.RayOptions` (None: local engine)."""
    given = [flag for flag, value in (("--address", args.address), ("--workers", args.workers),
                                      ("--gpus-per-worker", args.gpus_per_worker)) if value]
    if args.engine != "ray":
        if given:
            raise BadInputError(f"{', '.join(given)} need --engine ray.")
        return None
    if (args.workers is not None and args.workers < 1) or args.gpus_per_worker < 0:
        raise BadInputError("--workers must be at least 1 and --gpus-per-worker at least 0.")
    from bst_core.ray_extract import RayOptions

    return RayOptions(address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker)


def cmd_demo(args: argparse.Namespace) -> int:
    from bst_core.demo import run_demo

    job, bars = _job(args)
    try:
        result = run_demo(args.out, job=job)
    finally:
        bars.close()
    if _json(args):
        cv = result.cross_validation
        print_json({"command": "demo", "data": str(result.paths.root), "run_dir": str(cv.run_dir),
                    "package": str(result.package), "seconds": result.seconds,
                    "cross_validation": {name: {"mean": m, "std": sd} for name, (m, sd) in cv.summary.items()},
                    "evaluation": _metrics(result.eval_report),
                    "extract": {"dev": result.dev_extraction.line, "eval": result.eval_extraction.line}})
        return EXIT_OK
    print(result.format())
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------

def _add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help="fp32 (default): exact; bf16: about 2x faster on CPUs with AVX-512 BF16, "
                        "probabilities differ slightly")


def _add_common(p: argparse.ArgumentParser) -> None:
    add_output_flags(p)


def _add_truth_from_subfolders(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truth-from-subfolders", action="store_true",
                   help="a folder of sounds: its class-named subfolders (fx-o/, 401/, Vehicles/) are the truth "
                        "(give it to extract, train and predict alike: the folder names leave the text)")


class _VersionAction(argparse.Action):
    """``--version``: the diagnostics a bug report needs (:mod:`bst_core.diagnostics`), then exit."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        _print_version(as_json=False)
        parser.exit()


def _print_version(*, as_json: bool) -> None:
    from bst_core import diagnostics

    info = diagnostics.gather()
    if as_json:
        print_json(info)
    else:
        print(diagnostics.format(info))


class _CommandParser(argparse.ArgumentParser):
    """A sub-command's parser. With :attr:`intermixed` set, its positionals may be split by options
    (``RUN --out X SOURCE``) even when the last one is optional: plain argparse binds the optional one
    to nothing at the first path and then calls the second path unrecognised."""

    intermixed = False
    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if not self.intermixed or self._intermixing:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bst", description="BST Studio: sort sounds into the 23 classes of the Broad Sound Taxonomy.")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version, torch build, encoder stacks and folders, then exit "
                             "(`bst --version --json`: as JSON)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)

    p = sub.add_parser("train", help="cross-validate HATR on a labelled dataset (writes a run folder)",
                       description="Stratified k-fold cross-validation of the HATR classifier "
                                   "(seed report protocol by default).")
    p.add_argument("dataset", metavar="DATASET_ROOT", help="BSD dataset folder, labelled folder or CSV")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to write (resumes if present)")
    p.add_argument("--store", metavar="STORE", help="embedding store from `bst extract` (sources without "
                   "shipped embeddings)")
    defaults = TrainConfig()
    p.add_argument("--mode", choices=MODES, default=defaults.mode)
    p.add_argument("--folds", type=int, default=defaults.folds)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--epochs", type=int, default=defaults.epochs,
                   help=f"maximum epochs per fold (default {defaults.epochs})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--patience", type=int, default=defaults.patience,
                   help="early-stopping patience in epochs on validation hF (0 = never stop early)")
    p.add_argument("--only-fold", type=int, metavar="K", help="train only fold K (1-based) of the same split")
    p.add_argument("--augment", action="store_true", help="the baseline's Gaussian noise + random masking")
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing, help="e.g. 0.01 (default off)")
    p.add_argument("--absent", choices=ABSENT_MODES, default=defaults.absent,
                   help="absent-class mode of the reported metrics (default: reference = organizers')")
    p.add_argument("--missing-audio", choices=MISSING_AUDIO, default=defaults.missing_audio,
                   help="mask (default): items whose audio could not be decoded get no audio attention; "
                        "seed: feed their zero vector like the seed system (exact reproduction)")
    p.add_argument("--device", default=defaults.device, help="cpu or cuda")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where the folds train: local (this process, or --workers processes) or ray (each fold "
                        "a Ray task on a local Ray instance, or the cluster at --address); same numbers either way")
    p.add_argument("--address", metavar="ADDRESS", help="Ray cluster to join (HOST:6379, from `ray start --head`)")
    p.add_argument("--workers", type=int, metavar="N", help="folds trained at once (local: processes, default 1; "
                   "ray: tasks in flight, default all)")
    p.add_argument("--per-class", action="store_true", help="also print the per-class table")
    _add_common(p)
    _add_truth_from_subfolders(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a prediction CSV against a truth CSV with the challenge metric")
    p.add_argument("--truth", required=True, metavar="TRUTH.csv", help="columns id,class")
    p.add_argument("--pred", required=True, metavar="PRED.csv", help="submission format "
                   "(id,predicted_bst_second_level_class,prediction_score)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.75, help="same-top credit λ (default 0.75)")
    p.add_argument("--absent", choices=ABSENT_MODES, default="reference",
                   help="reference: a class never predicted drops out of the means (organizers' code); "
                        "strict: it counts as 0")
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict a source with the ensemble of a run folder")
    p.intermixed = True
    # RUN_DIR first and SOURCE_ROOT optional (not the other way round), so that options may sit
    # between the two paths; with --zero-shot the one path given is the source.
    p.add_argument("run", metavar="RUN_DIR", help="the run folder (with --zero-shot: the source, no run)")
    p.add_argument("source", metavar="SOURCE_ROOT", nargs="?", help="the source to predict")
    p.add_argument("--out", required=True, metavar="PRED.csv")
    p.add_argument("--store", metavar="STORE", help="embedding store for sources without shipped embeddings")
    p.add_argument("--probabilities", action="store_true", help="append the 23 class probabilities")
    add_abstain_argument(p)
    add_zero_shot_arguments(p)
    _add_precision(p)
    _add_common(p)
    _add_truth_from_subfolders(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write the validated challenge package <out>/task1/<label>/")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("eval_root", metavar="EVAL_ROOT")
    p.add_argument("--label", required=True, help="e.g. Lastname_Abbrev_task1_1")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--store", metavar="STORE", help="embedding store of the evaluation folder")
    p.add_argument("--allow-partial", action="store_true",
                   help="export from a run with unfinished folds (meta.yaml says how many fold models)")
    _add_precision(p)
    _add_common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("validate", help="check a written package folder (exit 0 valid, 2 with every problem)")
    p.add_argument("package", metavar="PACKAGE_DIR", help="the task1/<label>/ folder")
    p.add_argument("eval_root", metavar="EVAL_ROOT", nargs="?",
                   help="evaluation folder: check the ids against its metadata")
    _add_common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("extract", help="compute audio+text embeddings into a resumable store")
    p.add_argument("source", metavar="SOURCE", help="dataset, evaluation folder, folder of sounds or CSV")
    p.add_argument("--out", metavar="STORE", help="store folder (default: the source's store in the user "
                   "cache, found again by train/predict/export and the app without --store)")
    p.add_argument("--encoder", choices=ENCODER_NAMES, default=DEFAULT_ENCODER,
                   help="clap: LAION-CLAP 630k-audioset-fusion (needs the checkpoint); offline: "
                        "log-mel + n-gram features, no download")
    p.add_argument("--checkpoint", metavar="PATH", help="CLAP checkpoint (else $BST_CLAP_CHECKPOINT, "
                   "else the user data folder)")
    p.add_argument("--download-checkpoint", action="store_true",
                   help="allow downloading the CLAP checkpoint and the roberta-base tokenizer files "
                        "into the user data folder, once")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray workers (a local Ray instance, or the cluster at "
                        "--address), this process writing the store")
    p.add_argument("--address", metavar="ADDRESS", help="Ray cluster to join (HOST:6379, from `ray start --head`)")
    p.add_argument("--workers", type=int, metavar="N", help="Ray workers (default: one per CPU, or per "
                   "--gpus-per-worker GPUs, of the cluster)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="N",
                   help="GPUs per Ray worker (0.5: two workers share a GPU); the encoder then runs on CUDA")
    _add_common(p)
    _add_truth_from_subfolders(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("demo", help="offline demo on SYNTHETIC sounds: extract, cross-validate, export")
    p.add_argument("--out", default="demo_out", metavar="DIR")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    from bst_core.cli_analysis import add_analysis_commands

    add_analysis_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv and set(argv) <= {"--version", "--json"}:
        _print_version(as_json="--json" in argv)
        return EXIT_OK
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        with quiet_output(getattr(args, "quiet", False)):
            return handler(args)
    except BadInputError as exc:
        print(f"bst {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        print(f"bst {args.command}: cancelled; finished work is kept and a rerun resumes it.", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:
        from bst_core.atomic import disk_full_error

        full = disk_full_error(getattr(exc, "filename", None) or "a file", exc)
        if full is not None:   # a write outside the atomic helpers (a folder, a database) hit a full disk
            print(f"bst {args.command}: {full}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(exc, IsADirectoryError | NotADirectoryError | FileNotFoundError | PermissionError) \
                and exc.filename:   # a path given on the command line that cannot be used as asked
            wanted = "a file, not a folder" if isinstance(exc, IsADirectoryError) else "writable and of the right kind"
            print(f"bst {args.command}: cannot use {exc.filename}: {exc.strerror}. Give a path that is {wanted}.",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"bst {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("BST_DEBUG"):
            raise
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
