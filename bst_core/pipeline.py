"""The user-level workflows, shared by the ``bst`` CLI and the GUI.

Each function is one thing a person does: cross-validate a labelled source, predict a source with a
run's ensemble, write the challenge package, extract embeddings. They only compose the concept
modules (sources, store, training, ensemble, metrics, submission) so both front ends stay thin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import jobs
from bst_core.corpus import CLAP_ENCODER, Corpus
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.metrics import MetricReport
from bst_core.taxonomy import CLASS_KEYS

PathLike = str | os.PathLike[str]


def load_source(source: PathLike, *, store: PathLike | None = None, job: Job | None = None) -> Corpus:
    """Open a dataset, evaluation folder, folder of sounds or metadata CSV, with its embeddings.

    ``store`` (an extraction store made by ``bst extract``) supplies the embeddings of sources that
    ship none. A source without embeddings and without a store is refused with what to run.
    """
    from bst_core.sources import open_source

    path = Path(source)
    if not path.exists():
        raise BadInputError(f"{path} does not exist: give a dataset folder, evaluation folder, "
                            "folder of sounds or metadata CSV.")
    corpus = open_source(path, store=Path(store) if store else None, job=job)
    if corpus.audio is None and corpus.text is None:
        raise BadInputError(
            f"{path} has no embeddings. Compute them first: `bst extract {path} --out STORE` "
            "(add --encoder clap for the challenge's CLAP embeddings), then pass --store STORE.")
    return corpus


def train(source: PathLike, run_dir: PathLike, config=None, *, store: PathLike | None = None,
          job: Job | None = None):
    """Cross-validate HATR on a labelled source; returns :class:`training.CrossValResult`."""
    from bst_core.training import TrainConfig, cross_validate

    corpus = load_source(source, store=store, job=job)
    return cross_validate(corpus, run_dir, config or TrainConfig(), job=job)


@dataclass
class Prediction:
    """A source and the ensemble's predictions for it, row-aligned."""

    corpus: Corpus
    predictions: object  # bst_core.ensemble.Predictions
    n_models: int
    parameters_per_model: int
    run_dir: Path
    precision: str = "fp32"

    @property
    def parameters(self) -> int:
        """All fold models together (the submission's ``total_parameters``)."""
        return self.parameters_per_model * self.n_models

    def frame(self) -> pd.DataFrame:
        """Submission columns, then the 23 class probabilities and, if labelled, the truth."""
        p = self.predictions
        frame = pd.DataFrame({
            "id": list(p.ids),  # type: ignore[attr-defined]
            "predicted_bst_second_level_class": list(p.labels),  # type: ignore[attr-defined]
            "prediction_score": np.asarray(p.scores, dtype=float),  # type: ignore[attr-defined]
        })
        probs = pd.DataFrame(np.asarray(p.probs), columns=list(CLASS_KEYS))  # type: ignore[attr-defined]
        return pd.concat([frame, probs], axis=1)


def predict(run_dir: PathLike, source: PathLike | Corpus, *, store: PathLike | None = None,
            job: Job | None = None, precision: str = "fp32") -> Prediction:
    """Predict every item of ``source`` with the ensemble of the run folder's fold models
    (``precision="bf16"``: faster, slightly different probabilities; see ``Ensemble.predict``)."""
    from bst_core.ensemble import Ensemble

    ensemble = Ensemble.from_run(run_dir)
    corpus = source if isinstance(source, Corpus) else load_source(source, store=store, job=job)
    jobs.check(job)
    predictions = ensemble.predict(corpus, job=job, precision=precision)
    return Prediction(corpus, predictions, len(ensemble.models), ensemble.parameters_per_model, Path(run_dir),
                      precision)


def write_predictions_csv(prediction: Prediction, out: PathLike, *, with_probabilities: bool = False) -> Path:
    """Write predictions in the submission format (optionally followed by the 23 probabilities)."""
    from bst_core.atomic import atomic_open

    frame = prediction.frame()
    if not with_probabilities:
        frame = frame.iloc[:, :3]
    out = Path(out)
    with atomic_open(out, "w", newline="") as handle:
        frame.to_csv(handle, index=False, float_format="%.6f")
    return out


