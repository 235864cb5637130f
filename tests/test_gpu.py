"""The ``--device cuda`` paths: training, ensemble prediction, CLAP embedding (random weights).

Marked ``gpu``; every test is skipped, with the reason, where CUDA is not available
(``benchmarks/gpu_check.sh`` runs them on a GPU machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import make_corpus

from bst_core.config import TrainConfig
from bst_core.ensemble import Ensemble
from bst_core.runs import RunFolder, load_fold_model
from bst_core.training import cross_validate

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine"),
]
CONFIG = TrainConfig(folds=2, epochs=4, batch_size=16, device="cuda")


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, object]:
    corpus = make_corpus(n_per_class=30)
    run_dir = tmp_path_factory.mktemp("gpu") / "run"
    return corpus, run_dir, cross_validate(corpus, run_dir, CONFIG)


def test_training_runs_on_cuda_and_learns(cuda_run) -> None:
    _corpus, run_dir, result = cuda_run
    assert result.status == "complete" and result.report.leaf_accuracy > 0.6
    model, _meta = load_fold_model(run_dir / "fold_1" / "model.pt", map_location="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())  # a run trained on CUDA loads anywhere
    assert RunFolder(run_dir).config.device == "cuda"


def test_a_cuda_training_step_matches_the_cpu_one(cuda_run) -> None:
    """One fold, one epoch on each device: same best epoch count and close losses (not bit-identical)."""
    corpus, _run_dir, _result = cuda_run
    histories = {}
    for device in ("cpu", "cuda"):
        from bst_core import training

        config = TrainConfig(folds=2, epochs=1, batch_size=16, device=device, dropout=0.0)
        data = training._to_tensors(corpus, config, torch.device(device))
        train, val, test = training.fold_splits(data.codes, folds=2, seed=config.seed, val_fraction=0.2)[0]
        histories[device] = training.train_fold(training.FoldTask(1, train, val, test), data, config).history
    assert histories["cpu"][0]["loss"] == pytest.approx(histories["cuda"][0]["loss"], rel=1e-3)


def test_ensemble_on_cuda_matches_cpu(cuda_run) -> None:
    corpus, run_dir, _result = cuda_run
    on_cpu = Ensemble.from_run(run_dir, device="cpu").predict(corpus)
    on_gpu = Ensemble.from_run(run_dir, device="cuda").predict(corpus)
    np.testing.assert_allclose(on_gpu.probs, on_cpu.probs, atol=1e-4)
    assert np.mean(np.array(on_gpu.labels) == np.array(on_cpu.labels)) > 0.99


@pytest.mark.clap
def test_clap_random_weights_embed_on_cuda_as_on_cpu(tmp_path: Path) -> None:
    from clap_fixtures import tone, write_random_checkpoint, write_tiny_roberta_files

    from bst_core.encoders.clap import ClapEncoder

    text_dir = write_tiny_roberta_files(tmp_path / "roberta-base")
    checkpoint = tmp_path / "random-clap.pt"
    write_random_checkpoint(checkpoint, text_dir)
    clips = [tone(3.0, freq=330.0, seed=1), tone(12.0, freq=550.0, seed=2)]
    texts = ["dog bark", "rain on a roof"]
    vectors = {}
    for device in ("cpu", "cuda"):
        encoder = ClapEncoder(checkpoint=checkpoint, text_files=text_dir, device=device)
        vectors[device] = (encoder.embed_audio(clips), encoder.embed_text(texts))
    for cpu, gpu in zip(vectors["cpu"], vectors["cuda"], strict=True):
        assert gpu.shape == cpu.shape == (2, 512)
        cosine = (cpu * gpu).sum(axis=1)  # unit vectors
        assert (cosine > 0.999).all()
