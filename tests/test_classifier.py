"""The retention classifier (hyco2/classifier.py): the bidirectional context layers that let a token's
score read the text after it, and the upgrade that adds them to a trained checkpoint unchanged."""
import pytest
import torch

from hyco2.classifier import add_classifier_context
from hyco2.config import HyCo2Config
from hyco2.encoder import EncodedBatch
from hyco2.modeling import HyCo2Model

D, LQ, LC = 32, 3, 7


def _model(seed: int = 0) -> HyCo2Model:
    torch.manual_seed(seed)
    config = HyCo2Config(hidden_size=D, classifier_question=True, adapter_dim=32, adapter_heads=4,
                         classifier_dim=16, num_soft_tokens=2)
    model = HyCo2Model(config).eval()
    with torch.no_grad():
        model.classifier.match_scale.fill_(0.7)  # a trained question match, not the upgrade's 0
    return model


def _batch(context_states: torch.Tensor, real: int) -> EncodedBatch:
    torch.manual_seed(1)
    mask = torch.arange(context_states.shape[1])[None] < real
    return EncodedBatch(context_states, mask, torch.randn(1, LQ, D), torch.ones(1, LQ, dtype=torch.bool))


def test_context_layers_start_at_zero_then_read_the_text_after_a_token(tmp_path):
    model = _model()
    states = torch.randn(1, LC, D)
    later = states.clone()
    later[0, -1] = torch.randn(D)  # only the last token's state changes
    with torch.no_grad():
        before = model(_batch(states, LC)).keep_logits
        # each token scored from its own state: an earlier token ignores what comes after it
        assert torch.equal(model(_batch(later, LC)).keep_logits[0, :-1], before[0, :-1])
        add_classifier_context(model, 1)
        assert model.config.classifier_context == 1
        assert torch.allclose(model(_batch(states, LC)).keep_logits, before, atol=1e-6)  # upgraded: unchanged
        torch.nn.init.normal_(model.classifier.context_out[1].weight)  # as if trained
        trained = model(_batch(states, LC)).keep_logits
        assert not torch.allclose(model(_batch(later, LC)).keep_logits[0, :-1], trained[0, :-1])
    model.save_pretrained(tmp_path)
    again = HyCo2Model.from_pretrained(tmp_path).eval()
    assert again.config.classifier_context == 1
    with torch.no_grad():
        assert torch.allclose(again(_batch(states, LC)).keep_logits, trained, atol=1e-2)  # float16 weights


def test_context_layers_ignore_padding():
    model = _model()
    add_classifier_context(model, 2)
    torch.nn.init.normal_(model.classifier.context_out[1].weight)
    states = torch.randn(1, 4, D)
    padded = torch.cat([states, torch.randn(1, LC - 4, D)], 1)
    with torch.no_grad():
        alone = model(_batch(states, 4)).keep_logits
        assert torch.allclose(model(_batch(padded, 4)).keep_logits[:, :4], alone, atol=1e-5)


def test_context_layers_need_the_masks_and_do_not_shrink_or_regrow():
    model = _model()
    add_classifier_context(model, 1)
    with pytest.raises(ValueError, match="pass its mask"):
        model.classifier(torch.randn(1, LC, D), torch.randn(1, LQ, D), torch.ones(1, LQ, dtype=torch.bool))
    head = model.classifier
    add_classifier_context(model, 1)  # already there: kept, trained weights and all
    assert model.classifier is head
    with pytest.raises(ValueError, match="cannot grow"):
        add_classifier_context(model, 2)


def test_adding_the_question_match_keeps_trained_context_layers():
    """Each upgrade carries every trained part of the old head over; only its own new part starts fresh."""
    from hyco2.classifier import add_question_match

    torch.manual_seed(0)
    model = HyCo2Model(HyCo2Config(hidden_size=D, adapter_dim=32, adapter_heads=4, classifier_dim=16,
                                   num_soft_tokens=2, classifier_context=1)).eval()
    torch.nn.init.normal_(model.classifier.context_out[1].weight)  # as if trained
    states = torch.randn(1, LC, D)
    with torch.no_grad():
        before = model(_batch(states, LC)).keep_logits
        add_question_match(model)
        assert model.config.classifier_question and float(model.classifier.match_scale) == 0.0
        assert torch.allclose(model(_batch(states, LC)).keep_logits, before, atol=1e-6)
