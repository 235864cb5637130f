"""Test material for the real LAION-CLAP code with no network: tiny RoBERTa files, a random checkpoint.

:func:`write_tiny_roberta_files` writes what BST Studio reads for CLAP's text branch (the files of
``roberta-base`` the real user downloads once): a byte-level BPE ``vocab.json`` of the 256 byte
symbols plus a handful of merges, ``merges.txt`` and a ``config.json``. The config keeps the
768-wide hidden size because CLAP's text projection hard-codes ``nn.Linear(768, 512)``, but has
one layer, two heads and a 64-wide feed-forward, so it builds in well under a second.

:func:`write_random_checkpoint` builds the real ``laion_clap.CLAP_Module(enable_fusion=True)``
from those files (random weights), and saves its state dict in the layout of the official
``630k-audioset-fusion-best.pt`` (``{"epoch", "name", "state_dict"}`` with ``module.``-prefixed
keys, including ``text_branch.embeddings.position_ids``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")
MERGES = (("Ġ", "d"), ("o", "g"), ("Ġd", "og"), ("Ġ", "b"), ("a", "r"), ("Ġb", "ar"), ("k", "s"))
CONTEXT_POSITIONS = 80   # RoBERTa positions start after the pad index (1): 77 tokens need 79


def write_tiny_roberta_files(folder: Path) -> Path:
    """Write ``vocab.json``, ``merges.txt``, ``config.json`` of a tiny 768-wide RoBERTa into ``folder``."""
    from tokenizers.pre_tokenizers import ByteLevel

    folder.mkdir(parents=True, exist_ok=True)
    tokens = [*SPECIAL_TOKENS, *sorted(ByteLevel.alphabet()), *("".join(pair) for pair in MERGES), "<mask>"]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES), encoding="utf-8")
    config = {
        "architectures": ["RobertaForMaskedLM"], "model_type": "roberta",
        "vocab_size": len(vocab), "hidden_size": 768, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": CONTEXT_POSITIONS, "type_vocab_size": 1,
        "initializer_range": 0.02, "layer_norm_eps": 1e-5,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


def write_random_checkpoint(path: Path, text_dir: Path, *, protocol: int = 2) -> Any:
    """Save a randomly initialised fusion CLAP (built by the real library) as the official file is
    laid out; returns that ``CLAP_Module``, whose weights are now the checkpoint's."""
    import torch

    from bst_core.encoders.clap import build_clap_module

    torch.manual_seed(0)
    module = build_clap_module(text_dir, device="cpu")
    state = module.model.state_dict()
    if "text_branch.embeddings.position_ids" not in state:   # a buffer older transformers saved
        state["text_branch.embeddings.position_ids"] = torch.arange(CONTEXT_POSITIONS)[None]
    payload = {"epoch": 45, "name": "random-test-clap",
               "state_dict": {f"module.{key}": value for key, value in state.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path, pickle_protocol=protocol)
    return module


def tone(seconds: float, *, freq: float = 440.0, sr: int = 48_000, seed: int = 0) -> np.ndarray:
    """A mono float32 test clip: a sine with a little noise (distinct per ``seed``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    clip = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))
    return clip.astype(np.float32)
