"""Compare runs and reproduce the seed report's tables, from the runs' own results.

Table 1 (the seed report's layout): hP, hR, hF, leaf accuracy and top-level accuracy, mean ± std
(ddof 0) over each run's finished folds, one column per run: exactly ``CrossValResult.summary``,
the figures ``metrics.json`` holds under ``summary``. Table 2: class-wise hF per run, the mean over
the folds of each fold's per-class hF (a fold in which the class was dropped from the means,
reference mode, is left out of that class's mean; "–" when every fold dropped it), from the same
fold reports. Nothing is recomputed from predictions here, so the tables cannot drift from the runs.

Formats by the output's suffix: ``.md`` (Markdown, also what is printed), ``.tex`` (a LaTeX
``tabular`` per table, no packages needed), ``.csv`` (long form, one row per table, row and run:
``table,row,run,dataset,mode,folds,lam,absent,mean,std`` with fractions at full precision).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bst_core import atomic
from bst_core.errors import BadInputError
from bst_core.metrics import ABSENT_DESCRIPTIONS
from bst_core.runs import CrossValResult
from bst_core.taxonomy import CLASS_KEYS

TABLE1_METRICS: tuple[tuple[str, str], ...] = (
    ("hP", "hP"), ("hR", "hR"), ("hF", "hF"), ("leaf_accuracy", "Leaf accuracy"),
    ("top_accuracy", "Top-level accuracy"))
FORMATS: tuple[str, ...] = (".md", ".csv", ".tex")
CSV_COLUMNS: tuple[str, ...] = ("table", "row", "run", "dataset", "mode", "folds", "lam", "absent", "mean", "std")


@dataclass
class RunColumn:
    """One run's column: where it came from and its figures (fractions)."""

    name: str
    run_dir: Path
    dataset: str
    mode: str
    folds: int
    folds_planned: int
    n_items: int
    lam: float
    absent: str
    summary: dict[str, tuple[float, float]]          # metric → (mean, std)
    class_hf: dict[str, float]                        # class key → mean over folds (NaN: dropped everywhere)


def class_hf(result: CrossValResult) -> dict[str, float]:
    """Per class, the mean over the run's folds of the fold's hF where the class was included."""
    values = np.full((len(result.fold_reports), len(CLASS_KEYS)), np.nan)
    for row, report in enumerate(result.fold_reports):
        table = report.per_class.reindex(list(CLASS_KEYS))
        values[row] = np.where(table["included"].astype(bool), table["hF"].astype(float), np.nan)
    out = {}
    for col, key in enumerate(CLASS_KEYS):
        finite = values[:, col][~np.isnan(values[:, col])]
        out[key] = float(finite.mean()) if len(finite) else float("nan")
    return out


def column(result: CrossValResult, name: str | None = None) -> RunColumn:
    if not result.fold_reports:
        raise BadInputError(f"{result.run_dir} has no finished fold: nothing to report.")
    return RunColumn(
        name=name or Path(result.run_dir).name, run_dir=Path(result.run_dir), dataset=result.dataset_label,
        mode=result.config.mode, folds=len(result.fold_reports), folds_planned=result.config.folds,
        n_items=result.n_items, lam=float(result.fold_reports[0].lam), absent=str(result.fold_reports[0].absent),
        summary=dict(result.summary), class_hf=class_hf(result))


def _names(results: Sequence[CrossValResult]) -> list[str]:
    names = [Path(r.run_dir).name for r in results]
    if len(set(names)) == len(names):
        return names
    names = [f"{Path(r.run_dir).parent.name}/{Path(r.run_dir).name}" for r in results]
    return names if len(set(names)) == len(names) else [f"{n} ({k})" for k, n in enumerate(names, start=1)]


