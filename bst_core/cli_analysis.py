"""``bst`` commands that analyse a source or a run beyond the challenge loop (similar, explain,
issues, report, ...). Each is a thin caller of :mod:`bst_core.pipeline` or an analysis module.

Exit codes as :mod:`bst_core.cli`: 0 success, 2 bad input (a :class:`BadInputError` raised here is
printed by ``cli.main``), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bst_core.console import add_output_flags, print_json
from bst_core.errors import BadInputError

EXIT_OK = 0


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _print_notes(notes: list[str], args: argparse.Namespace) -> None:
    """Notes about the input go to stderr, none under --quiet; with --json they are in the object."""
    if _json(args) or getattr(args, "quiet", False):
        return
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _say(args: argparse.Namespace, text: str) -> None:
    """A summary line on stderr (stdout carries the CSV); none under --quiet or --json."""
    if not (getattr(args, "quiet", False) or _json(args)):
        print(text, file=sys.stderr)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(row) for row in frame.to_dict(orient="records")]


def _csv(frame: pd.DataFrame) -> None:
    frame.to_csv(sys.stdout, index=False, float_format="%.6f", lineterminator="\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, not {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, not {value}")
    return value


# --- commands ------------------------------------------------------------------------------------

def cmd_similar(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.similar import similar

    corpus = pipeline.open_source(args.source, store=args.store, require_embeddings=True)
    _print_notes(corpus.notes, args)
    frame = similar(corpus, args.id, k=args.k, space=args.space)
    if _json(args):
        print_json({"command": "similar", "id": str(args.id), "space": args.space, "k": args.k,
                    "neighbours": _records(frame), "notes": list(corpus.notes)})
    else:
        _csv(frame)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bst_core import pipeline
    from bst_core.explain import LatentIndex, training_corpus
    from bst_core.runs import RunFolder

    run = RunFolder(args.run)
    training = training_corpus(run.path)   # refuses first when the run's dataset is gone
    source = Path(args.source).expanduser().absolute()
    same = source.resolve() == Path(run.dataset_root).resolve() and args.store is None
    corpus = training if same else pipeline.open_source(source, store=args.store, require_embeddings=True)
    notes = list(training.notes) if same else [*training.notes, *corpus.notes]
    _print_notes(notes, args)
    if str(args.id) not in set(map(str, corpus.ids)):
        raise BadInputError(f"{corpus.root} has no item with id {args.id!r}; give one of its ids.")
    index = LatentIndex(pipeline.load_ensemble(run.path), training)
    explanation = index.explain(corpus, args.id, args.k)
    if _json(args):
        print_json({"command": "explain", "id": str(args.id), "prediction": explanation.label,
                    "score": explanation.score, "n_models": explanation.prediction.n_models,
                    "training_dataset": run.dataset_root, "neighbours": _records(explanation.neighbours),
                    "notes": notes})
        return EXIT_OK
    _say(args, f"{args.id}: predicted {explanation.label} (score {explanation.score:.3f}) by "
               f"{explanation.prediction.n_models} fold model(s); nearest training items of {run.dataset_root} "
               "in the models' latent space (mean cosine similarity over the fold models):")
    _csv(explanation.neighbours)
    return EXIT_OK


def cmd_issues(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.atomic import atomic_open
    from bst_core.label_issues import run_issues

    result = pipeline.load_run(args.run)
    found = run_issues(result)
    _print_notes(found.notes, args)
    frame = found.top(args.top)
    if args.out:
        with atomic_open(args.out, "w", newline="") as handle:
            frame.to_csv(handle, index=False, float_format="%.6f", lineterminator="\n")
    if _json(args):
        print_json({"command": "issues", "run_dir": str(result.run_dir), "n_items": found.n_items,
                    "flagged": len(found), "folds": result.folds, "out": args.out,
                    "issues": _records(frame), "notes": found.notes})
        return EXIT_OK
    if not args.out:
        _csv(frame)
    partial = f" (partial run: folds {', '.join(map(str, result.folds))} only)" if result.missing_folds else ""
    shown = f"; {len(frame)} written to {args.out}" if args.out else (
        f"; the first {len(frame)} shown" if len(frame) < len(found) else "")
    _say(args, f"{len(found)} of {found.n_items} out-of-fold item(s) flagged as likely mislabelled{partial}{shown}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bst_core.report import FORMATS, report_runs, write_report

    if args.out and Path(args.out).suffix.lower() not in FORMATS:
        raise BadInputError(f"{args.out}: unknown report format; name the output FILE.md, FILE.csv or FILE.tex.")
    report = report_runs(args.runs)
    out = write_report(report, args.out) if args.out else None
    if _json(args):
        print_json({"command": "report", "out": None if out is None else str(out),
                    "same_protocol": report.same_protocol,
                    "runs": [{"name": c.name, "run_dir": str(c.run_dir), "dataset": c.dataset, "mode": c.mode,
                              "folds": c.folds, "folds_planned": c.folds_planned, "n_items": c.n_items,
                              "lam": c.lam, "absent": c.absent,
                              "summary": {m: {"mean": mean, "std": std} for m, (mean, std) in c.summary.items()},
                              "class_hf": c.class_hf} for c in report.columns]})
    elif out is not None:
        print(f"wrote {out} ({len(report.columns)} run(s))")
    else:
        sys.stdout.write(report.markdown())
    return EXIT_OK


def cmd_map(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.atomic import atomic_open
    from bst_core.console import make_progress
    from bst_core.embedding_map import compute_map, map_frame
    from bst_core.jobs import Job

    corpus = pipeline.open_source(args.source, store=args.store, require_embeddings=True)
    _print_notes(corpus.notes, args)
    progress = make_progress(getattr(args, "quiet", False) or _json(args), sys.stderr)
    try:
        result = compute_map(corpus, args.space, args.method, progress=Job(progress))
    finally:
        progress.close()
    frame = map_frame(corpus, result)
    if args.out:
        with atomic_open(args.out, "w", newline="") as handle:
            frame.to_csv(handle, index=False, float_format="%.6f", lineterminator="\n")
    if _json(args):
        print_json({"command": "map", "n": len(frame), "method": result.method, "space": result.space,
                    "out": args.out, "notes": list(corpus.notes),
                    **({} if args.out else {"points": _records(frame)})})
        return EXIT_OK
    if not args.out:
        _csv(frame)
    fallback = " (PCA: UMAP needs more items)" if result.method != args.method else ""
    _say(args, f"{result.method} map of {len(frame)} item(s), {result.space} embeddings{fallback}"
               + (f" → {args.out}" if args.out else ""))
    return EXIT_OK


def _clap_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="PATH", help="CLAP checkpoint (else $BST_CLAP_CHECKPOINT, else the "
                   "user data folder)")
    p.add_argument("--device", default="cpu", help="where CLAP runs: cpu or cuda (default cpu)")


def _joint_encoder(args: argparse.Namespace, corpus: Any, what: str) -> Any:
    from bst_core.console import make_progress
    from bst_core.jobs import Job
    from bst_core.text_search import joint_encoder_for, require_joint_encoder

    require_joint_encoder(corpus, what)           # refuse before any model is loaded
    progress = make_progress(getattr(args, "quiet", False), sys.stderr)
    try:
        return joint_encoder_for(corpus, checkpoint=args.checkpoint, device=args.device, job=Job(progress),
                                 what=what)
    finally:
        progress.close()


def cmd_search(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.text_search import query_vector, search_by_words

    corpus = pipeline.open_source(args.source, store=args.store, require_embeddings=True)
    _print_notes(corpus.notes, args)
    encoder = _joint_encoder(args, corpus, "Search by words")
    query_vector(encoder, args.query)             # an empty query is refused here too
    frame = search_by_words(corpus, args.query, encoder=encoder, k=args.k)
    if _json(args):
        print_json({"command": "search", "query": args.query, "k": args.k, "encoder": encoder.info.label,
                    "results": _records(frame), "notes": list(corpus.notes)})
    else:
        _csv(frame)
    return EXIT_OK


def add_zero_shot_arguments(p: argparse.ArgumentParser) -> None:
    """``--zero-shot`` (and the CLAP options it needs) on ``bst predict``'s parser."""
    p.add_argument("--zero-shot", action="store_true",
                   help="no run: label each sound by the CLAP similarity of its audio to the 23 class descriptions "
                        "of the taxonomy (needs a CLAP store; give SOURCE only). Accuracy unmeasured")
    p.add_argument("--checkpoint", metavar="PATH", help="with --zero-shot: the CLAP checkpoint (else "
                   "$BST_CLAP_CHECKPOINT, else the user data folder)")
    p.add_argument("--device", default="cpu", help="with --zero-shot: where CLAP runs (cpu or cuda)")


