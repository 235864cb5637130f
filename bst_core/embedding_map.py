"""A 2D map of a source's sounds: PCA (instant) or UMAP (umap-learn) of its embeddings, cached per store.

Vectors are those of :func:`bst_core.similar.space_matrix`: the L2-normalised audio or text rows,
or both concatenated (``space="both"``). On unit rows Euclidean distance orders neighbours exactly
as cosine similarity does, so UMAP runs with the Euclidean metric (faster in pynndescent).

- :func:`pca_map`: scikit-learn PCA to 2 components with the ``covariance_eigh`` solver (exact,
  deterministic, a d x d eigenproblem: fast when there are many more items than dimensions);
  component signs fixed by scikit-learn's ``svd_flip``.
- :func:`umap_map`: ``umap.UMAP(n_neighbors=15, min_dist=0.1, init="pca", random_state=0)``.
  A fixed ``random_state`` makes it reproducible on one machine and single-threaded (umap-learn's
  rule); timings at 35k items: ``benchmarks/bench_map.py``. Below :data:`UMAP_MIN_ITEMS` items
  UMAP is not defined usefully and :func:`compute_map` returns the PCA map, saying so in ``method``.

Cache. :func:`compute_map` writes each map it computes to one small file owned by this module,
``cache_dir()/maps/<store key>/<space>-<method>.npz`` (ids, xy and a JSON header), atomically.
The file is used again (:func:`cached_map`) only when its key matches: the map parameters, the
library version, the ids in order and a BLAKE2b digest of the very float32 vectors the map was
computed from. So a re-extracted, compacted, grown or edited store never gets a stale map, and an
unchanged one gets its map back without recomputation. A corpus without a store or source folder
(in memory) is never cached.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import atomic, jobs, paths
from bst_core.corpus import Corpus
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.similar import SPACES, space_matrix

METHODS: tuple[str, ...] = ("umap", "pca")
DEFAULT_METHOD = "umap"
DEFAULT_SPACE = "audio"
UMAP_MIN_ITEMS = 10
"""Fewer items than this: :func:`compute_map` gives the PCA map (UMAP needs a neighbourhood)."""
UMAP_PARAMS: dict[str, object] = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "init": "pca",
                                  "random_state": 0}
CACHE_VERSION = 1
STAGE = "map"


@dataclass(frozen=True)
class EmbeddingMap:
    """2D coordinates of a source's items: ``xy[i]`` is the point of ``ids[i]`` (float32, (n, 2)).

    ``method`` is the method actually used ("umap" or "pca"), ``space`` the embedding space.
    """

    ids: tuple[str, ...]
    xy: np.ndarray
    method: str
    space: str

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self) -> pd.DataFrame:
        """``id, x, y``."""
        return pd.DataFrame({"id": pd.Series(list(self.ids), dtype=object),
                             "x": self.xy[:, 0].astype(np.float64), "y": self.xy[:, 1].astype(np.float64)})


def _check(space: str, method: str) -> None:
    if space not in SPACES:
        raise BadInputError(f"Unknown space {space!r}: choose one of {', '.join(SPACES)}.")
    if method not in METHODS:
        raise BadInputError(f"Unknown map method {method!r}: choose one of {', '.join(METHODS)}.")


def pca_map(vectors: np.ndarray) -> np.ndarray:
    """``(n, 2)`` float32 PCA coordinates of the rows of ``vectors`` (deterministic).

    Fewer than two items, or data with fewer than two dimensions of variance, give zeros in the
    missing coordinates.
    """
    from sklearn.decomposition import PCA

    data = np.asarray(vectors, dtype=np.float32)
    if data.ndim != 2:
        raise BadInputError(f"A map needs a matrix of vectors (n, dim), not shape {data.shape}.")
    out = np.zeros((len(data), 2), dtype=np.float32)
    components = min(2, len(data) - 1, data.shape[1])
    if components < 1:
        return out
    out[:, :components] = PCA(n_components=components, svd_solver="covariance_eigh").fit_transform(data)
    return out


def umap_map(vectors: np.ndarray) -> np.ndarray:
    """``(n, 2)`` float32 UMAP coordinates (:data:`UMAP_PARAMS`; needs :data:`UMAP_MIN_ITEMS` rows)."""
    data = np.asarray(vectors, dtype=np.float32)
    if data.ndim != 2 or len(data) < UMAP_MIN_ITEMS:
        raise BadInputError(f"UMAP needs at least {UMAP_MIN_ITEMS} items (got {len(data)}); use the PCA map.")
    import warnings

    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": the documented price of reproducibility
        warnings.filterwarnings("ignore", message=r".*n_jobs value .* overridden", category=UserWarning)
        import umap

        params = dict(UMAP_PARAMS)
        params["n_neighbors"] = min(int(params["n_neighbors"]), len(data) - 1)  # type: ignore[call-overload]
        reducer = umap.UMAP(n_components=2, **params)
        return np.ascontiguousarray(reducer.fit_transform(data), dtype=np.float32)


# --- cache ----------------------------------------------------------------------------------------

def _identity(corpus: Corpus) -> Path | None:
    """What the cache is filed under: the store the vectors came from, else the source (shipped
    vectors); None for a corpus held only in memory."""
    where = corpus.store if corpus.store is not None else corpus.root
    return None if where is None else Path(where).expanduser().resolve()


def cache_path(corpus: Corpus, space: str, method: str) -> Path | None:
    """The cache file of this corpus's ``space``/``method`` map (None: not cacheable)."""
    identity = _identity(corpus)
    if identity is None:
        return None
    return paths.cache_dir() / "maps" / paths.folder_key(identity) / f"{space}-{method}.npz"


