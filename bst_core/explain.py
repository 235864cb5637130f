"""Why this label: the training clips nearest to a predicted sound in the model's own latent space.

The latent space is each fold model's fused feature (:meth:`HATR.features`: the attention-fused
``hidden``-d encoding in ``both`` mode, the one modality's encoding otherwise; 128-d by default),
taken before the latent projector. The fold models of a run are trained separately, so their
feature spaces are not aligned: averaging the features of different models would mix unrelated
axes. The similarity of a query to a training item is therefore the **mean over the ensemble's
fold models of the cosine similarity** in each model's own space (the same averaging as the
ensemble's probabilities).

The training items are the run's own dataset (``RunFolder(run).dataset_root``), every item the run
was cross-validated on, with the truth label the run trained on. When the query comes from that
same dataset, the query itself is left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bst_core.corpus import Corpus
from bst_core.ensemble import Ensemble
from bst_core.errors import BadInputError
from bst_core.predictions import Predictions, has_audio
from bst_core.runs import RunFolder
from bst_core.similar import check_k, neighbour_frame, normalise_rows, top_k

DEFAULT_K = 5
PathLike = str | os.PathLike[str]


def training_corpus(run_dir: PathLike, *, store: PathLike | None = None) -> Corpus:
    """The run's own dataset with its embeddings; BadInputError naming the path when it is gone."""
    from bst_core import pipeline

    run = RunFolder(run_dir)
    root = run.dataset_root
    if not root:
        raise BadInputError(f"{run.path} does not say which dataset it was trained on (an in-memory corpus); "
                            "explanations need its training items. Use a run trained on a dataset folder.")
    if not Path(root).exists():
        raise BadInputError(f"The training dataset of {run.path} is not available at {root}: explanations "
                            "need its training items. Put the dataset back at that path (or retrain from "
                            "where it is now).")
    return pipeline.open_source(root, store=store, require_embeddings=True)


def _rows(corpus: Corpus, rows: np.ndarray) -> Corpus:
    table = corpus.table.iloc[rows].reset_index(drop=True)
    return replace(corpus, table=table,
                   audio=None if corpus.audio is None else np.asarray(corpus.audio)[rows],
                   text=None if corpus.text is None else np.asarray(corpus.text)[rows])


@torch.inference_mode()
def latent_features(ensemble: Ensemble, corpus: Corpus, *, batch_size: int = 8192) -> np.ndarray:
    """``(n_models, n, hidden)`` unit-norm features of every item of ``corpus`` under each fold model
    (eval mode; items without decoded audio masked like the ensemble's predictions)."""
    audio, text = ensemble.inputs(corpus)  # checks encoder and dimensions, as predict does
    present = None
    if ensemble.mask_missing_audio and ensemble.mode == "both":
        device = next(ensemble.models[0].parameters()).device
        present = torch.as_tensor(has_audio(corpus.audio_status()), device=device)
    out = []
    for model in ensemble.models:
        model.eval()
        parts = []
        for start in range(0, len(corpus), batch_size):
            part = slice(start, start + batch_size)
            parts.append(model.features(None if audio is None else audio[part],
                                        None if text is None else text[part],
                                        None if present is None else present[part]).float().cpu().numpy())
        features = np.concatenate(parts) if parts else np.zeros((0, model.hidden), np.float32)
        out.append(normalise_rows(features))
    return np.stack(out)


@dataclass
class Explanation:
    """A query's ensemble prediction and its nearest training items (``id, similarity, label, title``)."""

    item_id: str
    prediction: Predictions
    neighbours: pd.DataFrame

    @property
    def label(self) -> str:
        return self.prediction.labels[0]

    @property
    def score(self) -> float:
        return float(self.prediction.scores[0])


class LatentIndex:
    """The training items of a run in its fold models' latent spaces; build once, explain many.

    ``labels`` are the training items' truth labels by id (default: the run's out-of-fold table,
    i.e. the labels the run trained on); items of ``training`` without a label are left out.
    """

    def __init__(self, ensemble: Ensemble, training: Corpus, labels: pd.Series | None = None) -> None:
        if labels is None:
            if ensemble.run_dir is None:
                raise BadInputError("The training labels are unknown: pass them, or load the ensemble from a run.")
            oof = RunFolder(ensemble.run_dir).oof()
            labels = pd.Series(oof["truth"].astype(str).to_numpy(), index=oof["id"].astype(str))
        ids = pd.Series([str(i) for i in training.ids])
        keep = ids.isin(labels.index[labels.astype(str) != ""]).to_numpy()
        if not keep.any():
            raise BadInputError(f"None of the items of {training.root} are training items of "
                                f"{ensemble.source or 'the run'}; is it the dataset the run was trained on?")
        self.ensemble = ensemble
        self.training = _rows(training, np.flatnonzero(keep))
        self.training.table["label"] = labels.reindex(self.training.table["id"].astype(str)).to_numpy()
        self.features = latent_features(ensemble, self.training)
        self._root = Path(training.root).resolve() if training.root else None

    def __len__(self) -> int:
        return len(self.training)

    def explain(self, corpus: Corpus, item_id: str, k: int = DEFAULT_K) -> Explanation:
        """The ensemble's prediction for ``item_id`` of ``corpus`` and its ``k`` nearest training items."""
        check_k(k)
        item_id = str(item_id)
        positions = np.flatnonzero(np.asarray([str(i) for i in corpus.ids]) == item_id)
        if not len(positions):
            where = str(corpus.root) if corpus.root else "this corpus"
            raise BadInputError(f"{where} has no item with id {item_id!r}; give one of its ids.")
        query = _rows(corpus, positions[:1])
        prediction = self.ensemble.predict(query)
        features = latent_features(self.ensemble, query)[:, 0, :]            # (models, hidden)
        similarity = np.einsum("mnh,mh->n", self.features, features) / len(features)
        exclude = None
        if self._root is not None and corpus.root is not None and Path(corpus.root).resolve() == self._root:
            same = np.flatnonzero(self.training.table["id"].astype(str).to_numpy() == item_id)
            exclude = int(same[0]) if len(same) else None
        rows = top_k(similarity, k, exclude=exclude)
        return Explanation(item_id, prediction, neighbour_frame(self.training, rows, similarity[rows]))


def explain(run_dir: PathLike, corpus: Corpus, item_id: str, *, k: int = DEFAULT_K,
            training: Corpus | None = None, device: str = "cpu") -> Explanation:
    """The ``k`` training items of the run nearest to ``item_id`` of ``corpus`` in the models' latent
    space. ``training`` defaults to :func:`training_corpus` (``corpus`` itself when it is the run's
    dataset)."""
    from bst_core import pipeline

    check_k(k)
    if str(item_id) not in set(map(str, corpus.ids)):
        where = str(corpus.root) if corpus.root else "this corpus"
        raise BadInputError(f"{where} has no item with id {str(item_id)!r}; give one of its ids.")
    if training is None:
        run = RunFolder(run_dir)
        same = bool(run.dataset_root) and corpus.root is not None and \
            Path(corpus.root).resolve() == Path(run.dataset_root).resolve()
        training = corpus if same else training_corpus(run_dir)
    ensemble = pipeline.load_ensemble(run_dir, device=device)
    return LatentIndex(ensemble, training).explain(corpus, item_id, k)


__all__ = ["DEFAULT_K", "Explanation", "LatentIndex", "explain", "latent_features", "training_corpus"]
