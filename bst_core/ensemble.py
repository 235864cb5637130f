"""The fold models of a run, averaged into one classifier (seed report, eq. 3).

``p̂(c | x) = mean_k p_k(c | x)`` over the fold models; the label is the argmax class and the
score its probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bst_core import jobs, runs
from bst_core.config import PRECISIONS
from bst_core.corpus import Corpus, EncoderInfo
from bst_core.errors import BadInputError, IncompatibleError
from bst_core.jobs import Job
from bst_core.model import HATR, count_parameters, predict_probs
from bst_core.predictions import Predictions, has_audio
from bst_core.taxonomy import CLASS_KEYS


class Ensemble:
    """Fold models that agree on mode, encoder, dimensions and class order."""

    def __init__(self, models: Sequence[HATR], encoder: EncoderInfo, *, folds: Sequence[int] = (),
                 source: str = "", mask_missing_audio: bool = True) -> None:
        if not models:
            raise BadInputError(f"{source or 'The ensemble'} has no trained fold models: train first.")
        first = models[0]
        for model in models[1:]:
            if (model.mode, model.audio_dim, model.text_dim, model.num_classes) != (
                    first.mode, first.audio_dim, first.text_dim, first.num_classes):
                raise IncompatibleError(f"The fold models of {source or 'the ensemble'} disagree on mode or "
                                        "input dimensions; retrain the run.")
        self.models = [m.eval() for m in models]
        self.encoder = encoder
        self.folds = list(folds) or list(range(1, len(models) + 1))
        self.source = source
        self.mask_missing_audio = mask_missing_audio
        self.run_dir: Path | None = None

    @classmethod
    def from_run(cls, run_dir: str | Path, *, device: str = "cpu") -> Ensemble:
        """Load every finished fold model of a run folder (5 after a full 5-fold run)."""
        run = runs.RunFolder(run_dir)
        encoder = run.encoder
        models, folds = [], []
        for k, path in zip(run.fold_numbers(), run.model_paths(), strict=True):
            model, _meta = runs.load_fold_model(path, encoder=encoder, audio_dim=run.audio_dim,
                                                text_dim=run.text_dim, map_location=device)
            models.append(model)
            folds.append(k)
        ensemble = cls(models, encoder, folds=folds, source=str(run.path),
                       mask_missing_audio=run.config.missing_audio == "mask")
        ensemble.run_dir = run.path
        return ensemble

    def __repr__(self) -> str:
        return f"Ensemble({len(self.models)} × HATR {self.mode!r}, {self.encoder.label})"

    @property
    def mode(self) -> str:
        return self.models[0].mode

    @property
    def parameters(self) -> int:
        """Trainable parameters of all fold models together (a submission's total)."""
        return sum(count_parameters(m) for m in self.models)

    @property
    def parameters_per_model(self) -> int:
        return count_parameters(self.models[0])

    def describe(self) -> dict[str, Any]:
        return {"folds": self.folds, "mode": self.mode, "encoder": self.encoder.to_dict(),
                "parameters": self.parameters, "source": self.source}

    def predict(self, corpus: Corpus, job: Job | None = None, *, precision: str = "fp32") -> Predictions:
        """Mean of the fold models' softmax over ``corpus``; refuses other encoders or dimensions.

        ``precision="bf16"`` runs the models under bfloat16 autocast: about twice as fast on CPUs
        with AVX-512 BF16, but probabilities differ slightly from fp32 (the default, exact).
        """
        if precision not in PRECISIONS:
            raise BadInputError(f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
        audio, text = self.inputs(corpus)
        status = corpus.audio_status()
        audio_ok = has_audio(status)
        present = (torch.as_tensor(audio_ok, device=next(self.models[0].parameters()).device)
                   if self.mask_missing_audio and self.mode == "both" and not audio_ok.all() else None)
        n = len(corpus)
        total = np.zeros((n, len(CLASS_KEYS)), dtype=np.float64)
        attention = np.zeros((n, 2), dtype=np.float64) if self.mode == "both" else None
        model_device = next(self.models[0].parameters()).device
        for i, model in enumerate(self.models):
            jobs.check(job)
            jobs.report(job, "predict", i, len(self.models), f"fold model {i + 1} of {len(self.models)}")
            with torch.autocast(model_device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                probs, attn = predict_probs(model, audio, text, audio_present=present)
            total += probs.double().cpu().numpy()
            if attention is not None and attn is not None:
                attention += attn.double().cpu().numpy()
        jobs.report(job, "predict", len(self.models), len(self.models), "done")
        return Predictions(
            ids=[str(i) for i in corpus.ids], probs=total / len(self.models),
            attention=None if attention is None else attention / len(self.models), audio_status=status,
            source=str(corpus.root) if corpus.root else "", run_dir=self.run_dir, origin="ensemble",
            n_models=len(self.models), parameters_per_model=self.parameters_per_model, precision=precision)

    def inputs(self, corpus: Corpus) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The corpus's audio/text matrices as tensors on the models' device (None for an unused
        modality); IncompatibleError when its encoder or dimensions are not the models'."""
        what = f"the embeddings of {corpus.root}" if corpus.root else "the corpus embeddings"
        if corpus.encoder is None:
            raise IncompatibleError(f"{what.capitalize()} do not say which encoder made them; this "
                                    f"ensemble needs {self.encoder.label}.")
        if corpus.encoder != self.encoder:
            raise IncompatibleError(
                f"{what.capitalize()} were made with {corpus.encoder.label}, but the models of "
                f"{self.source or 'this ensemble'} were trained on {self.encoder.label}. "
                "Extract embeddings with the models' encoder or use a matching run.")
        device = next(self.models[0].parameters()).device
        first = self.models[0]
        out: list[torch.Tensor | None] = []
        for name, dim in (("audio", first.audio_dim), ("text", first.text_dim)):
            if self.mode not in ("both", name):
                out.append(None)
                continue
            matrix = getattr(corpus, name)
            if matrix is None:
                raise BadInputError(f"{what.capitalize()} lack {name} embeddings, which these "
                                    f"{self.mode!r} models need: extract embeddings first.")
            if matrix.ndim != 2 or matrix.shape != (len(corpus), dim):
                raise IncompatibleError(f"{what.capitalize()} have {name} shape {matrix.shape}, but the "
                                        f"models expect ({len(corpus)}, {dim}).")
            out.append(torch.from_numpy(np.array(matrix, dtype=np.float32)).to(device))
        return out[0], out[1]
