"""HATR: the feed-forward classifier over frozen audio/text embeddings (seed report, section 4).

Layer for layer the organizers' baseline: one :class:`EmbeddingEncoder` per modality, an
:class:`AttentionFusion` of the two encodings in ``both`` mode, a latent projector, two residual
blocks and a small head predicting the 23 second-level classes directly. With 512-d inputs and
hidden size 128 it has 7,319,513 trainable parameters (``both``) or 3,698,647 (one modality).

Every dropout is a :class:`Dropout` that knows its width, so the masks of one training step can
be drawn ahead of the forward pass (:func:`draw_dropout_masks`, the same values in the same
random order as the forward pass would draw them): that lets the two encoder branches run on two
threads with bit-identical results (:mod:`bst_core.train_step`). A training run gives each
dropout a private generator (:func:`seeded_hatr`) so that nothing else in the process (another
job loading a model, the app's warm-up) can change its random stream; models that are loaded,
not trained, are built without drawing a random number (:func:`hatr_for_loading`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from bst_core.config import MODES
from bst_core.taxonomy import NUM_CLASSES

Mode = Literal["both", "audio", "text"]


class Dropout(nn.Dropout):
    """``nn.Dropout`` over ``features``-wide rows whose next mask may be planned ahead.

    A planned mask (set by :func:`draw_dropout_masks`) is used once, by the next training-mode
    call (eval-mode calls leave it); it holds exactly what ``nn.Dropout`` would have drawn
    (``bernoulli_(1 - p) / (1 - p)``). With a ``generator`` (CPU), masks are drawn from it in
    the same way instead of from torch's global generator.
    """

    def __init__(self, p: float, features: int) -> None:
        super().__init__(p)
        self.features = features
        self.planned: torch.Tensor | None = None
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # eval passes leave a planned mask for training
            return super().forward(x)
        if self.planned is not None:
            mask, self.planned = self.planned, None
            if mask.shape != x.shape:
                raise RuntimeError(f"planned dropout mask {tuple(mask.shape)} does not fit input {tuple(x.shape)}")
            return x * mask
        if self.generator is None or self.p == 0:
            return super().forward(x)
        return x * _mask(x.shape, self.p, self.generator, x.device)


def _mask(shape: tuple[int, ...] | torch.Size, p: float, generator: torch.Generator | None,
          device: torch.device | str) -> torch.Tensor:
    """What CPU ``nn.Dropout`` multiplies by: ``empty.bernoulli_(1 - p) / (1 - p)``."""
    keep = 1.0 - p
    return torch.empty(shape, device=device).bernoulli_(keep, generator=generator).div_(keep)


def dropout_layers(model: nn.Module) -> list[Dropout]:
    """The model's :class:`Dropout` layers in the order its forward pass calls them."""
    return [m for m in model.modules() if isinstance(m, Dropout)]


def draw_dropout_masks(layers: nn.Module | list[Dropout], batch: int, device: torch.device | str = "cpu") -> None:
    """Plan the next training-mode masks of ``layers`` (a module's, or a list in call order) from
    the layers' generator (torch's global one where they have none).

    Same values as the forward pass would draw: ``torch.empty(batch, width).bernoulli_(1 - p)``
    divided by ``1 - p``, one layer after another (a layer with ``p == 0`` draws nothing, as in
    ``nn.Dropout``). Only for modules whose forward calls each dropout once, in registration order
    (every HATR part does).
    """
    for layer in dropout_layers(layers) if isinstance(layers, nn.Module) else layers:
        if layer.p > 0:
            layer.planned = _mask((batch, layer.features), layer.p, layer.generator, device)


