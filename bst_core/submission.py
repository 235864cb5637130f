"""The DCASE 2026 Task 1 submission package: validated CSV + meta YAML in ``task1/<label>/``.

A package is ``<out_dir>/task1/<label>/<label>.output.csv`` (header
``id,predicted_bst_second_level_class,prediction_score``, one row per evaluation id) and
``<label>.meta.yaml`` (submission, system and development results). Everything is validated
before anything is written; a refused package leaves no file and no folder behind, and the two
files appear together or not at all (:func:`bst_core.atomic.write_files_together`).

Development results (percent, 2 decimals) go under the official key of the dataset they were
measured on (:data:`OFFICIAL_DEV_KEYS`: BSD10k → ``bsd10k-v1.2``, BSD35k-CS → ``bsd35k-cs``). Results
of any other corpus (synthetic, a subset, unknown) are never filed under an official key: the official
keys stay null placeholders and the figures go under the top-level key
:data:`UNOFFICIAL_RESULTS_KEY`, with the corpus name. The system description is written from
:class:`SystemFacts` of the actual run; without facts it holds "fill in" placeholders, never a claim.
"""

from __future__ import annotations

import copy
import io
import math
import numbers
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import yaml

from bst_core import atomic
from bst_core.corpus import CLAP_ENCODER, EncoderInfo
from bst_core.errors import BadInputError
from bst_core.metrics import ABSENT_DESCRIPTIONS, RANKING_LAMBDA, MetricReport
from bst_core.taxonomy import CLASS_KEYS, classify_label

LABEL_PATTERN = r"^[A-Za-z]+_[A-Za-z0-9]+_task1_[1-4]$"
"""The system label; always matched with ``re.fullmatch`` (:func:`is_valid_label`): ``$`` alone
would accept a trailing newline."""
LABEL_EXAMPLE = "Zheng_SCUT_task1_1"
SUBMISSION_COLUMNS: tuple[str, ...] = ("id", "predicted_bst_second_level_class", "prediction_score")
TRUTH_COLUMNS: tuple[str, ...] = ("id", "class")
MAX_SYSTEMS = 4
SCORE_FORMAT = "%.6f"
OFFICIAL_DEV_KEYS: dict[str, str] = {"BSD10k": "bsd10k-v1.2", "BSD35k-CS": "bsd35k-cs"}
"""Official development dataset name (``corpus.dataset``) → its key in ``results.development_datasets``."""
CLASS_WISE_KEYS = frozenset({"bsd10k-v1.2"})
"""Official keys whose template has ``class_wise`` results (bsd35k-cs has ``overall`` only)."""
UNOFFICIAL_RESULTS_KEY = "unofficial_development_results"
"""Top-level meta.yaml key for development results of a corpus that is not an official dataset."""
FIGURES: tuple[str, ...] = ("hP", "hR", "hF")
MODES: tuple[str, ...] = ("both", "audio", "text")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
_FILL_IN = "(fill in)"
_EXAMPLES = 5

PLACEHOLDER_SYSTEM: dict[str, Any] = {
    "source_code": "https://github.com/<user>/<repository> (fill in, or leave empty)",
    "description": {name: _FILL_IN for name in (
        "input_sampling_rate", "audio_representation", "text_representation", "data_augmentation",
        "machine_learning_method", "external_data_usage", "hierarchical_setting")},
}
"""``system`` when no :class:`SystemFacts` are given: placeholders only."""


