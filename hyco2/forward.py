"""Teacher-forced scoring of target tokens after decoder prompts: the one routine behind training
losses, the teacher cache and the benchmark's answer likelihoods."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F

from .errors import HyCo2OutOfMemoryError


@contextlib.contextmanager
def friendly_oom() -> Iterator[None]:
    """A device out of memory becomes a :class:`HyCo2OutOfMemoryError` that says what to change."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise HyCo2OutOfMemoryError(
            "The device ran out of memory. Use a smaller batch size, a shorter context, "
            "--quantize 4bit on a GPU, or --device cpu."
        ) from exc



def end_of_turn(backbone) -> int:
    """The token that ends an answer: the chat template's ``<|im_end|>``, else the tokenizer's EOS."""
    tok = backbone.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    if not isinstance(eos, int) or eos == tok.unk_token_id:
        eos = tok.eos_token_id
    return int(eos)


def bf16_autocast(device: torch.device):
    """bf16 autocast on CUDA (training and the teacher); a no-op on CPU, which runs float32."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


@contextlib.contextmanager
def attention_implementation(model, impl: str) -> Iterator[None]:
    """Switch the attention kernel for a block (``eager`` when attention weights are wanted)."""
    before = getattr(model.config, "_attn_implementation", None) or "sdpa"

    def use(name: str) -> None:
        try:
            model.set_attn_implementation(name)
        except (AttributeError, ValueError):
            model.config._attn_implementation = name

    use(impl)
    try:
        yield
    finally:
        use(before)


#: Model types whose body is embed → rotary → layers → norm, run by :func:`right_padded_forward` itself.
DIRECT_BODIES = ("llama",)


def right_padded_forward(model, *, input_ids: torch.Tensor | None = None,
                         inputs_embeds: torch.Tensor | None = None, output_attentions: bool = False,
                         position_ids: torch.Tensor | None = None, output_hidden_states: bool = False):
    """The backbone's body over right-padded rows, with no attention mask.

    Why no mask: in a causal model a real token attends only to itself and earlier positions, and right
    padding puts every pad after its row's last real token, so a padding mask changes nothing for the
    real tokens (position ids count from 0 either way). Without one, SDPA takes its fused causal kernel
    (flash attention on a GPU) instead of a masked one. The pads' own outputs are junk: callers read
    real positions only. Every training and compression pass here is right-padded; generation (left
    padding, for batched decoding) keeps its mask. No KV cache either: nothing is decoded after these
    passes, and a cache object per call would also make a compiled layer recompile for every layer
    (:meth:`hyco2.backbone.Backbone.compile_layers`). ``position_ids`` (B, T): where each token sits, when
    not 0, 1, 2, … (a reader that puts kept tokens at their original positions). ``output_hidden_states``:
    also the embeddings' and every layer's states, as transformers returns them (the last after the norm).

    For Llama-family bodies under SDPA the layers are called here directly (:func:`_direct_body`), not
    through the model's ``forward``: transformers' mask preparation, even when it ends in no mask, reads
    a value back from the device at every call (``find_packed_sequence_indices``), so the host waited
    for the device's queue before it could launch each pass."""
    base = model.base_model
    if (not output_attentions and getattr(base.config, "model_type", None) in DIRECT_BODIES
            and getattr(base.config, "_attn_implementation", None) == "sdpa"):
        return _direct_body(base, input_ids, inputs_embeds, position_ids, output_hidden_states)
    return base(input_ids=input_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                position_ids=position_ids, use_cache=False, output_hidden_states=output_hidden_states)


