"""The organizers' baseline data path, re-created to time one epoch for comparison.

The DCASE 2026 Task 1 baseline keeps one ``.npy`` file per sound and modality and reads them in a
``torch.utils.data.Dataset.__getitem__`` (``dataframe.iloc[idx]`` → ``np.load`` of the audio and the
text file → tensors) behind a ``DataLoader`` (batch 64, shuffle, ``drop_last=True``, worker
processes), with Adam (weight decay 1e-5, not fused) and cross-entropy. This script writes a
BSD10k-sized set of per-sound ``.npy`` files to a temporary folder (synthetic vectors), then times
one training epoch plus one validation pass of the same HATR model on the same split sizes as
``bench_training.py``. The files are freshly written, so they are in the page cache: the numbers
are a lower bound for a cold disk.

Run: ``python benchmarks/baseline_loop.py [--workers 2] [--threads N] [--augment]``
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch.utils.data import DataLoader, Dataset

from bst_core.model import HATR
from bst_core.taxonomy import CLASS_INDEX

SEED = 1821


class PerFileEmbeddings(Dataset):
    """One sample = two ``np.load`` calls, as in the baseline's HATRDataset."""

    def __init__(self, frame: pd.DataFrame, augment: bool = False, mask_pct: float = 0.2) -> None:
        self.frame = frame
        self.augment = augment
        self.mask_pct = mask_pct

    def __len__(self) -> int:
        return len(self.frame)

    def _mask(self, emb: torch.Tensor) -> torch.Tensor:
        count = random.randint(1, max(1, int(emb.shape[0] * self.mask_pct)))
        mask = torch.ones_like(emb)
        mask[torch.randperm(emb.shape[0])[:count]] = 0.0
        return emb * mask

    def __getitem__(self, idx: int) -> dict[str, object]:
        sample = self.frame.iloc[idx]
        audio = torch.tensor(np.load(sample["audio_emb_filepath"]), dtype=torch.float32)
        text = torch.tensor(np.load(sample["text_emb_filepath"]), dtype=torch.float32)
        if self.augment:
            audio = self._mask(audio + torch.randn_like(audio) * 0.0001)
            text = self._mask(text + torch.randn_like(text) * 0.0001)
        return {"sound_id": sample["index"], "audio_embedding": audio, "text_embedding": text,
                "class_idx": int(sample["class_idx"])}


def write_per_file_dataset(root: Path) -> pd.DataFrame:
    """Per-sound .npy files for a BSD10k-sized synthetic corpus; the baseline's processed table."""
    from bench_training import synthetic_corpus  # same corpus as our benchmark

    corpus = synthetic_corpus()
    (root / "audio").mkdir(parents=True)
    (root / "text").mkdir()
    assert corpus.audio is not None and corpus.text is not None
    rows = []
    for i, (sound_id, label) in enumerate(zip(corpus.ids, corpus.labels, strict=True)):
        audio_path, text_path = root / "audio" / f"{sound_id}.npy", root / "text" / f"{sound_id}.npy"
        np.save(audio_path, corpus.audio[i])
        np.save(text_path, corpus.text[i])
        rows.append({"index": sound_id, "class": label, "class_idx": CLASS_INDEX[label],
                     "audio_emb_filepath": str(audio_path), "text_emb_filepath": str(text_path)})
    return pd.DataFrame(rows)


def time_epoch(frame: pd.DataFrame, *, workers: int, augment: bool,
               data_only: bool = False) -> tuple[float, int]:
    """Seconds of one training epoch + one validation pass on fold 1's split.

    ``data_only`` iterates the loaders without the model: the cost of the data path alone.
    """
    labels = frame["class_idx"].to_numpy()
    trainval, _test = next(StratifiedKFold(5, shuffle=True, random_state=SEED).split(labels, labels))
    train, val = train_test_split(trainval, test_size=0.2, stratify=labels[trainval], random_state=SEED)
    train_loader = DataLoader(PerFileEmbeddings(frame.iloc[train].reset_index(drop=True), augment),
                              batch_size=64, shuffle=True, drop_last=True, num_workers=workers)
    val_loader = DataLoader(PerFileEmbeddings(frame.iloc[val].reset_index(drop=True)),
                            batch_size=64, shuffle=False, num_workers=workers)
    torch.manual_seed(SEED)
    model = HATR("both", 512, 512)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    criterion = torch.nn.CrossEntropyLoss()

    start = time.perf_counter()
    model.train()
    for batch in train_loader:
        if data_only:
            continue
        optimizer.zero_grad()
        logits, _attention = model(batch["audio_embedding"], batch["text_embedding"])
        loss = criterion(logits, batch["class_idx"])
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in val_loader:
            if data_only:
                continue
            logits, _ = model(batch["audio_embedding"], batch["text_embedding"])
            correct += int((logits.argmax(1) == batch["class_idx"]).sum())
    return time.perf_counter() - start, len(train)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--augment", action="store_true", help="the baseline's noise + masking")
    parser.add_argument("--epochs", type=int, default=1, help="epochs to time (each reported)")
    parser.add_argument("--data-only", action="store_true", help="time the data path alone (no model)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.workers} loader workers")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        frame = write_per_file_dataset(Path(tmp))
        print(f"wrote {2 * len(frame)} per-sound .npy files in {time.perf_counter() - start:.1f} s")
        for epoch in range(1, args.epochs + 1):
            seconds, n_train = time_epoch(frame, workers=args.workers, augment=args.augment,
                                          data_only=args.data_only)
            what = "baseline data path alone" if args.data_only else "baseline loop"
            print(f"{what}, epoch {epoch}: {seconds:.2f} s/epoch (train {n_train} + validation), "
                  f"{n_train / seconds:,.0f} training samples/s")


if __name__ == "__main__":
    main()
