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
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import yaml

from bst_core import atomic
from bst_core.corpus import CLAP_ENCODER, EncoderInfo
from bst_core.errors import BadInputError
from bst_core.metrics import ABSENT_DESCRIPTIONS, RANKING_LAMBDA, MetricReport
from bst_core.taxonomy import CLASS_KEYS, classify_label

if TYPE_CHECKING:
    from bst_core.corpus import Corpus
    from bst_core.runs import CrossValResult

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


def is_valid_label(label: object) -> bool:
    """True for a label of the form ``Lastname_Abbreviation_task1_N`` (whole string, no trailing newline)."""
    return isinstance(label, str) and re.fullmatch(LABEL_PATTERN, label) is not None


def official_dev_key(dev_dataset: str | None) -> str | None:
    """The official ``results.development_datasets`` key of an official dataset name, else None.

    Only the exact official names count (``"BSD10k"``, ``"BSD35k-CS"``, or their keys); a synthetic,
    partial or unknown corpus has none.
    """
    if not isinstance(dev_dataset, str):
        return None
    name = dev_dataset.strip()
    return OFFICIAL_DEV_KEYS.get(name) or (name if name in OFFICIAL_DEV_KEYS.values() else None)


def check_label(label: object) -> None:
    """Raise :class:`BadInputError` explaining the form unless ``label`` is a valid system label."""
    if not is_valid_label(label):
        raise BadInputError(_label_problem(label))


