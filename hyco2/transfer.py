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
    returns them once they are there (at once on the CPU)."""

    def __init__(self, *tensors: torch.Tensor):
        self.ready: torch.cuda.Event | None = None
        if any(t.device.type == "cuda" for t in tensors):
            self.tensors = [_pinned_copy(t) for t in tensors]
            self.ready = torch.cuda.Event()
            self.ready.record()
        else:
            self.tensors = [t.cpu() for t in tensors]

    def wait(self) -> list[torch.Tensor]:
        if self.ready is not None:
            self.ready.synchronize()
            self.ready = None
        return self.tensors


def _pinned_copy(t: torch.Tensor) -> torch.Tensor:
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out
