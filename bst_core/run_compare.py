"""Two runs side by side: Table-1 metrics, per-class hF deltas, and the clips whose prediction changed.

The figures come from the runs' own results (:mod:`bst_core.report`: ``CrossValResult.summary`` and
the per-fold class hF), so a comparison can never disagree with ``bst report``. The changed clips
come from the two runs' out-of-fold tables, joined on id: an item counts only when both runs
predicted it out-of-fold (for two runs of one source, every item). Deltas are ``B - A``.

Kinds of change (:data:`CHANGE_KINDS`): ``fixed`` (A wrong, B right), ``broken`` (A right, B wrong),
``other`` (both wrong, differently), ``unlabelled`` (no truth to judge by).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import jobs, paths
from bst_core.corpus import Corpus
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.report import TABLE1_METRICS, RunColumn, RunReport, build_report
from bst_core.runs import CrossValResult
from bst_core.taxonomy import CLASS_KEYS

CHANGE_KINDS: tuple[str, ...] = ("fixed", "broken", "other", "unlabelled")
CHANGED_COLUMNS: tuple[str, ...] = ("id", "truth", "prediction_a", "prediction_b", "score_a", "score_b", "change")
METRIC_COLUMNS: tuple[str, ...] = ("metric", "label", "mean_a", "std_a", "mean_b", "std_b", "delta")
CLASS_COLUMNS: tuple[str, ...] = ("class", "n", "hf_a", "hf_b", "delta")


@dataclass
class RunComparison:
    """Run A against run B (``report`` holds the two Table-1 columns, A first)."""

    report: RunReport
    metrics: pd.DataFrame        # METRIC_COLUMNS, one row per Table-1 metric (fractions)
    per_class: pd.DataFrame      # CLASS_COLUMNS, taxonomy order; n = out-of-fold items of that truth in A
    changed: pd.DataFrame        # CHANGED_COLUMNS, fixed first, then broken, other, unlabelled; by id within
    n_common: int                # items predicted out-of-fold by both runs
    only_a: int                  # items only A predicted
    only_b: int

    @property
    def a(self) -> RunColumn:
        return self.report.columns[0]

    @property
    def b(self) -> RunColumn:
        return self.report.columns[1]

    def counts(self) -> dict[str, int]:
        """How many changed clips of each kind (:data:`CHANGE_KINDS`)."""
        values = self.changed["change"].value_counts()
        return {kind: int(values.get(kind, 0)) for kind in CHANGE_KINDS}

    def summary_line(self) -> str:
        counts = self.counts()
        parts = [f"{counts[k]} {k}" for k in CHANGE_KINDS if counts[k]]
        line = (f"{len(self.changed)} of {self.n_common} common clip(s) changed prediction"
                + (f" ({', '.join(parts)})" if parts else ""))
        if self.only_a or self.only_b:
            line += f"; {self.only_a} only in {self.a.name}, {self.only_b} only in {self.b.name}"
        return line

    def markdown(self) -> str:
        """The comparison as Markdown (what ``bst compare`` prints)."""
        a, b = self.a.name, self.b.name
        out = [f"# {a} (A) against {b} (B)", ""]
        out += [f"- {line}" for line in self.report.protocol_lines()]
        out += ["", self.report.title1(), "", _row(["Metric", a, b, "Δ (B − A)"]),
                _row(["---", "---:", "---:", "---:"])]
        for (_metric, label), row in zip(TABLE1_METRICS, self.report.table1(), strict=True):
            delta = self.metrics.loc[self.metrics["label"] == label, "delta"].iloc[0]
            out.append(_row([label, row[1], row[2], signed_points(delta)]))
        out += ["", "Class-wise hF (%, mean over folds) and its change:", "",
                _row(["Class", "n", a, b, "Δ"]), _row(["---", "---:", "---:", "---:", "---:"])]
        for rec in self.per_class.itertuples(index=False):
            out.append(_row([rec[0], str(rec[1]), _pct(rec[2]), _pct(rec[3]), signed_points(rec[4], 1)]))
        out += ["", f"Clips whose prediction changed: {self.summary_line()}."]
        return "\n".join(out) + "\n"


def compare_runs(a: CrossValResult, b: CrossValResult) -> RunComparison:
    """Compare run ``a`` with run ``b`` (BadInputError when either has no finished fold)."""
    if Path(a.run_dir).resolve() == Path(b.run_dir).resolve():
        raise BadInputError(f"{a.run_dir} is compared with itself: choose two different runs.")
    report = build_report([a, b])
    col_a, col_b = report.columns
    metrics = pd.DataFrame([
        {"metric": metric, "label": label, "mean_a": col_a.summary[metric][0], "std_a": col_a.summary[metric][1],
         "mean_b": col_b.summary[metric][0], "std_b": col_b.summary[metric][1],
         "delta": col_b.summary[metric][0] - col_a.summary[metric][0]}
        for metric, label in TABLE1_METRICS], columns=list(METRIC_COLUMNS))
    truth_counts = a.oof["truth"].astype(str).value_counts()
    per_class = pd.DataFrame({
        "class": list(CLASS_KEYS),
        "n": [int(truth_counts.get(k, 0)) for k in CLASS_KEYS],
        "hf_a": [col_a.class_hf[k] for k in CLASS_KEYS],
        "hf_b": [col_b.class_hf[k] for k in CLASS_KEYS],
    })
    per_class["delta"] = per_class["hf_b"] - per_class["hf_a"]
    changed, n_common, only_a, only_b = changed_predictions(a.oof, b.oof)
    return RunComparison(report, metrics, per_class.loc[:, list(CLASS_COLUMNS)], changed, n_common, only_a, only_b)


def changed_predictions(oof_a: pd.DataFrame, oof_b: pd.DataFrame) -> tuple[pd.DataFrame, int, int, int]:
    """The items both out-of-fold tables predict, where the predictions differ (:data:`CHANGED_COLUMNS`);
    also the number of common items and of items only in A / only in B."""
    left = _by_id(oof_a, "A")
    right = _by_id(oof_b, "B")
    joined = left.join(right, how="inner", lsuffix="_a", rsuffix="_b")
    moved = joined[joined["prediction_a"] != joined["prediction_b"]]
    truth = moved["truth_a"].where(moved["truth_a"] != "", moved["truth_b"]).astype(str)
    kind = np.select(
        [truth.to_numpy() == "", moved["prediction_b"].to_numpy() == truth.to_numpy(),
         moved["prediction_a"].to_numpy() == truth.to_numpy()],
        ["unlabelled", "fixed", "broken"], default="other")
    changed = pd.DataFrame({
        "id": pd.Series(moved.index.astype(str), dtype=object), "truth": truth.to_numpy(dtype=object),
        "prediction_a": moved["prediction_a"].to_numpy(dtype=object),
        "prediction_b": moved["prediction_b"].to_numpy(dtype=object),
        "score_a": moved["score_a"].to_numpy(np.float64), "score_b": moved["score_b"].to_numpy(np.float64),
        "change": kind.astype(object)}, columns=list(CHANGED_COLUMNS))
    order = np.lexsort((changed["id"].to_numpy(dtype=str), [CHANGE_KINDS.index(k) for k in changed["change"]]))
    changed = changed.iloc[order].reset_index(drop=True)
    common = len(joined)
    return changed, common, len(left) - common, len(right) - common


def _by_id(oof: pd.DataFrame, name: str) -> pd.DataFrame:
    frame = oof.loc[:, ["id", "truth", "prediction", "score"]].copy()
    frame["id"] = frame["id"].astype(str)
    frame["truth"] = frame["truth"].fillna("").astype(str)
    twice = frame["id"][frame["id"].duplicated()]
    if len(twice):
        raise BadInputError(f"Run {name}'s out-of-fold table lists id {twice.iloc[0]!r} more than once; "
                            "rerun its training.")
    return frame.set_index("id")


def runs_root() -> Path:
    """Where the app and ``pipeline.default_run_dir`` put new runs."""
    return paths.data_dir() / "runs"


def runs_of_source(corpus: Corpus, folders: Iterable[str | Path] = (), *, root: Path | None = None,
                   job: Job | None = None) -> tuple[list[CrossValResult], list[str]]:
    """The runs trained on this very source (:func:`pipeline.run_belongs_to`), newest first: the run
    folders under ``root`` (default :func:`runs_root`) and ``folders``. Also notes naming the run
    folders of this source that could not be read (unfinished, damaged), and why."""
    from bst_core import pipeline
    from bst_core.runs import RunFolder

    if corpus.root is None:
        return [], []
    source = Path(corpus.root).resolve()
    base = runs_root() if root is None else Path(root)
    candidates = sorted(base.iterdir()) if base.is_dir() else []
    candidates += [Path(f) for f in folders]
    seen: set[Path] = set()
    found: list[tuple[float, CrossValResult]] = []
    notes: list[str] = []
    for k, folder in enumerate(candidates):
        jobs.report(job, "runs", k, len(candidates), folder.name)
        where = folder.resolve()
        if where in seen or not (folder / "run.json").is_file():
            continue
        seen.add(where)
        try:
            dataset = RunFolder(folder).dataset_root
            if not dataset or Path(dataset).resolve() != source:
                continue
            result = pipeline.load_run(folder)
        except BadInputError as exc:
            notes.append(f"{folder.name}: {exc}")
            continue
        if pipeline.run_belongs_to(result, corpus):
            found.append(((folder / "run.json").stat().st_mtime, result))
    jobs.report(job, "runs", len(candidates), len(candidates), f"{len(found)} run(s)")
    found.sort(key=lambda pair: -pair[0])
    return [result for _mtime, result in found], notes


def signed_points(delta: float, digits: int = 2) -> str:
    """A fraction's change in percentage points: ``+1.25``, ``-0.40``, ``–`` when unknown."""
    if delta is None or (isinstance(delta, float) and math.isnan(delta)):
        return "–"
    return f"{100 * delta:+.{digits}f}"


def _pct(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


__all__ = ["CHANGED_COLUMNS", "CHANGE_KINDS", "CLASS_COLUMNS", "METRIC_COLUMNS", "RunComparison",
           "changed_predictions", "compare_runs", "runs_of_source", "runs_root", "signed_points"]