@dataclass(frozen=True)
class SystemFacts:
    """What the submitted system is, from the run and the encoder; meta.yaml's description is built from it.

    ``n_models``: models whose probabilities are averaged (the run's fold models; 1 = one model).
    ``encoder``: the embeddings the models read (``RunFolder.encoder``). ``input_sampling_rate``: the
    rate the encoder reads audio at, as text (e.g. ``"48kHz"``). ``mode``: ``TrainConfig.mode``.
    ``augmentation``: what training did, as text (``"none"`` when ``TrainConfig.augment`` is off).
    ``precision``: inference precision, ``"fp32"`` or ``"bf16"``. ``parameters_per_model``: optional;
    when given, ``total_parameters`` must be ``n_models × parameters_per_model``.
    """

    n_models: int
    encoder: EncoderInfo
    input_sampling_rate: str
    mode: str = "both"
    augmentation: str = "none"
    precision: str = "fp32"
    parameters_per_model: int | None = None

    def problems(self) -> list[str]:
        """What makes these facts unusable, in words."""
        out = []
        if not _positive_int(self.n_models):
            out.append(f"SystemFacts.n_models must be a positive whole number, not {self.n_models!r}.")
        if not isinstance(self.encoder, EncoderInfo):
            out.append("SystemFacts.encoder must be an EncoderInfo (the run's encoder).")
        for name in ("input_sampling_rate", "augmentation"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                out.append(f"SystemFacts.{name} must be a non-empty text, not {value!r}.")
        if self.mode not in MODES:
            out.append(f"SystemFacts.mode must be one of {', '.join(MODES)}, not {self.mode!r}.")
        if self.precision not in PRECISIONS:
            out.append(f"SystemFacts.precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}.")
        if self.parameters_per_model is not None and not _positive_int(self.parameters_per_model):
            out.append(f"SystemFacts.parameters_per_model must be a positive whole number, "
                       f"not {self.parameters_per_model!r}.")
        return out

    def description(self) -> dict[str, str]:
        """The ``system.description`` mapping these facts support."""
        clap = self.encoder == CLAP_ENCODER
        label = self.encoder.label
        if self.mode == "text":
            audio = "none (text-only system)"
        elif clap:
            audio = f"LAION-CLAP audio embeddings (630k-audioset-fusion-best, frozen, {self.encoder.audio_dim}-d)"
        else:
            audio = f"{label} audio features (not CLAP)"
        if self.mode == "audio":
            text = "none (audio-only system)"
        elif clap:
            text = (f"LAION-CLAP text embeddings of title, tags and description (frozen, "
                    f"{self.encoder.text_dim}-d)")
        else:
            text = f"{label} text features of title, tags and description (not CLAP)"
        if self.mode == "both":
            method = "HATR (both mode: an embedding encoder per modality, attention fusion, residual head)"
        else:
            method = f"HATR ({self.mode} mode: embedding encoder, residual head)"
        each = (f" of {self.parameters_per_model:,} parameters each" if self.parameters_per_model else "")
        if self.n_models > 1:
            method += f"; ensemble (mean of probabilities) of {self.n_models} cross-validation fold models{each}"
        else:
            method += "; a single model" + (f" of {self.parameters_per_model:,} parameters"
                                             if self.parameters_per_model else "")
        if self.precision == "bf16":
            method += "; inference in bfloat16"
        if clap:
            external = "pre-trained LAION-CLAP checkpoint (630k-audioset-fusion-best)"
        elif self.encoder.name.startswith("offline-"):
            external = "none"
        else:
            external = f"{_FILL_IN}: pre-trained weights or data used by {label}"
        return {
            "input_sampling_rate": self.input_sampling_rate.strip(),
            "audio_representation": audio,
            "text_representation": text,
            "data_augmentation": self.augmentation.strip(),
            "machine_learning_method": method,
            "external_data_usage": external,
            "hierarchical_setting": "flat: softmax cross-entropy over the 23 second-level classes "
                                    "(the top level follows from the predicted key)",
        }


class PredictionsLike(Protocol):
    """What :func:`write_package` needs from predictions (``bst_core.ensemble.Predictions`` fits)."""

    @property
    def ids(self) -> Sequence[str]: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def scores(self) -> np.ndarray: ...


def label_parts(label: str) -> tuple[str, str, int]:
    """``"Zheng_SCUT_task1_1"`` → ``("Zheng", "SCUT", 1)``; BadInputError for a malformed label."""
    if not isinstance(label, str) or not re.match(LABEL_PATTERN, label):
        raise BadInputError(_label_problem(label))
    lastname, abbreviation, _, number = label.split("_")
    return lastname, abbreviation, int(number)


def validate_submission(frame: pd.DataFrame, eval_ids: Sequence[str] | None, label: str) -> list[str]:
    """Every reason the challenge would refuse this submission, in words (empty list: valid).

    Checks the label, the columns, that every evaluation id appears exactly once (missing, extra and
    duplicate ids listed with counts and examples), that classes are among the 23 keys and that
    scores are finite numbers in [0, 1]. ``eval_ids=None`` skips the missing/extra checks.
    """
    problems: list[str] = []
    if not isinstance(label, str) or not re.match(LABEL_PATTERN, label):
        problems.append(_label_problem(label))
    missing_columns = [c for c in SUBMISSION_COLUMNS if c not in frame.columns]
    if missing_columns:
        problems.append(f"Columns missing: {', '.join(missing_columns)} "
                        f"(the header must be {','.join(SUBMISSION_COLUMNS)}).")
        return problems
    if len(frame) == 0:
        problems.append("The submission has no rows.")

    ids = [str(x) for x in frame["id"]]
    empty = sum(1 for x in ids if not x.strip())
    if empty:
        problems.append(f"{empty} row(s) have an empty id.")
    counts = Counter(ids)
    duplicates = {i: n for i, n in counts.items() if n > 1}
    if duplicates:
        shown = ", ".join(f"{i!r} ×{n}" for i, n in list(duplicates.items())[:_EXAMPLES])
        problems.append(f"{len(duplicates)} id(s) appear more than once: {shown}{_more(duplicates)}.")
    if eval_ids is not None:
        expected = [str(x) for x in eval_ids]
        if not expected:
            problems.append("The evaluation id list is empty: nothing to submit against.")
        expected_counts = Counter(expected)
        repeated = [i for i, n in expected_counts.items() if n > 1]
        if repeated:
            problems.append(f"The evaluation id list itself repeats {len(repeated)} id(s): "
                            f"{_examples(repeated)}.")
        missing = [i for i in expected_counts if i not in counts]
        if missing:
            problems.append(f"{len(missing)} evaluation id(s) have no prediction: {_examples(missing)}.")
        extra = [i for i in counts if i not in expected_counts]
        if extra:
            problems.append(f"{len(extra)} id(s) are not evaluation ids: {_examples(extra)}.")

    labels = frame["predicted_bst_second_level_class"]
    bad_labels = [x for x in labels if not (isinstance(x, str) and x in CLASS_KEYS)]
    if bad_labels:
        distinct = list(dict.fromkeys(bad_labels))
        hint = (" '-other' labels are not targets: predict one of the 23 second-level keys."
                if any(classify_label(x) == "other" for x in distinct) else "")
        problems.append(f"{len(bad_labels)} row(s) have a class that is not one of the 23 BST keys: "
                        f"{_examples(distinct)}.{hint}")

    raw_scores = frame["prediction_score"]
    scores = pd.to_numeric(raw_scores, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    not_numbers = ~np.isfinite(scores)
    if not_numbers.any():
        shown = list(dict.fromkeys(str(x) for x in np.asarray(raw_scores, dtype=object)[not_numbers]))
        problems.append(f"{int(not_numbers.sum())} score(s) are missing or not finite numbers: "
                        f"{_examples(shown)}.")
    out_of_range = np.isfinite(scores) & ((scores < 0) | (scores > 1))
    if out_of_range.any():
        problems.append(f"{int(out_of_range.sum())} score(s) lie outside [0, 1]: "
                        f"{_examples([f'{s:g}' for s in scores[out_of_range]])}.")
    return problems


def submission_frame(predictions: PredictionsLike) -> pd.DataFrame:
    """The three submission columns from predictions, in their own order (not yet validated)."""
    ids, labels = list(predictions.ids), list(predictions.labels)
    scores = np.asarray(predictions.scores, dtype=float).reshape(-1)
    if not (len(ids) == len(labels) == len(scores)):
        raise BadInputError(f"The predictions are inconsistent: {len(ids)} ids, {len(labels)} labels, "
                            f"{len(scores)} scores. Predict again.")
    return pd.DataFrame({
        "id": pd.Series([str(i) for i in ids], dtype=object),
        "predicted_bst_second_level_class": pd.Series(labels, dtype=object),
        "prediction_score": scores,
    })


def write_package(out_dir: str | Path, label: str, predictions: PredictionsLike, eval_ids: Sequence[str], *,
                  dev_report: MetricReport | None = None, total_parameters: int,
                  system: Mapping[str, Any] | None = None,
                  authors: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Validate, then write ``<out_dir>/task1/<label>/<label>.output.csv`` and ``.meta.yaml``.

    Rows follow ``eval_ids``. ``dev_report`` fills the BSD10k development results (percent, 2
    decimals); ``system`` is merged over :data:`DEFAULT_SYSTEM`; ``authors`` replaces the
    placeholder author. Raises :class:`BadInputError` listing every problem, writing nothing.
    Returns the package folder.
    """
    package_dir = Path(out_dir) / "task1" / str(label)
    if eval_ids is None:
        raise BadInputError("write_package needs the evaluation ids (anonymous_id of every evaluation file).")
    frame = submission_frame(predictions)
    problems = validate_submission(frame, eval_ids, label)
    if isinstance(total_parameters, bool) or not isinstance(total_parameters, int | np.integer) \
            or total_parameters <= 0:
        problems.append(f"total_parameters must be a positive whole number, not {total_parameters!r}.")
    if dev_report is not None and not isinstance(dev_report, MetricReport):
        problems.append("dev_report must be a MetricReport (or None).")
    problems += _other_systems_problem(package_dir)
    if problems:
        raise BadInputError(f"The submission {package_dir} was not written; fix these problems first:\n"
                            + "\n".join(f"- {p}" for p in problems))

    ordered = frame.set_index("id").loc[[str(i) for i in eval_ids]].reset_index()
    csv_text = _csv_text(ordered)
    try:
        yaml_text = meta_yaml_text(label, dev_report=dev_report, total_parameters=int(total_parameters),
                                   system=system, authors=authors)
    except yaml.YAMLError as exc:
        raise BadInputError(f"The submission {package_dir} was not written: the system or author details "
                            f"cannot be saved as YAML ({exc}); use plain text, numbers, lists and "
                            "mappings.") from exc
    atomic.write_text(package_dir / f"{label}.output.csv", csv_text)
    atomic.write_text(package_dir / f"{label}.meta.yaml", yaml_text)
    return package_dir


def meta_yaml_text(label: str, *, dev_report: MetricReport | None, total_parameters: int,
                   system: Mapping[str, Any] | None = None,
                   authors: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The ``<label>.meta.yaml`` text: a comment header, then the structure participants use."""
    lastname, abbreviation, number = label_parts(label)
    meta = {
        "submission": {
            "label": label,
            "name": f"{abbreviation} system {number}",
            "abbreviation": f"{abbreviation}_{number}",
            "authors": ([dict(a) for a in authors] if authors
                        else [_placeholder_author(lastname, abbreviation)]),
        },
        "system": _merged(DEFAULT_SYSTEM, dict(system or {})),
        "results": {"development_datasets": {
            "bsd10k-v1.2": _dev_results(dev_report),
            "bsd35k-cs": {"overall": {"hP": None, "hR": None, "hF": None}},
        }},
    }
    meta["system"]["complexity"] = {"total_parameters": int(total_parameters)}
    return _yaml_header(label, dev_report) + yaml.safe_dump(
        meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def read_submission_csv(path: str | Path) -> pd.DataFrame:
    """Read a submission CSV (ids as str, scores as floats, NaN where not a number).

    Raises :class:`BadInputError` naming the file if it is missing, unreadable or has another header.
    """
    frame = _read_csv(path, "submission")
    if tuple(frame.columns) != SUBMISSION_COLUMNS:
        raise BadInputError(f"{path}: the header is {','.join(map(str, frame.columns))!r}; a submission "
                            f"CSV must start with {','.join(SUBMISSION_COLUMNS)!r}.")
    frame["prediction_score"] = pd.to_numeric(frame["prediction_score"], errors="coerce").astype(float)
    return frame


def read_truth_csv(path: str | Path) -> pd.DataFrame:
    """Read a ground-truth CSV with columns ``id,class`` (others kept; ids as str)."""
    frame = _read_csv(path, "ground-truth")
    missing = [c for c in TRUTH_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInputError(f"{path}: column(s) {', '.join(missing)} missing; a ground-truth CSV needs "
                            f"the columns {','.join(TRUTH_COLUMNS)} (other columns are ignored).")
    return frame


def validate_package_dir(package_dir: str | Path, eval_ids: Sequence[str] | None = None) -> list[str]:
    """Re-read a written package folder and list its problems (empty list: valid)."""
    folder = Path(package_dir)
    label = folder.name
    if not folder.is_dir():
        return [f"{folder} is not a folder."]
    problems: list[str] = []
    if folder.parent.name != "task1":
        problems.append(f"{folder} should sit inside a folder named task1 (task1/{label}/).")
    csv_path, yaml_path = folder / f"{label}.output.csv", folder / f"{label}.meta.yaml"
    if not csv_path.is_file():
        problems.append(f"{csv_path.name} is missing from {folder}.")
    else:
        try:
            problems += [f"{csv_path.name}: {p}" for p in
                         validate_submission(read_submission_csv(csv_path), eval_ids, label)]
        except BadInputError as exc:
            problems.append(str(exc))
    if not yaml_path.is_file():
        problems.append(f"{yaml_path.name} is missing from {folder}.")
    else:
        problems += [f"{yaml_path.name}: {p}" for p in _meta_problems(yaml_path, label)]
    return problems


def _meta_problems(path: Path, label: str) -> list[str]:
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [f"cannot be read as YAML ({exc})."]
    if not isinstance(meta, dict):
        return ["is not a YAML mapping (expected submission, system and results sections)."]
    problems = [f"section {key!r} is missing." for key in ("submission", "system", "results")
                if not isinstance(meta.get(key), dict)]
    if problems:
        return problems
    if meta["submission"].get("label") != label:
        written = meta["submission"].get("label")
        problems.append(f"submission.label is {written!r}, not the folder's {label!r}.")
    if not meta["submission"].get("authors"):
        problems.append("submission.authors is empty.")
    parameters = (meta["system"].get("complexity") or {}).get("total_parameters")
    if not isinstance(parameters, int) or isinstance(parameters, bool) or parameters <= 0:
        problems.append(f"system.complexity.total_parameters is {parameters!r}, not a positive whole number.")
    development = (meta["results"].get("development_datasets") or {})
    if "bsd10k-v1.2" not in development:
        problems.append("results.development_datasets.bsd10k-v1.2 is missing.")
    return problems


def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such {what} CSV file; check the path.") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInputError(f"{path}: cannot be read as a {what} CSV ({exc}); save it as UTF-8 CSV "
                            "with a header row.") from exc


def _csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.loc[:, list(SUBMISSION_COLUMNS)].to_csv(buffer, index=False, lineterminator="\n",
                                                  float_format=SCORE_FORMAT)
    return buffer.getvalue()


def _dev_results(report: MetricReport | None) -> dict[str, Any]:
    if report is None:
        return {"overall": {"hP": None, "hR": None, "hF": None},
                "class_wise": {key: {"hP": None, "hR": None, "hF": None} for key in CLASS_KEYS}}
    return {
        "overall": {name: _percent(getattr(report, name)) for name in ("hP", "hR", "hF")},
        "class_wise": {str(key): {name: _percent(row[name]) for name in ("hP", "hR", "hF")}
                       for key, row in report.per_class.iterrows()},
    }


def _yaml_header(label: str, report: MetricReport | None) -> str:
    lines = [f"# DCASE 2026 Task 1 submission {label}, written by BST Studio.",
             "# Fill in the author placeholders and the system description before submitting."]
    if report is None:
        lines.append("# No development results were given: fill results.development_datasets in.")
    else:
        mode = ABSENT_DESCRIPTIONS.get(report.absent, report.absent)
        lines.append(f"# Development results in percent (2 decimals), λ = {report.lam:g}, "
                     f"n = {report.n}; absent-class mode: {mode}.")
        if report.dropped:
            lines.append(f"# Classes never predicted, dropped from the means: {', '.join(report.dropped)}.")
        if report.lam != RANKING_LAMBDA:
            lines.append(f"# Note: the challenge ranks with λ = {RANKING_LAMBDA:g}.")
    lines.append("# results.development_datasets.bsd35k-cs is a placeholder (null): fill it in or leave it.")
    return "\n".join(lines) + "\n"


def _placeholder_author(lastname: str, abbreviation: str) -> dict[str, Any]:
    return {
        "lastname": lastname, "firstname": "Firstname", "email": "firstname.lastname@example.org",
        "corresponding": True,
        "affiliation": {"abbreviation": abbreviation, "institute": "Institute",
                        "department": "Department", "location": "City, Country"},
    }


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _other_systems_problem(package_dir: Path) -> list[str]:
    task_dir = package_dir.parent
    if not task_dir.is_dir():
        return []
    others = sorted(p.name for p in task_dir.iterdir()
                    if p.is_dir() and p.name != package_dir.name and re.match(LABEL_PATTERN, p.name))
    if len(others) >= MAX_SYSTEMS:
        return [f"{task_dir} already holds {len(others)} systems ({', '.join(others)}); the challenge "
                f"accepts at most {MAX_SYSTEMS}: remove one or choose another output folder."]
    return []


def _label_problem(label: object) -> str:
    return (f"The label {label!r} does not have the form Lastname_Abbreviation_task1_N "
            "(letters, then letters or digits, then task1 and a system number 1 to 4), "
            f"e.g. {LABEL_EXAMPLE}.")


def _percent(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(100 * value, 2)


def _examples(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:_EXAMPLES])
    return shown + _more(values)


def _more(values: Sequence[Any] | Mapping[Any, Any]) -> str:
    return f", ... ({len(values) - _EXAMPLES} more)" if len(values) > _EXAMPLES else ""
