"""The organizers' baseline training script, re-created as a whole process to time against ``bst train``.

The DCASE 2026 Task 1 baseline (``train_test.py``) keeps one ``.npy`` file per sound and modality
(the BSD datasets' shipped ``features/clap_{audio,text}_embeddings/<id>.npy``) and reads them in a
``torch.utils.data.Dataset.__getitem__`` (``dataframe.iloc[idx]`` → ``np.load`` of the audio and
the text file → tensors) behind a ``DataLoader`` (batch 64, shuffle, ``drop_last=True``, worker
processes), with Adam (weight decay 1e-5, not fused) and cross-entropy. Per epoch it validates
(accuracy), rewrites ``history.json`` and saves ``best_model.pth`` when validation improves; after
training it reloads the best model and evaluates the test fold. This script does the same for one
fold of a BSD-layout dataset folder, with the same HATR model, and prints the time of every epoch
(training + validation) and of the whole process.

Run: ``python benchmarks/baseline_loop.py --dataset BSD_FOLDER [--fold 1] [--epochs 5] [--workers 2]``
(without ``--dataset`` it first writes a BSD10k-sized synthetic folder to a temporary folder, not timed).
"""

from __future__ import annotations

import time

START = time.perf_counter()  # the whole process, imports included (bench_training.py adds interpreter start)

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from bst_core.model import HATR  # noqa: E402  (the same architecture as the baseline's BaseClassifier)

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


def processed_table(root: Path) -> pd.DataFrame:
    """The baseline's processed dataset CSV: id, class index and the two .npy paths per sound."""
    meta = next((root / "metadata").glob("*_metadata.csv"))
    raw = pd.read_csv(meta, dtype={"sound_id": str})
    keys = sorted(raw["class"].unique())
    frame = pd.DataFrame({"index": raw["sound_id"], "class": raw["class"],
                          "class_idx": raw["class"].map({k: i for i, k in enumerate(keys)})})
    features = root / "features"
    frame["audio_emb_filepath"] = [str(features / "clap_audio_embeddings" / f"{i}.npy") for i in frame["index"]]
    frame["text_emb_filepath"] = [str(features / "clap_text_embeddings" / f"{i}.npy") for i in frame["index"]]
    return frame


def accuracy(model: torch.nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            logits, _ = model(batch["audio_embedding"], batch["text_embedding"])
            correct += int((logits.argmax(1) == batch["class_idx"]).sum())
            total += len(batch["class_idx"])
    return 100 * correct / max(total, 1)


def train_one_fold(frame: pd.DataFrame, out: Path, *, fold: int, epochs: int, workers: int,
                   augment: bool) -> list[tuple[float, int]]:
    """The baseline's fold loop; returns (seconds, training items) of each epoch (training + validation)."""
    labels = frame["class_idx"].to_numpy()
    splits = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(np.zeros(len(labels)), labels))
    trainval, test = splits[fold - 1]
    sss = StratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=SEED)
    train_rel, val_rel = next(sss.split(np.zeros(len(trainval)), labels[trainval]))
    train, val = trainval[train_rel], trainval[val_rel]

    def loader(rows: np.ndarray, shuffle: bool, aug: bool = False) -> DataLoader:
        return DataLoader(PerFileEmbeddings(frame.iloc[rows].reset_index(drop=True), aug), batch_size=64,
                          shuffle=shuffle, drop_last=shuffle, num_workers=workers)

    train_loader, val_loader, test_loader = loader(train, True, augment), loader(val, False), loader(test, False)
    torch.manual_seed(SEED)
    model = HATR("both", 512, 512)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    criterion = torch.nn.CrossEntropyLoss()
    out.mkdir(parents=True, exist_ok=True)
    history: dict[str, list[float]] = defaultdict(list)
    best, times = -1.0, []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        loss_sum, seen = 0.0, 0
        for batch in train_loader:
            optimizer.zero_grad()
            logits, _attention = model(batch["audio_embedding"], batch["text_embedding"])
            loss = criterion(logits, batch["class_idx"])
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch["class_idx"])
            seen += len(batch["class_idx"])
        val_acc = accuracy(model, val_loader)
        history["train_loss"].append(loss_sum / max(seen, 1))
        history["val_accuracy"].append(val_acc)
        (out / "history.json").write_text(json.dumps(history, indent=2))
        if val_acc > best:
            best = val_acc
            torch.save({"model_state": model.state_dict()}, out / "best_model.pth")
        times.append((time.perf_counter() - start, len(train)))
        print(f"baseline epoch {epoch}: {times[-1][0]:.2f} s (train {len(train)} + validation {len(val)}), "
              f"{len(train) / times[-1][0]:,.0f} training samples/s, val acc {val_acc:.2f}", flush=True)
    model.load_state_dict(torch.load(out / "best_model.pth", weights_only=True)["model_state"])
    print(f"baseline fold {fold} test accuracy {accuracy(model, test_loader):.2f}", flush=True)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="BSD-layout folder with features/*/<id>.npy "
                        "(default: write a BSD10k-sized synthetic one to a temporary folder first)")
    parser.add_argument("--fold", type=int, default=1, help="fold of the 5 to train (default 1)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs to train (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--augment", action="store_true", help="the baseline's noise + masking")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dataset
        if root is None:
            from bench_training import write_dataset

            root = write_dataset(Path(tmp) / "BSD10k")
            print(f"wrote a synthetic BSD10k-sized folder to {root} (not part of the times below)")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.workers} loader workers")
        frame = processed_table(root)
        train_one_fold(frame, Path(tmp) / "model_output", fold=args.fold, epochs=args.epochs,
                       workers=args.workers, augment=args.augment)
    print(f"baseline process: {time.perf_counter() - START:.1f} s after its first import")


if __name__ == "__main__":
    main()
