"""The ``bst`` command line: train, evaluate, predict, export, validate, extract, demo.

Every command is a thin caller of :mod:`bst_core.pipeline`; choices and defaults come from
:mod:`bst_core.config`.

Set ``BST_DEBUG=1`` to see the full traceback of an unexpected error.

Exit codes: 0 success, 2 bad input (message on stderr), 1 anything else, 130 cancelled (Ctrl+C).
Long steps show a progress bar (tqdm) with rate and time left.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bst_core import __version__
from bst_core.config import (
    DEFAULT_ENCODER,
    DEFAULT_PRECISION,
    ENCODER_NAMES,
    MISSING_AUDIO,
    MODES,
    PRECISIONS,
    TrainConfig,
)
from bst_core.errors import BadInputError
from bst_core.jobs import Cancelled, Job, Progress
from bst_core.metrics import ABSENT_MODES

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


class ProgressBars:
    """Render :class:`Progress` reports as one tqdm bar per stage, on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bars: dict[str, object] = {}

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self._bars.get(progress.stage)
        if bar is None:
            for other in self._bars.values():  # a new stage starts: close the finished ones
                other.close()  # type: ignore[attr-defined]
            self._bars.clear()
            bar = tqdm(total=progress.total, desc=progress.stage, unit="it", dynamic_ncols=True,
                       file=sys.stderr, leave=True)
            self._bars[progress.stage] = bar
        if progress.total is not None and bar.total != progress.total:  # type: ignore[attr-defined]
            bar.total = progress.total  # type: ignore[attr-defined]
        bar.n = progress.done  # type: ignore[attr-defined]
        postfix = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in progress.data.items()
                   if k in ("loss", "val_hf", "computed", "failed", "reused")}
        if progress.message:
            postfix["note"] = progress.message
        bar.set_postfix(postfix, refresh=False)  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()  # type: ignore[attr-defined]
        self._bars.clear()


def _job(args: argparse.Namespace) -> tuple[Job, ProgressBars]:
    bars = ProgressBars(enabled=not getattr(args, "quiet", False))
    return Job(bars), bars


def _print_notes(notes: Sequence[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


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
    job, bars = _job(args)
    try:
        corpus = pipeline.open_source(args.dataset, store=args.store, require_embeddings=True, job=job)
        _print_notes(corpus.notes)
        result = pipeline.cross_validate(corpus, args.out, config, job=job)
    finally:
        bars.close()
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

    job, bars = _job(args)
    try:
        corpus = pipeline.open_source(args.source, store=args.store, require_embeddings=True, job=job)
        predictions = pipeline.predict(args.run, corpus, precision=args.precision, job=job)
    finally:
        bars.close()
    _print_notes(corpus.notes)
    out = pipeline.write_predictions_csv(predictions, args.out, probabilities=args.probabilities)
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
    _print_notes(corpus.notes)
    print(f"wrote and validated {package}")
    for path in sorted(package.iterdir()):
        print(f"  {path.name}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from bst_core.submission import read_eval_ids, validate_package

    eval_ids = read_eval_ids(args.eval_root) if args.eval_root else None
    problems = validate_package(args.package, eval_ids)
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
        corpus = pipeline.open_source(args.source, job=job)
        extracted = pipeline.extract(corpus, encoder=args.encoder, store=args.out, checkpoint=args.checkpoint,
                                     device=args.device, allow_download=args.download_checkpoint,
                                     batch_size=args.batch_size, job=job)
    finally:
        bars.close()
    print(extracted.summary.format())
    print(f"store: {extracted.corpus.store}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from bst_core.demo import run_demo

    job, bars = _job(args)
    try:
        result = run_demo(args.out, job=job)
    finally:
        bars.close()
    print(result.format())
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------

def _add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                   help="fp32 (default): exact; bf16: about 2x faster on CPUs with AVX-512 BF16, "
                        "probabilities differ slightly")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bst", description="BST Studio: sort sounds into the 23 classes of the Broad Sound Taxonomy.")
    parser.add_argument("--version", action="version", version=f"bst-studio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    p.add_argument("--per-class", action="store_true", help="also print the per-class table")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a prediction CSV against a truth CSV with the challenge metric")
    p.add_argument("--truth", required=True, metavar="TRUTH.csv", help="columns id,class")
    p.add_argument("--pred", required=True, metavar="PRED.csv", help="submission format "
                   "(id,predicted_bst_second_level_class,prediction_score)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.75, help="same-top credit λ (default 0.75)")
    p.add_argument("--absent", choices=ABSENT_MODES, default="reference",
                   help="reference: a class never predicted drops out of the means (organizers' code); "
                        "strict: it counts as 0")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict a source with the ensemble of a run folder")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("source", metavar="SOURCE_ROOT")
    p.add_argument("--out", required=True, metavar="PRED.csv")
    p.add_argument("--store", metavar="STORE", help="embedding store for sources without shipped embeddings")
    p.add_argument("--probabilities", action="store_true", help="append the 23 class probabilities")
    _add_precision(p)
    _add_common(p)
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
    _add_common(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("demo", help="offline demo on SYNTHETIC sounds: extract, cross-validate, export")
    p.add_argument("--out", default="demo_out", metavar="DIR")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    from bst_core.cli_analysis import add_analysis_commands

    add_analysis_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
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
        print(f"bst {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("BST_DEBUG"):
            raise
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