def _direct_body(base, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
                 position_ids: torch.Tensor | None = None, output_hidden_states: bool = False):
    """A Llama-family body without a mask (SDPA's causal kernel): what its ``forward`` does for
    right-padded rows with no cache, less the mask preparation. ``tests/test_forward.py`` holds it equal
    to the model's own forward."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    h = base.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
    positions = torch.arange(h.shape[1], device=h.device)[None, :] if position_ids is None else position_ids
    rotary = base.rotary_emb(h, position_ids=positions)
    states = [h] if output_hidden_states else None
    for layer in base.layers[: base.config.num_hidden_layers]:
        out = layer(h, attention_mask=None, position_ids=positions, position_embeddings=rotary, use_cache=False)
        h = out[0] if isinstance(out, tuple) else out  # transformers 4 returned a tuple
        if states is not None:
            states.append(h)
    h = base.norm(h)
    if states is not None:
        states[-1] = h  # as transformers gives them: the last layer's state after the final norm
    return BaseModelOutputWithPast(last_hidden_state=h, hidden_states=tuple(states) if states else None)


def forward_on_targets(model, prompts: list[torch.Tensor], targets: list[list[int]],
                       want_attention: bool = False, prompt_positions: list[torch.Tensor | None] | None = None):
    """Run ``[prompt][target]`` sequences, right-padded, and score only the target positions.

    Right padding keeps every query row attending to at least one real token (fully masked rows
    give NaN gradients) and needs no mask (:func:`right_padded_forward`), and gathering the hidden states before the LM head avoids (B, T, V) logits.
    Returns target logits (B, Tt, V), target ids and mask, each prompt's length, and attentions.
    ``prompt_positions``: each prompt's position ids when not 0…n-1; its target continues after the last.
    """
    B, D = len(prompts), prompts[0].shape[-1]
    lens = [p.shape[0] for p in prompts]
    T = max(n + len(t) for n, t in zip(lens, targets))
    Tt = max(1, max(len(t) for t in targets))
    dev, dtype = prompts[0].device, prompts[0].dtype
    emb_layer = model.get_input_embeddings()
    E = torch.zeros((B, T, D), device=dev, dtype=dtype)
    tmask = torch.zeros((B, Tt), device=dev, dtype=torch.bool)
    tids = torch.zeros((B, Tt), device=dev, dtype=torch.long)
    where = torch.zeros((B, Tt), device=dev, dtype=torch.long)
    for i, (p, t, n) in enumerate(zip(prompts, targets, lens)):
        E[i, :n] = p
        if t:
            ids = torch.tensor(t, device=dev)
            E[i, n:n + len(t)] = emb_layer(ids).to(dtype)
            tmask[i, : len(t)] = True
            tids[i, : len(t)] = ids
            where[i, : len(t)] = torch.arange(n - 1, n - 1 + len(t), device=dev)  # position n-1+j predicts j
    P = None
    if prompt_positions is not None and any(p is not None for p in prompt_positions):
        P = torch.arange(T, device=dev).repeat(B, 1)
        for i, (p, n) in enumerate(zip(prompt_positions, lens)):
            if p is not None:
                P[i, :n] = p.to(dev)
                P[i, n:] = p[-1].item() + 1 + torch.arange(T - n, device=dev)
    out = right_padded_forward(model, inputs_embeds=E, output_attentions=want_attention, position_ids=P)
    logits = logits_at(model, out.last_hidden_state, where)
    return logits, tids, tmask, lens, (out.attentions if want_attention else None)


def logits_at(model, hidden: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """LM-head logits (float32) at the positions ``where`` (B, Tt) of ``hidden`` (B, T, D) only."""
    h = torch.gather(hidden, 1, where[..., None].expand(-1, -1, hidden.shape[-1]))
    return model.get_output_embeddings()(h).float()


def target_nll(logits: torch.Tensor, tids: torch.Tensor, tmask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per target token of each row (B,); NaN for an empty target."""
    nll = F.cross_entropy(logits.transpose(1, 2), tids, reduction="none") * tmask
    return nll.sum(1) / tmask.sum(1)


@torch.no_grad()
def greedy_decode(model, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                  max_new_tokens: int, stop_ids: set[int], pad_id: int) -> torch.Tensor:
    """Greedy decoding from left-padded prompt embeddings (B, T, D) with explicit position ids (B, T),
    which ``generate`` cannot take from embeddings: each new token sits one after its row's last
    position. Returns the new token ids (B, ≤ max_new_tokens); a row that stopped is padded."""
    import inspect

    B = embeds.shape[0]
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"  # 5.2x renamed it
    out = model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
    past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
    pos = positions[:, -1:] + 1
    done = torch.zeros(B, dtype=torch.bool, device=embeds.device)
    stop = torch.tensor(sorted(stop_ids), device=embeds.device)
    new = []
    for step in range(max_new_tokens):
        tok = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        new.append(tok)
        done |= torch.isin(nxt, stop)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=mask.device)], dim=1)
        out = model(input_ids=tok[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                    **{cache_arg: past})
        past, nxt, pos = out.past_key_values, out.logits[:, -1].argmax(-1), pos + 1
    return torch.stack(new, dim=1)
