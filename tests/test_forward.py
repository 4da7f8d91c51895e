import pytest
import torch

from hyco2.forward import _direct_body, attention_implementation, right_padded_forward


def _right_padded(tiny_backbone, lengths=(7, 3, 5)):
    torch.manual_seed(0)
    ids = torch.full((len(lengths), max(lengths)), tiny_backbone.tokenizer.pad_token_id or 0)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(10, 200, (n,))
    mask = torch.arange(ids.shape[1])[None, :] < torch.tensor(lengths)[:, None]
    return ids, mask


@torch.no_grad()
def test_direct_body_equals_the_models_own_forward_on_real_positions(tiny_backbone):
    """The layers called directly (no mask preparation) give the states of the model's forward with a
    padding mask, at every real position, from ids and from embeddings."""
    model = tiny_backbone.model
    ids, mask = _right_padded(tiny_backbone)
    ref = model.base_model(input_ids=ids, attention_mask=mask.long(), use_cache=False).last_hidden_state
    direct = _direct_body(model.base_model, ids, None).last_hidden_state
    assert torch.allclose(direct[mask], ref[mask], atol=1e-5)
    embeds = model.get_input_embeddings()(ids)
    assert torch.allclose(_direct_body(model.base_model, None, embeds).last_hidden_state[mask], ref[mask], atol=1e-5)
    assert torch.equal(right_padded_forward(model, input_ids=ids).last_hidden_state, direct)  # the path it takes


@torch.no_grad()
def test_attention_weights_and_other_kernels_take_the_models_forward(tiny_backbone, monkeypatch):
    import hyco2.forward as forward_module

    def refuse(*a, **k):
        raise AssertionError("the direct body must not run here")

    monkeypatch.setattr(forward_module, "_direct_body", refuse)
    ids, mask = _right_padded(tiny_backbone)
    with attention_implementation(tiny_backbone.model, "eager"):  # eager attention needs its causal mask
        out = right_padded_forward(tiny_backbone.model, input_ids=ids, output_attentions=True)
        assert out.attentions is not None and len(out.attentions) == tiny_backbone.model.config.num_hidden_layers
        right_padded_forward(tiny_backbone.model, input_ids=ids)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a host-device synchronisation exists on CUDA only")
@torch.no_grad()
def test_the_pass_queues_without_waiting_for_the_device(tiny_backbone):
    """No read-back from the device while the pass is queued (transformers' mask preparation made one
    at every forward)."""
    import copy

    model = copy.deepcopy(tiny_backbone.model).cuda()
    ids, _ = _right_padded(tiny_backbone)
    ids = ids.cuda()
    right_padded_forward(model, input_ids=ids)  # warm-up (first calls may load kernels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        right_padded_forward(model, input_ids=ids)
    finally:
        torch.cuda.set_sync_debug_mode("default")
