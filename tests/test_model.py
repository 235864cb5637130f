"""HATR: the seed report's parameter counts, output shapes, attention fusion."""

from __future__ import annotations

import pytest
import torch

from bst_core.model import HATR, count_parameters, draw_dropout_masks, dropout_layers, predict_probs
from bst_core.taxonomy import NUM_CLASSES


def test_parameter_counts_match_the_seed_report() -> None:
    assert count_parameters(HATR("both", 512, 512)) == 7_319_513
    assert count_parameters(HATR("audio", 512, 512)) == 3_698_647
    assert count_parameters(HATR("text", 512, 512)) == 3_698_647


def test_default_dropout_is_the_reports() -> None:
    model = HATR()
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.1, 0.05}  # p in the encoders and head, p/2 after the latent projector


def test_both_mode_returns_logits_and_attention_weights() -> None:
    torch.manual_seed(0)
    model = HATR("both", 24, 40, hidden=16).eval()
    logits, attention = model(torch.randn(5, 24), torch.randn(5, 40))
    assert logits.shape == (5, NUM_CLASSES)
    assert attention is not None and attention.shape == (5, 2)
    assert torch.allclose(attention.sum(dim=1), torch.ones(5))
    assert (attention > 0).all()


@pytest.mark.parametrize("mode", ["audio", "text"])
def test_single_modality_ignores_the_other_input(mode: str) -> None:
    model = HATR(mode, 24, 24, hidden=16).eval()
    x = torch.randn(3, 24)
    logits, attention = model(x, None) if mode == "audio" else model(None, x)
    assert logits.shape == (3, NUM_CLASSES) and attention is None
    assert model.fusion is None
    assert (model.text_encoder is None) == (mode == "audio")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        HATR("video")  # type: ignore[arg-type]


def test_predict_probs_is_softmax_in_eval_mode_and_batched() -> None:
    torch.manual_seed(0)
    model = HATR("both", 8, 8, hidden=16)
    audio, text = torch.randn(10, 8), torch.randn(10, 8)
    probs, attention = predict_probs(model, audio, text, batch_size=3)
    assert not model.training
    assert probs.shape == (10, NUM_CLASSES) and attention is not None and attention.shape == (10, 2)
    assert torch.allclose(probs.sum(dim=1), torch.ones(10))
    whole, _ = predict_probs(model, audio, text, batch_size=100)
    assert torch.allclose(probs, whole, atol=1e-6)


def test_planned_dropout_masks_are_the_ones_the_forward_pass_draws() -> None:
    torch.manual_seed(0)
    model = HATR("both", 24, 40, hidden=16, dropout=0.3).train()
    audio, text = torch.randn(6, 24), torch.randn(6, 40)
    torch.manual_seed(1)
    drawn, _ = model(audio, text)
    torch.manual_seed(1)
    draw_dropout_masks(model, 6)
    assert all(layer.planned is not None for layer in dropout_layers(model))
    torch.manual_seed(99)  # the planned masks, not the generator, decide now
    planned, _ = model(audio, text)
    assert torch.equal(drawn, planned)
    assert all(layer.planned is None for layer in dropout_layers(model))  # each used once


def test_a_planned_mask_of_the_wrong_shape_is_refused() -> None:
    model = HATR("audio", 8, 8, hidden=8).train()
    draw_dropout_masks(model, 3)
    with pytest.raises(RuntimeError, match="planned dropout mask"):
        model(torch.randn(4, 8), None)


@pytest.mark.parametrize("mode", ["both", "audio", "text"])
def test_seeded_hatr_has_the_weights_of_a_seeded_global_generator_and_leaves_it_alone(mode: str) -> None:
    from bst_core.model import seeded_hatr

    torch.manual_seed(5)
    expected = HATR(mode, 24, 16, hidden=16)
    expected_next = torch.rand(8)          # what the global stream gives after the init
    torch.manual_seed(99)
    before = torch.get_rng_state()
    model = seeded_hatr(5, torch.device("cpu"), mode, 24, 16, hidden=16)
    assert torch.equal(torch.get_rng_state(), before)       # the global generator was not used
    for (name, want), (_, got) in zip(expected.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(want, got), name
    generator = dropout_layers(model)[0].generator
    assert generator is not None and all(layer.generator is generator for layer in dropout_layers(model))
    assert torch.equal(torch.rand(8, generator=generator), expected_next)   # dropout continues the stream
