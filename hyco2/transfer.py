"""Host ↔ device copies that do not wait for the device's queue.

Why: a plain ``tensor.to("cuda")`` from ordinary (pageable) memory, or ``.cpu()`` of a result, blocks
the Python thread until the GPU has finished everything queued before it. Batch compression wants the
opposite: queue batch *i+1*'s forward, then do batch *i*'s host work (selection, decoding, counting)
while the GPU computes. Pinned (page-locked) staging memory lets both copies run behind the queue. On
the CPU these are plain tensors: nothing is queued, so nothing needs waiting for.
"""
from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (on the host) on ``device``; on CUDA through pinned memory, without waiting for the queue."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class HostCopy:
    """Copies of device tensors in host memory, queued behind the work that makes them; :meth:`wait`
    returns them once they are there (at once on the CPU), in ordinary memory.

    Why not hand out the pinned staging tensors themselves: results keep them (a batch's soft tokens,
    as views) for as long as the caller likes, so PyTorch's pinned-memory cache never got a block back:
    a batch run held pinned memory for every result (36 KB a paragraph) and allocated more at every
    batch, and a page-locked allocation waits for all work on the device (CUDA's implicit
    synchronisation). Copied out after the wait, the staging blocks go back to the cache.

    The event is recorded on the stream of the tensors' own device: recorded on the current device's
    (cuda:0 unless set), it would not cover a copy on cuda:1, and :meth:`wait` could return before it.
    """

    def __init__(self, *tensors: torch.Tensor):
        self.ready: torch.cuda.Event | None = None
        on_gpu = [t.device for t in tensors if t.device.type == "cuda"]
        if on_gpu:
            if len(set(on_gpu)) > 1:
                raise ValueError(f"one HostCopy copies from one device, not {sorted(map(str, set(on_gpu)))}")
            self.tensors = [_pinned_copy(t) for t in tensors]
            self.ready = torch.cuda.Event()
            self.ready.record(torch.cuda.current_stream(on_gpu[0]))
        else:
            self.tensors = [t.cpu() for t in tensors]

    def wait(self) -> list[torch.Tensor]:
        if self.ready is not None:
            self.ready.synchronize()
            self.ready = None
            self.tensors = [torch.empty(t.shape, dtype=t.dtype).copy_(t) for t in self.tensors]  # unpinned
        return self.tensors


def _pinned_copy(t: torch.Tensor) -> torch.Tensor:
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out
