"""The ``bst`` command line: train, evaluate, predict, export, extract, demo.

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

from bst_core import __version__
from bst_core.errors import BadInputError
from bst_core.jobs import Cancelled, Job, Progress

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
    from bst_core.training import TrainConfig

    config = TrainConfig(mode=args.mode, folds=args.folds, seed=args.seed, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr,
                         patience=None if args.patience == 0 else args.patience,
                         augment=args.augment, label_smoothing=args.label_smoothing,
                         only_fold=args.only_fold, device=args.device, absent=args.absent)
    config.validate()
    job, bars = _job(args)
    try:
        corpus = pipeline.load_source(args.dataset, store=args.store, job=job)
        _print_notes(corpus.notes)
        from bst_core.training import cross_validate

        result = cross_validate(corpus, args.out, config, job=job)
    finally:
        bars.close()
    print(format_table(result.fold_reports, title=f"{len(result.fold_reports)} fold(s), mode {config.mode}"))
    if args.per_class:
        print(format_per_class(result.report))
    if result.reused:
        print(f"reused finished fold(s) {', '.join(map(str, result.reused))} from {args.out}")
    print(f"run folder: {args.out} ({result.status})")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bst_core.metrics import evaluate, format_per_class, format_table
    from bst_core.submission import read_submission_csv, read_truth_csv

    truth = read_truth_csv(args.truth)
    pred = read_submission_csv(args.pred)
    truth_ids = truth["id"].astype(str)
    if truth_ids.duplicated().any():
        raise BadInputError(f"{args.truth}: id {truth_ids[truth_ids.duplicated()].iloc[0]!r} appears "
                            "more than once; each id needs exactly one true class.")
    pred_ids = pred["id"].astype(str)
    if pred_ids.duplicated().any():
        raise BadInputError(f"{args.pred}: id {pred_ids[pred_ids.duplicated()].iloc[0]!r} is predicted "
                            "more than once; keep one row per id.")
    by_id = dict(zip(pred_ids, pred["predicted_bst_second_level_class"].astype(str), strict=True))
    missing = [i for i in truth_ids if i not in by_id]
    if missing:
        raise BadInputError(f"{args.pred}: {len(missing)} id(s) of {args.truth} have no prediction "
                            f"(e.g. {', '.join(missing[:3])}); predict every id.")
    report = evaluate(truth["class"].astype(str).tolist(), [by_id[i] for i in truth_ids],
                      lam=args.lam, absent=args.absent)
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
        prediction = pipeline.predict(args.run, args.source, store=args.store, job=job, precision=args.precision)
    finally:
        bars.close()
    _print_notes(prediction.corpus.notes)
    out = pipeline.write_predictions_csv(prediction, args.out, with_probabilities=args.probabilities)
    print(f"predicted {len(prediction.corpus)} item(s) with {prediction.n_models} fold model(s) → {out}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from bst_core import pipeline

    job, bars = _job(args)
    try:
        package = pipeline.export(args.run, args.eval_root, args.label, args.out, store=args.store, job=job,
                                  precision=args.precision)
    finally:
        bars.close()
    print(f"wrote and validated {package}")
    for path in sorted(package.iterdir()):
        print(f"  {path.name}")
    return EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    from bst_core import pipeline

    job, bars = _job(args)
    try:
        summary = pipeline.extract(args.source, args.out, encoder=args.encoder, checkpoint=args.checkpoint,
                                   device=args.device, allow_download=args.download_checkpoint,
                                   batch_size=args.batch_size, job=job)
    finally:
        bars.close()
    print(summary.format())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from bst_core.demo import run_demo

    job, bars = _job(args)
    try:
        result = run_demo(args.out, job=job)
    finally:
        bars.close()
    print(result.format() if hasattr(result, "format") else result)
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------

def _add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
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
    p.add_argument("--mode", choices=("both", "audio", "text"), default="both")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1821)
    p.add_argument("--epochs", type=int, default=100, help="maximum epochs per fold (default 100)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=10,
                   help="early-stopping patience in epochs on validation hF (0 = never stop early)")
    p.add_argument("--only-fold", type=int, metavar="K", help="train only fold K (1-based) of the same split")
    p.add_argument("--augment", action="store_true", help="the baseline's Gaussian noise + random masking")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="e.g. 0.01 (default off)")
    p.add_argument("--absent", choices=("reference", "strict"), default="reference",
                   help="absent-class mode of the reported metrics (default: reference = organizers')")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--per-class", action="store_true", help="also print the per-class table")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a prediction CSV against a truth CSV with the challenge metric")
    p.add_argument("--truth", required=True, metavar="TRUTH.csv", help="columns id,class")
    p.add_argument("--pred", required=True, metavar="PRED.csv", help="submission format "
                   "(id,predicted_bst_second_level_class,prediction_score)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.75, help="same-top credit λ (default 0.75)")
    p.add_argument("--absent", choices=("reference", "strict"), default="reference",
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
    _add_precision(p)
    _add_common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("extract", help="compute audio+text embeddings into a resumable store")
    p.add_argument("source", metavar="SOURCE", help="dataset, evaluation folder, folder of sounds or CSV")
    p.add_argument("--out", required=True, metavar="STORE")
    p.add_argument("--encoder", choices=("clap", "offline"), default="offline",
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
        print(f"bst {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("BST_DEBUG"):
            raise
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