def label_parts(label: str) -> tuple[str, str, int]:
    """``"Zheng_SCUT_task1_1"`` → ``("Zheng", "SCUT", 1)``; BadInputError for a malformed label."""
    if not is_valid_label(label):
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
    if not is_valid_label(label):
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
                  total_parameters: int, dev_report: MetricReport | None = None, dev_dataset: str | None = None,
                  facts: SystemFacts | None = None, system: Mapping[str, Any] | None = None,
                  authors: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Validate, then write ``<out_dir>/task1/<label>/<label>.output.csv`` and ``.meta.yaml`` together.

    ``eval_ids``: the evaluation set's ids read from its metadata (rows follow them).
    ``total_parameters``: of the whole submitted system (all ensemble members). ``dev_report``: the
    development results (e.g. :func:`bst_core.dev_results.development_report`), filed by
    ``dev_dataset`` (see :func:`meta_yaml_text`). ``facts`` describe the system; ``system`` is merged
    over the description built from them; ``authors`` replaces the placeholder author. Raises
    :class:`BadInputError` listing every problem, writing nothing (a full disk too). Returns the folder.
    """
    problems: list[str] = []
    if not is_valid_label(label):
        problems.append(_label_problem(label))
    if eval_ids is None:
        raise BadInputError("write_package needs the evaluation ids (anonymous_id of every evaluation file).")
    frame = submission_frame(predictions)
    problems += [p for p in validate_submission(frame, eval_ids, label) if p not in problems]
    if not _positive_int(total_parameters):
        problems.append(f"total_parameters must be a positive whole number, not {total_parameters!r}.")
    if dev_report is not None and not isinstance(dev_report, MetricReport):
        problems.append("dev_report must be a MetricReport (or None).")
    if facts is not None:
        problems += facts.problems()
        if (not problems and facts.parameters_per_model
                and int(total_parameters) != facts.n_models * facts.parameters_per_model):
            problems.append(f"total_parameters is {total_parameters:,} but the facts say {facts.n_models} "
                            f"models of {facts.parameters_per_model:,} parameters.")
    package_dir = Path(out_dir) / "task1" / (label if is_valid_label(label) else "<label>")
    if is_valid_label(label):
        problems += _other_systems_problem(package_dir)
    if problems:
        raise BadInputError(f"The submission {package_dir} was not written; fix these problems first:\n"
                            + "\n".join(f"- {p}" for p in problems))

    ordered = frame.set_index("id").loc[[str(i) for i in eval_ids]].reset_index()
    csv_text = _csv_text(ordered)
    try:
        yaml_text = meta_yaml_text(label, dev_report=dev_report, dev_dataset=dev_dataset,
                                   total_parameters=int(total_parameters), facts=facts, system=system,
                                   authors=authors)
    except yaml.YAMLError as exc:
        raise BadInputError(f"The submission {package_dir} was not written: the system or author details "
                            f"cannot be saved as YAML ({exc}); use plain text, numbers, lists and "
                            "mappings.") from exc
    return atomic.write_files_together(package_dir, {f"{label}.output.csv": csv_text,
                                                     f"{label}.meta.yaml": yaml_text})


def write_validated_package(out_dir: str | Path, label: str, predictions: Any, corpus: Corpus,
                            result: CrossValResult, *, authors: Sequence[Mapping[str, Any]] | None = None,
                            system: Mapping[str, Any] | None = None) -> Path:
    """Write the package of a run's ensemble predictions of the evaluation corpus, then re-read and validate it.

    ``predictions``: ``bst_core.predictions.Predictions`` of ``corpus`` (``n_models``,
    ``parameters_per_model``, ``precision``). ``corpus``: the evaluation set as read from its metadata;
    its ids are the ids checked. ``result``: the run (:class:`bst_core.runs.CrossValResult`): its fold
    reports give the development results, filed by its dataset (:func:`development_dataset_name`), its
    encoder and config the system facts. Raises :class:`BadInputError` listing every problem.
    """
    from bst_core.dev_results import development_report

    facts = system_facts(result, n_models=int(predictions.n_models),
                         parameters_per_model=int(predictions.parameters_per_model) or None,
                         precision=str(getattr(predictions, "precision", "fp32")))
    dev_report = development_report(result.fold_reports, result.report) if result.fold_reports else None
    eval_ids = list(corpus.ids)
    package = write_package(out_dir, label, predictions, eval_ids,
                            total_parameters=int(predictions.n_models) * int(predictions.parameters_per_model),
                            dev_report=dev_report, dev_dataset=development_dataset_name(result),
                            facts=facts, system=system, authors=authors)
    problems = validate_package(package, eval_ids)
    if problems:
        raise BadInputError(f"The package {package} was written but does not validate:\n"
                            + "\n".join(f"- {p}" for p in problems))
    return package


def system_facts(result: CrossValResult, *, n_models: int, parameters_per_model: int | None = None,
                 precision: str = "fp32") -> SystemFacts:
    """:class:`SystemFacts` of a run (encoder, mode, augmentation) and of how it predicted."""
    augmentation = "none"
    if result.config.augment:
        from bst_core.config import AUGMENT_MASK_FRACTION, AUGMENT_NOISE_STD

        augmentation = (f"Gaussian noise on the embeddings (std {AUGMENT_NOISE_STD:g}), then each dimension "
                        f"zeroed with probability {AUGMENT_MASK_FRACTION:g}")
    return SystemFacts(n_models=n_models, encoder=result.encoder, input_sampling_rate=input_sampling_rate(
        result.encoder), mode=result.config.mode, augmentation=augmentation, precision=precision,
        parameters_per_model=parameters_per_model)


def input_sampling_rate(encoder: EncoderInfo) -> str:
    """The rate ``encoder`` reads audio at, as meta.yaml text ("(fill in)" for an encoder it does not know)."""
    if encoder == CLAP_ENCODER:
        return "48kHz (CLAP resamples the 44.1kHz audio)"
    if encoder.name == "offline-logmel-ngram":
        from bst_core.encoders.offline import SAMPLE_RATE

        return f"{SAMPLE_RATE / 1000:g}kHz (the offline encoder resamples the audio)"
    return f"{_FILL_IN}: the rate {encoder.label} reads audio at"


def development_dataset_name(result: CrossValResult) -> str:
    """The official name of the dataset a run was trained on ("BSD10k", "BSD35k-CS"), else a description
    of it that is never an official name (synthetic, partial or unknown corpora)."""
    if result.dataset in OFFICIAL_DEV_KEYS and not result.synthetic:
        return result.dataset
    base = Path(result.dataset_root).name if result.dataset_root else "an unnamed corpus"
    return f"{base} (synthetic)" if result.synthetic else f"{base} (not an official dataset)"


def meta_yaml_text(label: str, *, dev_report: MetricReport | None, total_parameters: int,
                   dev_dataset: str | None = None, facts: SystemFacts | None = None,
                   system: Mapping[str, Any] | None = None,
                   authors: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The ``<label>.meta.yaml`` text: a comment header, then the structure participants use.

    ``dev_dataset`` names the corpus ``dev_report`` was measured on: an official name (``"BSD10k"``,
    ``"BSD35k-CS"``) files it under that official key; anything else (``""``, a synthetic or partial
    corpus, None) files it under :data:`UNOFFICIAL_RESULTS_KEY` and leaves the official keys null.
    """
    lastname, abbreviation, number = label_parts(label)
    key = official_dev_key(dev_dataset) if dev_report is not None else None
    development: dict[str, Any] = {}
    for official in OFFICIAL_DEV_KEYS.values():
        results = _dev_results(dev_report if official == key else None)
        if official not in CLASS_WISE_KEYS:
            results.pop("class_wise")
        development[official] = results
    description = facts.description() if facts is not None else PLACEHOLDER_SYSTEM["description"]
    base = {"source_code": PLACEHOLDER_SYSTEM["source_code"], "description": description}
    meta: dict[str, Any] = {
        "submission": {
            "label": label,
            "name": f"{abbreviation} system {number}",
            "abbreviation": f"{abbreviation}_{number}",
            "authors": ([dict(a) for a in authors] if authors
                        else [_placeholder_author(lastname, abbreviation)]),
        },
        "system": _merged(base, dict(system or {})),
        "results": {"development_datasets": development},
    }
    meta["system"]["complexity"] = {"total_parameters": int(total_parameters)}
    if dev_report is not None and key is None:
        meta[UNOFFICIAL_RESULTS_KEY] = {"dataset": _dataset_name(dev_dataset), **_dev_results(dev_report)}
    return _yaml_header(label, dev_report, dev_dataset, key) + yaml.safe_dump(
        meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def read_eval_ids(eval_root: str | Path) -> list[str]:
    """The ``anonymous_id`` column of an evaluation folder's metadata (``metadata/BSD2k_metadata.csv``).

    These, not ids taken from predictions, are what a package is validated against.
    """
    from bst_core.sources.bsd import read_metadata_csv
    from bst_core.sources.evaluation import ID_COLUMN, find_evaluation_metadata

    root = Path(eval_root)
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder: give the evaluation set's root folder.")
    path = find_evaluation_metadata(root)
    frame = read_metadata_csv(path)
    if ID_COLUMN not in frame.columns:
        raise BadInputError(f"{path} has no {ID_COLUMN} column: use the evaluation set's original metadata.")
    return [str(i).strip() for i in frame[ID_COLUMN]]


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


def validate_package(package_dir: str | Path, eval_ids: Sequence[str] | None = None) -> list[str]:
    """Re-read a package folder ``task1/<label>/`` and list every problem (empty list: valid).

    ``eval_ids``: the ids read from the evaluation metadata (:func:`read_eval_ids`); None skips the
    missing/extra id checks. Checks the CSV (:func:`validate_submission`), the names (folder, files and
    ``submission.label`` agree) and meta.yaml's values: every number finite, ``total_parameters`` a
    positive whole number, result figures null or percentages in [0, 100], only official dataset keys.
    """
    folder = Path(package_dir)
    label = folder.name
    if not folder.is_dir():
        return [f"{folder} is not a folder."]
    problems: list[str] = []
    if folder.parent.name != "task1":
        problems.append(f"{folder} should sit inside a folder named task1 (task1/{label}/).")
    if not is_valid_label(label):
        problems.append(f"The folder name: {_label_problem(label)}")
    for path in sorted(folder.iterdir()):
        for suffix in (".output.csv", ".meta.yaml"):
            if path.name.endswith(suffix) and path.name != f"{label}{suffix}":
                problems.append(f"{path.name} does not match the folder's label {label!r}: a package holds "
                                f"{label}{suffix}.")
    csv_path, yaml_path = folder / f"{label}.output.csv", folder / f"{label}.meta.yaml"
    if not csv_path.is_file():
        problems.append(f"{csv_path.name} is missing from {folder}.")
    else:
        try:
            problems += [f"{csv_path.name}: {p}" for p in
                         validate_submission(read_submission_csv(csv_path), eval_ids, label)
                         if is_valid_label(label) or not p.startswith("The label ")]
        except BadInputError as exc:
            problems.append(str(exc))
    if not yaml_path.is_file():
        problems.append(f"{yaml_path.name} is missing from {folder}.")
    else:
        problems += [f"{yaml_path.name}: {p}" for p in _meta_problems(yaml_path, label)]
    return problems


validate_package_dir = validate_package
"""Former name of :func:`validate_package`."""


def _meta_problems(path: Path, label: str) -> list[str]:
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [f"cannot be read as YAML ({exc})."]
    if not isinstance(meta, dict):
        return ["is not a YAML mapping (expected submission, system and results sections)."]
    problems = [f"{where} is {value!r}, not a finite number." for where, value in _non_finite(meta)]
    problems += [f"section {key!r} is missing." for key in ("submission", "system", "results")
                 if not isinstance(meta.get(key), dict)]
    head = meta.get("submission")
    if isinstance(head, dict):
        written = head.get("label")
        if written != label:
            problems.append(f"submission.label is {written!r}, not the folder's {label!r}.")
        if not head.get("authors"):
            problems.append("submission.authors is empty.")
    system = meta.get("system") if isinstance(meta.get("system"), dict) else None
    if system is not None:
        complexity = system.get("complexity")
        parameters = complexity.get("total_parameters") if isinstance(complexity, dict) else None
        if not _positive_int(parameters):
            problems.append(f"system.complexity.total_parameters is {parameters!r}, not a positive whole number.")
    results = meta.get("results") if isinstance(meta.get("results"), dict) else None
    if results is not None:
        development = results.get("development_datasets")
        if not isinstance(development, dict):
            problems.append("results.development_datasets is missing or not a mapping.")
        else:
            if "bsd10k-v1.2" not in development:
                problems.append("results.development_datasets.bsd10k-v1.2 is missing.")
            for key, block in development.items():
                where = f"results.development_datasets.{key}"
                if key not in OFFICIAL_DEV_KEYS.values():
                    problems.append(f"{where}: {key!r} is not an official development dataset key "
                                    f"({', '.join(OFFICIAL_DEV_KEYS.values())}); put other results under "
                                    f"{UNOFFICIAL_RESULTS_KEY}.")
                problems += _figure_problems(where, block)
    if UNOFFICIAL_RESULTS_KEY in meta:
        problems += _figure_problems(UNOFFICIAL_RESULTS_KEY, meta[UNOFFICIAL_RESULTS_KEY])
    return problems


def _figure_problems(where: str, block: Any) -> list[str]:
    """Result figures of one dataset block: each null or a percentage in [0, 100], not all fractions."""
    if not isinstance(block, dict):
        return [f"{where} is not a mapping (expected overall and class_wise figures)."]
    problems: list[str] = []
    groups: list[tuple[str, Any]] = [("overall", block.get("overall"))]
    class_wise = block.get("class_wise")
    if class_wise is not None:
        if not isinstance(class_wise, dict):
            problems.append(f"{where}.class_wise is not a mapping of class keys.")
        else:
            unknown = [str(k) for k in class_wise if k not in CLASS_KEYS]
            if unknown:
                problems.append(f"{where}.class_wise has keys that are not BST classes: {_examples(unknown)}.")
            groups += [(f"class_wise.{k}", v) for k, v in class_wise.items()]
    if block.get("overall") is None:
        problems.append(f"{where}.overall is missing.")
    values: dict[str, list[float]] = {"overall": [], "class_wise": []}
    for name, figures in groups:
        if figures is None and name == "overall":
            continue
        if not isinstance(figures, dict):
            problems.append(f"{where}.{name} is not a mapping of hP, hR, hF.")
            continue
        for figure, value in figures.items():
            spot = f"{where}.{name}.{figure}"
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                problems.append(f"{spot} is {value!r}, not a number (write a percentage, or null).")
            elif math.isfinite(value) and not 0 <= value <= 100:
                problems.append(f"{spot} is {value!r}, outside [0, 100] (results are percentages).")
            elif math.isfinite(value):
                values[name.split(".")[0]].append(float(value))
    for group, found in values.items():
        if found and max(found) <= 1 and any(v > 0 for v in found):
            problems.append(f"{where}.{group}: every figure is at most 1, so these look like fractions; "
                            "write percentages (e.g. 78.65, not 0.7865).")
    return problems


def _non_finite(obj: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` of every NaN or infinite number in a loaded YAML tree."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _non_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _non_finite(value, f"{where}[{index}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        yield where, obj


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
        return {"overall": dict.fromkeys(FIGURES),
                "class_wise": {key: dict.fromkeys(FIGURES) for key in CLASS_KEYS}}
    return {
        "overall": {name: _percent(getattr(report, name)) for name in FIGURES},
        "class_wise": {str(key): {name: _percent(row[name]) for name in FIGURES}
                       for key, row in report.per_class.iterrows()},
    }


def _dataset_name(dev_dataset: str | None) -> str:
    name = (dev_dataset or "").strip()
    return name or "unknown (not an official development dataset)"


def _yaml_header(label: str, report: MetricReport | None, dev_dataset: str | None, key: str | None) -> str:
    lines = [f"# DCASE 2026 Task 1 submission {label}, written by BST Studio.",
             "# Fill in the author placeholders and any '(fill in)' of the system description before submitting."]
    if report is None:
        lines.append("# No development results were given: fill results.development_datasets in.")
    else:
        if key is None:
            lines.append(f"# The development results below were measured on {_dataset_name(dev_dataset)}, which is "
                         "not an official development dataset:")
            lines.append(f"# they are under {UNOFFICIAL_RESULTS_KEY}, not results.development_datasets "
                         "(left null), and are not challenge results.")
        else:
            lines.append(f"# Development results of {dev_dataset} are under results.development_datasets.{key}"
                         + ("" if key in CLASS_WISE_KEYS else " (overall only, as the template has no class_wise)")
                         + ".")
        mode = ABSENT_DESCRIPTIONS.get(report.absent, report.absent)
        lines.append(f"# Figures in percent (2 decimals), λ = {report.lam:g}, n = {report.n}; "
                     f"absent-class mode: {mode}.")
        n_folds = getattr(report, "n_folds", 0)
        if n_folds:
            lines.append(f"# overall: mean of the {n_folds} cross-validation folds' figures.")
            lines.append(f"# class_wise: {getattr(report, 'class_wise', '')} (of {n_folds} folds).")
            if "folds" in report.per_class.columns:
                table = report.per_class
                fewer = [f"{k} {int(r.folds)}/{n_folds}" for k, r in table.iterrows() if 0 < int(r.folds) < n_folds]
                if fewer:
                    lines.append(f"# Classes averaged over fewer folds: {', '.join(fewer)}.")
                nowhere = [str(k) for k, r in table.iterrows() if int(r.folds) == 0 and int(r.n_true) > 0]
                if nowhere:
                    lines.append(f"# Classes in no fold's means (class_wise null): {', '.join(nowhere)}.")
            if report.dropped:
                lines.append(f"# Classes never predicted in some fold, left out of that fold's means: "
                             f"{', '.join(report.dropped)}.")
        else:
            lines.append("# overall and class_wise: one evaluation of all predictions (no fold means).")
            if report.dropped:
                lines.append(f"# Classes never predicted, dropped from the means: {', '.join(report.dropped)}.")
        if report.lam != RANKING_LAMBDA:
            lines.append(f"# Note: the challenge ranks with λ = {RANKING_LAMBDA:g}.")
    if key != "bsd35k-cs":
        lines.append("# results.development_datasets.bsd35k-cs is a placeholder (null): fill it in or leave it.")
    if key != "bsd10k-v1.2":
        lines.append("# results.development_datasets.bsd10k-v1.2 is a placeholder (null): fill it in or leave it.")
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
                    if p.is_dir() and p.name != package_dir.name and is_valid_label(p.name))
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
    return round(100 * value, 2) if math.isfinite(value) else None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0


def _examples(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:_EXAMPLES])
    return shown + _more(values)


def _more(values: Sequence[Any] | Mapping[Any, Any]) -> str:
    return f", ... ({len(values) - _EXAMPLES} more)" if len(values) > _EXAMPLES else ""
