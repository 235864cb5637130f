"""Reproduce the seed report's development tables in one call: its four configurations, then the report.

The seed system report (``system_report.txt``, Table 1 and Table 2) cross-validates HATR on each
official development corpus in two modes, ``both`` (audio + text, attention fusion) and ``audio``,
with the default protocol (:class:`~bst_core.config.TrainConfig`: 5 folds, seed 1821, up to 100
epochs, early stopping on validation hF with patience 10, Adam 1e-3, batch 64; λ = 0.75).
:func:`reproduce` runs exactly that, through :func:`bst_core.pipeline.cross_validate`, into

```
OUT/runs/<corpus>-both/  OUT/runs/<corpus>-audio/   one run folder per configuration (bst_core.runs)
OUT/report.md  OUT/report.csv                     Table 1 + Table 2 (bst_core.report), all runs
```

Resumable: every run goes through ``cross_validate``, which reuses each fold already finished in
its folder once it has checked that the fold was made from the same options and the same data
(the run's fingerprint); so re-running after an interruption trains only what is missing, and
re-running a finished reproduction trains nothing and rewrites the same report. A folder holding a
run of other options or other data is refused (choose another OUT).

``config`` replaces the protocol (e.g. fewer folds and epochs, **for tests only**: the figures are
then not comparable with the seed's); ``mode`` is always set per configuration.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bst_core.config import TrainConfig
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.report import RunReport, build_report, write_report
from bst_core.runs import CrossValResult

PathLike = str | os.PathLike[str]
SEED_MODES: tuple[str, ...] = ("both", "audio")
"""The seed report's configurations per corpus, in its column order."""
REPORT_FILES: tuple[str, ...] = ("report.md", "report.csv")
SEED_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "BSD10k both": {"hP": (79.51, 0.69), "hR": (78.32, 0.56), "hF": (78.65, 0.52), "leaf_accuracy": (79.98, 0.56),
                    "top_accuracy": (89.18, 0.24)},
    "BSD10k audio": {"hP": (77.23, 0.46), "hR": (75.33, 0.56), "hF": (75.88, 0.47), "leaf_accuracy": (77.28, 0.43),
                     "top_accuracy": (87.83, 0.38)},
    "BSD35k-CS both": {"hP": (81.07, 1.69), "hR": (79.41, 1.01), "hF": (79.77, 0.60),
                       "leaf_accuracy": (85.32, 0.51), "top_accuracy": (92.71, 0.42)},
    "BSD35k-CS audio": {"hP": (72.38, 2.14), "hR": (69.10, 0.44), "hF": (70.19, 0.93),
                        "leaf_accuracy": (75.36, 0.21), "top_accuracy": (87.18, 0.40)},
}
"""Table 1 of the seed report (%, mean ± std over 5 folds), BSD10k-v1.2 and BSD35k-CS."""


@dataclass
class PlannedRun:
    """One configuration: which corpus, which mode, which run folder."""

    root: Path
    label: str
    mode: str
    run_dir: Path


@dataclass
class Reproduction:
    """What :func:`reproduce` did: the runs (in report order), the report and its files."""

    out: Path
    runs: list[CrossValResult]
    trained: list[Path]            # run folders in which at least one fold was trained now
    reused: list[Path]             # run folders whose every fold was already finished
    report: RunReport
    files: list[Path]
    notes: list[str] = field(default_factory=list)
    protocol_overridden: bool = False


_NOT_PROTOCOL = ("mode", "device", "fused_adam")


def _protocol(config: TrainConfig) -> dict[str, object]:
    """The options that change the figures (not the mode, set per run, nor where it runs)."""
    return {k: v for k, v in config.to_dict().items() if k not in _NOT_PROTOCOL}


def _label(root: Path, dataset: str) -> str:
    return dataset or root.name


def plan(roots: Sequence[PathLike], out: PathLike, labels: Sequence[str] | None = None) -> list[PlannedRun]:
    """The runs for ``roots`` (one or two corpora), in the seed report's column order."""
    if not 1 <= len(roots) <= 2:
        raise BadInputError(f"Give one or two dataset folders (BSD10k, then BSD35k-CS), not {len(roots)}.")
    paths = [Path(r).expanduser().absolute() for r in roots]
    if len({p.resolve() for p in paths}) != len(paths):
        raise BadInputError("The same dataset folder was given twice; give BSD10k and BSD35k-CS.")
    names = list(labels) if labels is not None else [p.name for p in paths]
    if len(set(names)) != len(names):
        names = [f"{name}-{k}" for k, name in enumerate(names, start=1)]
    return [PlannedRun(p, name, mode, Path(out) / "runs" / f"{name}-{mode}")
            for p, name in zip(paths, names, strict=True) for mode in SEED_MODES]


def reproduce(roots: Sequence[PathLike], out: PathLike, *, config: TrainConfig | None = None,
              job: Job | None = None) -> Reproduction:
    """Cross-validate the seed's configurations on ``roots`` into ``out`` and write the report.

    Each corpus is opened once (:func:`bst_core.pipeline.open_source`, with its shipped or stored
    embeddings); its runs resume whatever is finished. Returns what was trained and reused.
    """
    from bst_core import pipeline

    base = config or TrainConfig()
    base.validate()
    overridden = _protocol(base) != _protocol(TrainConfig())
    out = Path(out).expanduser().absolute()
    corpora = []
    notes: list[str] = []
    for root in roots:
        corpus = pipeline.open_source(root, require_embeddings=True, job=job)
        notes += [f"{corpus.name}: {note}" for note in corpus.notes]
        if not corpus.dataset:
            notes.append(f"{corpus.root} is not an official dataset (synthetic or modified): its figures are not "
                         "comparable with the seed report's.")
        corpora.append(corpus)
    planned = plan(roots, out, [_label(Path(c.root or r), c.dataset) for c, r in zip(corpora, roots, strict=True)])
    results: list[CrossValResult] = []
    trained: list[Path] = []
    reused: list[Path] = []
    for k, run in enumerate(planned):
        corpus = corpora[k // len(SEED_MODES)]
        result = pipeline.cross_validate(corpus, run.run_dir, replace(base, mode=run.mode), job=job)
        (reused if len(result.reused) == len(result.folds) and not result.missing_folds else trained).append(
            run.run_dir)
        results.append(result)
    report = build_report(results)
    files = [write_report(report, out / name) for name in REPORT_FILES]
    if overridden:
        notes.append("The protocol was overridden (e.g. --folds/--epochs, meant for tests): not the seed's.")
    return Reproduction(out, results, trained, reused, report, files, notes, overridden)


def seed_table1_markdown() -> str:
    """Table 1 of the seed report as Markdown (the figures a full reproduction is compared with)."""
    from bst_core.report import TABLE1_METRICS

    heads = list(SEED_TABLE1)
    lines = ["| Metric | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for metric, label in TABLE1_METRICS:
        cells = [f"{SEED_TABLE1[h][metric][0]:.2f} ± {SEED_TABLE1[h][metric][1]:.2f}" for h in heads]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["REPORT_FILES", "SEED_MODES", "SEED_TABLE1", "PlannedRun", "Reproduction", "plan", "reproduce",
           "seed_table1_markdown"]