def development_report(run_dir: PathLike) -> MetricReport | None:
    """The run's development figures as the challenge reports them: mean over the folds.

    Overall hP/hR/hF and the other headline numbers are fold means; class-wise values are the
    fold mean of each class (ignoring folds where the class was dropped). None if the run has
    no metrics yet.
    """
    from bst_core.runs import RunFolder

    run = RunFolder(run_dir)
    try:
        metrics = run.metrics()
    except BadInputError:
        return None
    folds = [MetricReport.from_dict(f) for f in metrics.get("folds", [])]
    if not folds:
        return None
    pooled = MetricReport.from_dict(metrics["pooled"])
    table = pooled.per_class.copy()
    for column in ("hP", "hR", "hF", "accuracy"):
        stacked = np.vstack([f.per_class[column].to_numpy(dtype=float) for f in folds])
        present = ~np.isnan(stacked)
        count = present.sum(axis=0)
        total = np.where(present, stacked, 0.0).sum(axis=0)
        table[column] = np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)
    means = {name: float(np.mean([getattr(f, name) for f in folds]))
             for name in ("hP", "hR", "hF", "leaf_accuracy", "top_accuracy", "macro_accuracy",
                          "hierarchical_accuracy")}
    return MetricReport(**means, per_class=table, lam=pooled.lam, absent=pooled.absent,
                        dropped=pooled.dropped, n=pooled.n)


def _input_rate(encoder) -> str:
    from bst_core.encoders.offline import OFFLINE_ENCODER, SAMPLE_RATE

    if encoder == OFFLINE_ENCODER:
        return f"{SAMPLE_RATE / 1000:g}kHz (the offline encoder resamples the audio)"
    return f"as required by {encoder.label}"


def write_submission(prediction: Prediction, label: str, out_dir: PathLike, *,
                     authors: list[dict] | None = None) -> Path:
    """Write the challenge package of an ensemble prediction of the evaluation set, then re-read
    and validate what is on disk. BadInputError lists every problem (nothing invalid is written)."""
    from bst_core.runs import RunFolder
    from bst_core.submission import validate_package_dir, write_package

    run = RunFolder(prediction.run_dir)
    config = run.config
    description: dict[str, str] = {}
    if run.encoder != CLAP_ENCODER:  # never describe other embeddings as CLAP
        description.update(
            input_sampling_rate=_input_rate(run.encoder),
            audio_representation=f"{run.encoder.label} audio features (not CLAP)",
            text_representation=f"{run.encoder.label} text features of title, tags and description (not CLAP)",
            external_data_usage="none",
        )
    system = {"description": {
        **description,
        "machine_learning_method": (
            f"HATR ({config.mode} mode: embedding encoders, attention fusion, residual head); "
            f"ensemble (mean of probabilities) of {prediction.n_models} cross-validation fold models "
            f"of {prediction.parameters_per_model:,} parameters each"
            + ("; inference in bfloat16" if prediction.precision == "bf16" else "")),
        "data_augmentation": "noise + random masking" if config.augment else "none",
    }}
    eval_ids = prediction.corpus.ids
    package = write_package(out_dir, label, prediction.predictions, eval_ids,  # type: ignore[arg-type]
                            dev_report=development_report(prediction.run_dir),
                            total_parameters=prediction.parameters, system=system, authors=authors)
    problems = validate_package_dir(package, eval_ids)
    if problems:
        raise BadInputError(f"The package {package} was written but does not validate:\n"
                            + "\n".join(f"- {p}" for p in problems))
    return package


def export(run_dir: PathLike, eval_source: PathLike | Corpus, label: str, out_dir: PathLike, *,
           store: PathLike | None = None, authors: list[dict] | None = None,
           job: Job | None = None, precision: str = "fp32") -> Path:
    """Predict the evaluation set with the run's ensemble and write the validated package."""
    prediction = predict(run_dir, eval_source, store=store, job=job, precision=precision)
    return write_submission(prediction, label, out_dir, authors=authors)


def extract(source: PathLike, store: PathLike, *, encoder: str = "offline", checkpoint: PathLike | None = None,
            device: str = "cpu", allow_download: bool = False, batch_size: int = 16, job: Job | None = None):
    """Compute (or complete) the embedding store of a source; returns the extraction summary."""
    from bst_core.encoders import make_encoder
    from bst_core.extraction import extract as run_extraction
    from bst_core.sources import open_source

    corpus = open_source(Path(source), job=job)
    model = make_encoder(encoder, checkpoint=checkpoint, device=device, allow_download=allow_download, job=job)
    return run_extraction(corpus, store, model, batch_size=batch_size, job=job)