def _library_version(method: str) -> str:
    from importlib.metadata import version

    return version("umap-learn") if method == "umap" else version("scikit-learn")


def content_key(corpus: Corpus, space: str, method: str) -> str:
    """Hex digest of everything a map depends on: parameters, library version, ids in order and
    the exact float32 vectors of ``space`` (what the map is computed from)."""
    _check(space, method)
    digest = hashlib.blake2b(digest_size=20)
    header = {"cache": CACHE_VERSION, "space": space, "method": method, "version": _library_version(method),
              "params": UMAP_PARAMS if method == "umap" else {"svd_solver": "covariance_eigh"},
              "encoder": None if corpus.encoder is None else corpus.encoder.to_dict(), "n": len(corpus)}
    digest.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for item in corpus.ids:
        digest.update(str(item).encode("utf-8", "surrogatepass") + b"\0")
    for name in (("audio", "text") if space == "both" else (space,)):
        matrix = getattr(corpus, name)
        if matrix is None:
            raise BadInputError(f"{corpus.root or 'this corpus'} has no {name} embeddings: extract embeddings "
                                "first, or map another space.")
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        for start in range(0, len(rows), 4096):   # bounded copies of a memory-mapped matrix
            digest.update(memoryview(np.ascontiguousarray(rows[start:start + 4096])).cast("B"))
    return digest.hexdigest()


def _read_cache(path: Path, key: str, ids: list[str]) -> EmbeddingMap | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            cached_ids = data["ids"].tolist()
            xy = np.asarray(data["xy"], dtype=np.float32)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None   # an unreadable cache file of ours is recomputed and replaced, never trusted
    if meta.get("key") != key or cached_ids != ids or xy.shape != (len(ids), 2):
        return None
    return EmbeddingMap(tuple(ids), xy, str(meta["method"]), str(meta["space"]))


def _write_cache(path: Path, key: str, result: EmbeddingMap) -> None:
    buffer = io.BytesIO()
    meta = json.dumps({"key": key, "method": result.method, "space": result.space})
    np.savez(buffer, meta=np.array(meta), ids=np.array(list(result.ids), dtype=str), xy=result.xy)
    atomic.write_bytes(path, buffer.getvalue())


def cached_map(corpus: Corpus, space: str = DEFAULT_SPACE, method: str = DEFAULT_METHOD) -> EmbeddingMap | None:
    """The map :func:`compute_map` made earlier of exactly these vectors, or None (nothing
    cached, corpus changed since, or a corpus with no store or folder)."""
    _check(space, method)
    path = cache_path(corpus, space, method)
    if path is None or not path.is_file():
        return None
    ids = [str(i) for i in corpus.ids]
    return _read_cache(path, content_key(corpus, space, method), ids)


def compute_map(corpus: Corpus, space: str = DEFAULT_SPACE, method: str = DEFAULT_METHOD, *,
                progress: Job | None = None, use_cache: bool = True) -> EmbeddingMap:
    """The ``method`` map of ``corpus`` in ``space``: from the cache when it holds exactly these
    vectors, else computed and cached. ``progress`` (a :class:`Job`) gets stage ``"map"`` reports
    and may cancel before and after the computation (umap-learn cannot be interrupted: a cancel
    during a UMAP fit takes effect when it returns, after the map is cached). UMAP of fewer than
    :data:`UMAP_MIN_ITEMS` items gives the PCA map (``method == "pca"``)."""
    _check(space, method)
    jobs.report(progress, STAGE, 0, 2, f"{method} of {len(corpus)} item(s), {space}")
    ids = [str(i) for i in corpus.ids]
    path = cache_path(corpus, space, method) if use_cache else None
    key = content_key(corpus, space, method) if path is not None else ""
    if path is not None and path.is_file():
        found = _read_cache(path, key, ids)
        if found is not None:
            jobs.report(progress, STAGE, 2, 2, "from the cache")
            return found
    jobs.check(progress)
    vectors = space_matrix(corpus, space)
    jobs.report(progress, STAGE, 1, 2, f"computing the {method} map")
    if method == "umap" and len(vectors) >= UMAP_MIN_ITEMS:
        result = EmbeddingMap(tuple(ids), umap_map(vectors), "umap", space)
    else:
        result = EmbeddingMap(tuple(ids), pca_map(vectors), "pca", space)
    if path is not None:
        _write_cache(path, key, result)
    jobs.check(progress)
    jobs.report(progress, STAGE, 2, 2, "done")
    return result


def map_frame(corpus: Corpus, result: EmbeddingMap) -> pd.DataFrame:
    """``id, x, y, truth, colour, title``: truth is the item's given label ("" when unlabelled),
    colour its BST colour (:func:`bst_core.taxonomy.colour`; "" when unlabelled)."""
    from bst_core.taxonomy import colour

    frame = result.frame()
    table = corpus.table.set_index(corpus.table["id"].astype(str))
    rows = table.loc[list(result.ids)]
    truth = rows["label"].astype(str).to_numpy()
    frame["truth"] = truth
    frame["colour"] = [colour(label) if label else "" for label in truth]
    frame["title"] = rows["title"].astype(str).to_numpy()
    return frame


__all__ = ["DEFAULT_METHOD", "DEFAULT_SPACE", "METHODS", "UMAP_MIN_ITEMS", "UMAP_PARAMS", "EmbeddingMap",
           "cache_path", "cached_map", "compute_map", "content_key", "map_frame", "pca_map", "umap_map"]