class ResidualBlock(nn.Module):
    """``x → Linear → BN → LeakyReLU → Dropout → Linear → BN → (+x) → LeakyReLU``."""

    def __init__(self, size: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(size, inner)
        self.norm1 = nn.BatchNorm1d(inner)
        self.linear2 = nn.Linear(inner, size)
        self.norm2 = nn.BatchNorm1d(size)
        self.activation = nn.LeakyReLU()
        self.dropout = Dropout(dropout, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.activation(self.norm1(self.linear1(x))))
        out = self.norm2(self.linear2(out))
        return self.activation(out + x)


class EmbeddingEncoder(nn.Module):
    """Maps one modality's embedding to ``output_size`` features (input BN, 3 residual blocks)."""

    def __init__(self, input_size: int, output_size: int, dropout: float, num_blocks: int = 3) -> None:
        super().__init__()
        width = max(input_size, 2 * output_size)
        self.input_norm = nn.BatchNorm1d(input_size)
        self.input_projection = nn.Sequential(
            nn.Linear(input_size, width), nn.LeakyReLU(), Dropout(dropout, width))
        self.residual_blocks = nn.ModuleList(
            ResidualBlock(width, 2 * width, dropout) for _ in range(num_blocks))
        self.output_projection = nn.Sequential(
            nn.Linear(width, width // 2), nn.LeakyReLU(), Dropout(dropout, width // 2),
            nn.Linear(width // 2, output_size))
        self.output_norm = nn.BatchNorm1d(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_projection(self.input_norm(x))
        for block in self.residual_blocks:
            x = block(x)
        return self.output_norm(self.output_projection(x))


class AttentionFusion(nn.Module):
    """Two softmax weights from ``[audio; text]``; the fused feature is their weighted sum.

    ``audio_present`` (bool per row) masks the audio weight of rows without decoded audio: their
    weights become [0, 1], so the fused feature is the text encoding alone and the attention shown
    never credits a zero vector. ``None`` keeps the seed behaviour (no mask).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(2 * size, size), nn.Tanh(), nn.Linear(size, 2), nn.Softmax(dim=-1))

    def forward(self, audio: torch.Tensor, text: torch.Tensor,
                audio_present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.attention(torch.cat([audio, text], dim=-1))
        if audio_present is not None:
            text_only = weights.new_tensor([0.0, 1.0]).expand_as(weights)
            weights = torch.where(audio_present.view(-1, 1), weights, text_only)
        fused = audio * weights[:, 0:1] + text * weights[:, 1:2]
        return fused, weights


class HATR(nn.Module):
    """The HATR classifier. ``forward(audio, text, audio_present=None) -> (logits, attention | None)``.

    ``attention`` is ``(batch, 2)`` = [audio weight, text weight] in ``both`` mode, else None.
    In ``audio``/``text`` mode the other argument is ignored (may be None).
    """

    def __init__(self, mode: Mode = "both", audio_dim: int = 512, text_dim: int = 512,
                 hidden: int = 128, dropout: float = 0.1, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.audio_dim = audio_dim
        self.text_dim = text_dim
        self.hidden = hidden
        self.num_classes = num_classes
        self.audio_encoder = (EmbeddingEncoder(audio_dim, hidden, dropout)
                              if mode in ("both", "audio") else None)
        self.text_encoder = (EmbeddingEncoder(text_dim, hidden, dropout)
                             if mode in ("both", "text") else None)
        self.fusion = AttentionFusion(hidden) if mode == "both" else None
        half = hidden // 2
        self.latent_projector = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.LeakyReLU(), Dropout(dropout, 2 * hidden),
            nn.Linear(2 * hidden, hidden), nn.LeakyReLU(), Dropout(dropout, hidden),
            nn.Linear(hidden, half), nn.LeakyReLU(), Dropout(dropout / 2, half))
        self.residual_blocks = nn.ModuleList(ResidualBlock(half, hidden, dropout / 2) for _ in range(2))
        self.head = nn.Sequential(
            nn.Linear(half, half // 2), nn.LeakyReLU(), Dropout(dropout, half // 2),
            nn.Linear(half // 2, num_classes))

    def forward(self, audio: torch.Tensor | None, text: torch.Tensor | None,
                audio_present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        features, attention = self._encode(audio, text, audio_present)
        return self.classify(features), attention

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from the ``(batch, hidden)`` features of :meth:`features` (projector, blocks, head)."""
        z = self.latent_projector(features)
        for block in self.residual_blocks:
            z = block(z)
        return self.head(z)

    def features(self, audio: torch.Tensor | None, text: torch.Tensor | None,
                 audio_present: torch.Tensor | None = None) -> torch.Tensor:
        """The model's own ``(batch, hidden)`` feature of each item, before ``latent_projector``: the
        attention-fused encoding in ``both`` mode, else the one modality's encoding.

        Same arguments as :meth:`forward`; the caller chooses train/eval mode and grad (explanations
        use eval mode under ``inference_mode``).
        """
        return self._encode(audio, text, audio_present)[0]

    def _encode(self, audio: torch.Tensor | None, text: torch.Tensor | None,
                audio_present: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention = None
        if self.fusion is not None:
            assert self.audio_encoder is not None and self.text_encoder is not None
            assert audio is not None and text is not None, "both mode needs audio and text"
            features, attention = self.fusion(self.audio_encoder(audio), self.text_encoder(text), audio_present)
        elif self.audio_encoder is not None:
            assert audio is not None, "audio mode needs audio embeddings"
            features = self.audio_encoder(audio)
        else:
            assert self.text_encoder is not None and text is not None, "text mode needs text embeddings"
            features = self.text_encoder(text)
        return features, attention


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.inference_mode()
def predict_probs(model: HATR, audio: torch.Tensor | None, text: torch.Tensor | None, *,
                  audio_present: torch.Tensor | None = None,
                  batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax probabilities ``(n, classes)`` and attention ``(n, 2) | None`` in eval mode.

    Runs in a few large batches; the model is left in eval mode. ``audio_present``: see
    :class:`AttentionFusion` (only used in ``both`` mode).
    """
    model.eval()
    source = audio if audio is not None else text
    assert source is not None, "no embeddings given"
    probs, attention = [], []
    for start in range(0, len(source), batch_size):
        part = slice(start, start + batch_size)
        logits, attn = model(None if audio is None else audio[part], None if text is None else text[part],
                             None if audio_present is None else audio_present[part])
        probs.append(torch.softmax(logits, dim=-1))
        if attn is not None:
            attention.append(attn)
    if not probs:
        return torch.empty(0, model.num_classes), None
    return torch.cat(probs), (torch.cat(attention) if attention else None)


def seeded_hatr(seed: int, device: torch.device, *args: Any, **kwargs: Any) -> HATR:
    """A new ``HATR(*args, **kwargs)`` on ``device`` with the weights ``torch.manual_seed(seed)``
    would give it, drawn from a private generator that its dropouts then keep drawing from (on
    CPU): the numbers of the plain seeded run, whatever other threads draw from torch's global
    generator meanwhile (another job loading a model, the app's warm-up). The global CPU
    generator is not touched.

    On an accelerator (CUDA, MPS, XPU) the dropouts keep torch's fused kernel and that device's
    global generator, which is seeded here (and left so): such a run stays reproducible while no
    other thread draws random numbers on that device.
    """
    generator = torch.Generator().manual_seed(seed)
    model = hatr_for_loading(*args, **kwargs).to_empty(device="cpu")
    for module in model.modules():   # construction order: the draws of nn.Linear's own init
        if isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in = module.weight.shape[1]
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()
        elif any(True for _ in module.parameters(recurse=False)):
            raise TypeError(f"seeded_hatr cannot initialise {type(module).__name__}: add its init here")
    model = model.to(device)
    if device.type == "cpu":
        for layer in dropout_layers(model):
            layer.generator = generator
    else:   # cuda, mps, xpu: the device's own generator, as torch.manual_seed(seed) seeded it
        torch.get_device_module(device.type).manual_seed(seed)
    return model


def hatr_for_loading(*args: Any, **kwargs: Any) -> HATR:
    """``HATR(*args, **kwargs)`` with its tensors on the meta device: no initialisation, no random
    number drawn. Give it weights with ``load_state_dict(state, assign=True)``."""
    with torch.device("meta"):
        return HATR(*args, **kwargs)