@dataclass
class RunReport:
    """Table 1 and Table 2 over several runs (one column each)."""

    columns: list[RunColumn]

    @property
    def same_protocol(self) -> bool:
        """True when every run states the same λ and absent-class mode (the columns are comparable)."""
        return len({(c.lam, c.absent) for c in self.columns}) == 1

    def protocol_lines(self) -> list[str]:
        lines = [f"{c.name}: {c.dataset}, mode {c.mode}, {c.folds} of {c.folds_planned} fold(s), {c.n_items} items, "
                 f"λ = {c.lam:g}, absent classes {c.absent}" for c in self.columns]
        if self.same_protocol:
            first = self.columns[0]
            lines.append(f"λ = {first.lam:g}; absent classes: {ABSENT_DESCRIPTIONS.get(first.absent, first.absent)}")
        else:
            lines.append("WARNING: the runs differ in λ or absent-class mode; their columns are not comparable.")
        return lines

    def table1(self) -> list[list[str]]:
        return [[label, *(_pm(*c.summary[metric]) for c in self.columns)] for metric, label in TABLE1_METRICS]

    def table2(self) -> list[list[str]]:
        return [[key, *(_pct(c.class_hf[key], 1) for c in self.columns)] for key in CLASS_KEYS]

    def _fold_words(self) -> str:
        folds = {c.folds for c in self.columns}
        return f"{folds.pop()}-fold" if len(folds) == 1 else "Per-run"

    def title1(self) -> str:
        return f"Table 1: {self._fold_words()} mean development performance (%, mean ± std over folds)."

    def title2(self) -> str:
        return f"Table 2: Class-wise hierarchical F-score (%, {self._fold_words()} mean over folds)."

    def markdown(self) -> str:
        heads = [c.name for c in self.columns]
        out = ["# Development results", "", "Runs (one column each):", ""]
        out += [f"- {line}" for line in self.protocol_lines()]
        for title, first, rows in ((self.title1(), "Metric", self.table1()), (self.title2(), "Class", self.table2())):
            out += ["", title, "", _md_row([first, *heads]), _md_row(["---", *(["---:"] * len(heads))])]
            out += [_md_row(row) for row in rows]
        return "\n".join(out) + "\n"

    def latex(self) -> str:
        spec = "l" + "r" * len(self.columns)
        heads = " & ".join(_tex(c.name) for c in self.columns)
        out = ["% Development results written by `bst report`."]
        out += [f"% {_tex_comment(line)}" for line in self.protocol_lines()]
        for title, first, rows in ((self.title1(), "Metric", self.table1()), (self.title2(), "Class", self.table2())):
            out += ["", f"% {_tex_comment(title)}", f"\\begin{{tabular}}{{{spec}}}", "\\hline",
                    f"{first} & {heads} \\\\", "\\hline"]
            out += [" & ".join(_tex(cell) for cell in row) + " \\\\" for row in rows]
            out += ["\\hline", "\\end{tabular}"]
        return "\n".join(out) + "\n"

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for c in self.columns:
            common = (c.name, c.dataset, c.mode, c.folds, repr(c.lam), c.absent)
            for metric, _label in TABLE1_METRICS:
                mean, std = c.summary[metric]
                writer.writerow(("1", metric, *common, _num(mean), _num(std)))
            for key in CLASS_KEYS:
                writer.writerow(("2", key, *common, _num(c.class_hf[key]), ""))
        return buffer.getvalue()

    def render(self, suffix: str) -> str:
        suffix = suffix.lower()
        if suffix == ".md":
            return self.markdown()
        if suffix == ".tex":
            return self.latex()
        if suffix == ".csv":
            return self.csv_text()
        raise BadInputError(f"Unknown report format {suffix!r}: name the output FILE.md, FILE.csv or FILE.tex.")


def build_report(results: Sequence[CrossValResult]) -> RunReport:
    """The report of already loaded runs (e.g. the app's open runs)."""
    if not results:
        raise BadInputError("Give at least one run folder to report.")
    return RunReport([column(r, name) for r, name in zip(results, _names(results), strict=True)])


def report_runs(run_dirs: Sequence[str | os.PathLike[str]]) -> RunReport:
    """Load each run folder (``pipeline.load_run``) and build its report."""
    from bst_core import pipeline

    return build_report([pipeline.load_run(run) for run in run_dirs])


def write_report(report: RunReport, out: str | os.PathLike[str]) -> Path:
    """Write ``report`` in the format of ``out``'s suffix (atomically); returns the path."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise BadInputError(f"{out}: unknown report format {out.suffix or '(no suffix)'!r}; "
                            "name the output FILE.md, FILE.csv or FILE.tex.")
    atomic.write_text(out, report.render(out.suffix))
    return out


def _pct(value: float, digits: int = 2) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}"


def _pm(mean: float, std: float) -> str:
    return "–" if math.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def _num(value: float) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "±": r"$\pm$", "–": "--", "λ": r"$\lambda$"}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def _tex_comment(text: str) -> str:
    return str(text).replace("\n", " ")


__all__ = ["CSV_COLUMNS", "FORMATS", "TABLE1_METRICS", "RunColumn", "RunReport", "build_report", "class_hf",
           "column", "report_runs", "write_report"]