def cmd_predict_zero_shot(args: argparse.Namespace) -> int:
    """``bst predict SOURCE --zero-shot --out PRED.csv`` (called by ``cli.cmd_predict``)."""
    from bst_core import pipeline
    from bst_core.console import make_progress
    from bst_core.jobs import Job
    from bst_core.text_search import require_joint_encoder

    if args.source is not None:
        raise BadInputError(f"--zero-shot uses no run: give the source only (`bst predict {args.source} "
                            f"--zero-shot --out {args.out}`), or drop --zero-shot to predict with {args.run}.")
    source = args.run  # the one path given (see the predict parser)
    corpus = pipeline.open_source(source, store=args.store, require_embeddings=True,
                                  truth_from_subfolders=getattr(args, "truth_from_subfolders", False))
    require_joint_encoder(corpus, "Zero-shot labels (--zero-shot)")   # refuse before any model is loaded
    progress = make_progress(getattr(args, "quiet", False), sys.stderr)
    try:
        predictions = pipeline.zero_shot(corpus, checkpoint=args.checkpoint, device=args.device, job=Job(progress))
    finally:
        progress.close()
    encoder_label = corpus.encoder.label  # type: ignore[union-attr]  # the encoder loaded is checked equal to it
    _print_notes(corpus.notes, args)
    out = pipeline.write_predictions_csv(predictions, args.out, probabilities=args.probabilities,
                                         abstain=args.abstain)
    if _json(args):
        print_json({"command": "predict", "zero_shot": True, "n": len(predictions), "n_models": 0,
                    "text_only": predictions.text_only_count, "out": str(out), "encoder": encoder_label,
                    "accuracy": "unmeasured", "notes": list(corpus.notes)})
        return EXIT_OK
    text_only = f"; {predictions.text_only_count} from their text only (audio not decoded)" \
        if predictions.text_only_count else ""
    print(f"zero-shot labels for {len(predictions)} item(s) from {encoder_label}{text_only} → {out} "
          "(accuracy unmeasured: check a sample before relying on them)")
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bst_core.config import TrainConfig
    from bst_core.console import make_progress
    from bst_core.jobs import Job
    from bst_core.reproduce import reproduce

    overrides = {name: value for name, value in (("folds", args.folds), ("epochs", args.epochs))
                 if value is not None}
    config = replace(TrainConfig(device=args.device), **overrides)
    config.validate()
    progress = make_progress(getattr(args, "quiet", False), sys.stderr)
    try:
        done = reproduce(args.roots, args.out, config=config, job=Job(progress))
    finally:
        progress.close()
    _print_notes(done.notes, args)
    if _json(args):
        print_json({"command": "reproduce", "out": str(done.out), "files": [str(f) for f in done.files],
                    "protocol_overridden": done.protocol_overridden,
                    "runs": [{"run_dir": str(r.run_dir), "mode": r.config.mode, "dataset": r.dataset_label,
                              "reused": Path(r.run_dir) in done.reused,
                              "summary": {m: {"mean": mean, "std": std} for m, (mean, std) in r.summary.items()}}
                             for r in done.runs], "notes": done.notes})
        return EXIT_OK
    sys.stdout.write(done.report.markdown())
    _say(args, f"{len(done.runs)} run(s) in {done.out / 'runs'} ({len(done.trained)} trained now, "
               f"{len(done.reused)} already finished); report: {', '.join(str(f) for f in done.files)}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from bst_core import pipeline
    from bst_core.atomic import atomic_open
    from bst_core.run_compare import compare_runs

    comparison = compare_runs(pipeline.load_run(args.run_a), pipeline.load_run(args.run_b))
    if args.out:
        with atomic_open(args.out, "w", newline="") as handle:
            comparison.changed.to_csv(handle, index=False, float_format="%.6f", lineterminator="\n")
    if _json(args):
        print_json({"command": "compare", "a": str(args.run_a), "b": str(args.run_b), "out": args.out,
                    "same_protocol": comparison.report.same_protocol, "metrics": _records(comparison.metrics),
                    "per_class": _records(comparison.per_class), "common": comparison.n_common,
                    "changed": len(comparison.changed), "counts": comparison.counts(),
                    "changed_clips": _records(comparison.changed)})
        return EXIT_OK
    sys.stdout.write(comparison.markdown())
    if args.out:
        _say(args, f"wrote the {len(comparison.changed)} changed clip(s) to {args.out}")
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------

def add_analysis_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the analysis subcommands on the ``bst`` parser's subparsers."""
    from bst_core.similar import DEFAULT_K, DEFAULT_SPACE, SPACES

    p = sub.add_parser("similar", help="the k sounds of a source most like one of its items (CSV on stdout)",
                       description="Nearest sounds by cosine similarity of the stored embeddings (exact "
                                   "search), the item itself excluded. Prints id,similarity,label,title.")
    p.add_argument("source", metavar="SOURCE", help="dataset, evaluation folder, folder of sounds or CSV")
    p.add_argument("id", metavar="ID", help="the item's id")
    p.add_argument("--store", metavar="STORE", help="embedding store for sources without shipped embeddings")
    p.add_argument("--k", type=_positive, default=DEFAULT_K, help=f"how many neighbours (default {DEFAULT_K})")
    p.add_argument("--space", choices=SPACES, default=DEFAULT_SPACE,
                   help="audio, text, or both (concatenated L2-normalised vectors; default)")
    add_output_flags(p)
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("explain", help="why this label: the nearest training items in the model's latent space",
                       description="The k training items of the run (its own dataset) nearest to an item in the "
                                   "fold models' fused feature space (mean cosine similarity over the fold models). "
                                   "Prints id,similarity,label,title; the prediction goes to stderr.")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("source", metavar="SOURCE", help="the source holding the item (may be the run's dataset)")
    p.add_argument("id", metavar="ID", help="the item's id")
    p.add_argument("--store", metavar="STORE", help="embedding store of SOURCE")
    p.add_argument("--k", type=_positive, default=5, help="how many training items (default 5)")
    add_output_flags(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("issues", help="suspected label errors of a cross-validation run (cleanlab)",
                       description="Items whose given label is most likely wrong, from the run's out-of-fold "
                                   "probabilities (cleanlab confident learning), ranked, with the suggested "
                                   "class. CSV rank,id,given,suggested,label_quality,suggested_probability.")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--top", type=_positive, metavar="N", help="only the N most likely errors")
    p.add_argument("--out", metavar="CSV", help="write the CSV here instead of stdout")
    add_output_flags(p)
    p.set_defaults(func=cmd_issues)

    p = sub.add_parser("report", help="Table 1 and Table 2 of the seed report for one or more runs",
                       description="hP, hR, hF, leaf and top-level accuracy (mean ± std over folds) and "
                                   "class-wise hF, one column per run, λ and absent-class mode stated; from the "
                                   "runs' own results. Markdown on stdout, or --out FILE.md|.csv|.tex.")
    p.add_argument("runs", metavar="RUN_DIR", nargs="+")
    p.add_argument("--out", metavar="FILE", help="FILE.md, FILE.csv or FILE.tex")
    add_output_flags(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="two runs side by side: metrics, per-class hF deltas, changed clips",
                       description="Table 1 of both runs with the change (B - A), class-wise hF and its change, "
                                   "and the clips whose out-of-fold prediction changed (fixed, broken, other), "
                                   "from the runs' own results. Markdown on stdout; --out CSV writes the changed "
                                   "clips (id,truth,prediction_a,prediction_b,score_a,score_b,change).")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--out", metavar="CSV", help="write the changed clips here")
    add_output_flags(p)
    p.set_defaults(func=cmd_compare)

    from bst_core.embedding_map import DEFAULT_METHOD, METHODS
    from bst_core.embedding_map import DEFAULT_SPACE as MAP_SPACE

    p = sub.add_parser("map", help="2D map of a source's sounds (UMAP or PCA of the embeddings), as CSV",
                       description="Coordinates of every item in a 2D map of its embeddings: UMAP (umap-learn, "
                                   "reproducible, cached per store and content) or PCA (instant). CSV "
                                   "id,x,y,truth,colour,title on stdout or into --out.")
    p.add_argument("source", metavar="SOURCE", help="dataset, evaluation folder, folder of sounds or CSV")
    p.add_argument("--store", metavar="STORE", help="embedding store for sources without shipped embeddings")
    p.add_argument("--out", metavar="CSV", help="write the CSV here instead of stdout")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD, help=f"default {DEFAULT_METHOD}")
    p.add_argument("--space", choices=SPACES, default=MAP_SPACE, help=f"embeddings to map (default {MAP_SPACE})")
    add_output_flags(p)
    p.set_defaults(func=cmd_map)

    from bst_core.text_search import DEFAULT_K as SEARCH_K

    p = sub.add_parser("search", help="sounds ranked by how well their audio matches some words (needs CLAP)",
                       description="Search by words: the cosine similarity of each item's stored CLAP audio "
                                   "embedding to the CLAP text embedding of QUERY. Needs a joint audio-text "
                                   "encoder (CLAP); other stores are refused (exit 2). Prints "
                                   "id,similarity,label,title.")
    p.add_argument("source", metavar="SOURCE", help="dataset, evaluation folder, folder of sounds or CSV")
    p.add_argument("query", metavar="QUERY", help='e.g. "dog barking in the rain"')
    p.add_argument("--store", metavar="STORE", help="CLAP embedding store for sources without shipped embeddings")
    p.add_argument("--k", type=_positive, default=SEARCH_K, help=f"how many sounds (default {SEARCH_K})")
    _clap_options(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("reproduce", help="the seed report's four runs (both/audio on BSD10k and BSD35k-CS) "
                                         "and its Table 1 + Table 2",
                       description="Cross-validate HATR with the seed report's protocol in modes both and audio "
                                   "on each dataset, into OUT/runs/<dataset>-<mode>/, then write OUT/report.md "
                                   "and OUT/report.csv. Resumable: finished folds and runs are reused after "
                                   "checking they were made from the same options and data.")
    p.add_argument("roots", metavar="ROOT", nargs="+", help="BSD10K_ROOT [BSD35K_ROOT]")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--folds", type=_positive, help="FOR TESTING ONLY: fewer folds (not the seed's protocol)")
    p.add_argument("--epochs", type=_positive, help="FOR TESTING ONLY: fewer epochs (not the seed's protocol)")
    add_output_flags(p)
    p.set_defaults(func=cmd_reproduce)
