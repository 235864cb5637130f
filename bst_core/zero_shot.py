"""Labels with no training data: CLAP zero-shot classification into the 23 BST classes.

Each class is described by a few prompts built from the taxonomy (:func:`class_prompts`): its top
level and name ("Sound effects: Animals"), its one-sentence description
(:attr:`~bst_core.taxonomy.BstClass.description`, with the examples) and "the sound of <example>"
for every example of the taxonomy file. The class's text vector is the normalised mean of its
prompts' CLAP text embeddings (prompt ensembling, as in CLIP/CLAP zero-shot evaluation).

For an item with audio vector ``a`` (unit) and class vectors ``t_c`` (unit), the probabilities are
``softmax(s * a·t_c)`` over the 23 classes, with ``s`` the checkpoint's learned audio-text logit
scale (``exp(logit_scale_a)`` of the CLAP model, what CLAP itself multiplies its audio-text
cosines by) when the encoder exposes it as ``logit_scale``, else :data:`DEFAULT_LOGIT_SCALE`
(1/0.07, CLAP's initial value). The argmax is the label; the scale only sharpens the scores.
An item whose audio could not be decoded (zero audio vector; ``audio_status`` "text only: ...")
is scored the same way from its stored CLAP *text* embedding (title, tags, description), which
lives in the same text space as the class vectors; with neither vector it gets the uniform
distribution.

Accuracy: **unmeasured here** (this machine has no real CLAP checkpoint; the tests use a
random-weight model and check mechanics only).
"""

from __future__ import annotations

import numpy as np

from bst_core.corpus import Corpus
from bst_core.encoders.base import Encoder
from bst_core.jobs import Job
from bst_core.predictions import Predictions
from bst_core.similar import normalise_rows
from bst_core.taxonomy import CLASS_KEYS, BstClass, classes
from bst_core.text_search import require_joint_encoder

DEFAULT_LOGIT_SCALE = 1 / 0.07
STAGE = "zero-shot"


def class_prompts(bst_class: BstClass) -> list[str]:
    """The prompts describing one class (name, description with examples, one per example)."""
    examples = [part.strip() for part in bst_class.examples.split(";") if part.strip()]
    return [f"{bst_class.top_name}: {bst_class.name}", bst_class.description,
            *(f"the sound of {example}" for example in examples)]


def all_class_prompts() -> dict[str, list[str]]:
    """``{class key: prompts}`` in taxonomy order."""
    return {c.key: class_prompts(c) for c in classes()}


def class_text_embeddings(encoder: Encoder) -> np.ndarray:
    """``(23, text_dim)`` unit class vectors: the normalised mean of each class's prompt embeddings."""
    prompts = all_class_prompts()
    flat = [text for key in CLASS_KEYS for text in prompts[key]]
    vectors = normalise_rows(encoder.embed_text(flat))
    out = np.zeros((len(CLASS_KEYS), vectors.shape[1]), dtype=np.float32)
    start = 0
    for row, key in enumerate(CLASS_KEYS):
        count = len(prompts[key])
        out[row] = vectors[start:start + count].mean(axis=0)
        start += count
    return normalise_rows(out)


def logit_scale(encoder: Encoder) -> float:
    """The encoder's audio-text logit scale, else :data:`DEFAULT_LOGIT_SCALE`."""
    value = getattr(encoder, "logit_scale", None)
    return float(value) if value is not None else DEFAULT_LOGIT_SCALE


def zero_shot_probabilities(audio: np.ndarray, class_vectors: np.ndarray, scale: float) -> np.ndarray:
    """``softmax(scale * cos(audio_i, class_c))`` per row, float64 ``(n, 23)``."""
    from scipy.special import softmax

    logits = float(scale) * (normalise_rows(audio).astype(np.float64) @ normalise_rows(class_vectors).T)
    return softmax(logits, axis=1)


def zero_shot_predictions(corpus: Corpus, encoder: Encoder, *, job: Job | None = None) -> Predictions:
    """Zero-shot :class:`Predictions` of every item of ``corpus`` from its CLAP audio embedding
    (no run: ``run_dir`` None, ``n_models`` 0). Refuses a corpus without joint embeddings."""
    from bst_core import jobs

    require_joint_encoder(corpus, "Zero-shot labels")
    encoder.info.require_same(corpus.encoder, f"The embeddings of {corpus.store or corpus.root}")  # type: ignore[arg-type]
    jobs.report(job, STAGE, 0, 2, "embedding the 23 class descriptions")
    class_vectors = class_text_embeddings(encoder)
    jobs.check(job)
    jobs.report(job, STAGE, 1, 2, f"scoring {len(corpus)} item(s)")
    vectors = np.array(corpus.audio, dtype=np.float32)
    no_audio = ~np.any(vectors != 0, axis=1)
    if corpus.text is not None and no_audio.any():
        vectors[no_audio] = np.asarray(corpus.text, dtype=np.float32)[no_audio]   # from the text alone
    probs = zero_shot_probabilities(vectors, class_vectors, logit_scale(encoder))
    jobs.report(job, STAGE, 2, 2, "done")
    return Predictions(corpus.ids, probs, audio_status=corpus.audio_status(),
                       source=str(corpus.root) if corpus.root else "", run_dir=None, origin="zero-shot",
                       n_models=0)


__all__ = ["DEFAULT_LOGIT_SCALE", "all_class_prompts", "class_prompts", "class_text_embeddings", "logit_scale",
           "zero_shot_predictions", "zero_shot_probabilities"]
