"""What the benchmarks share: the question sets and where the data lie, the machine's name, device
timing and peak memory, and the peers' display names. Every bench script runs as ``python bench/x.py``
or ``python -m bench.x`` and imports this as ``bench.common``."""
from __future__ import annotations

import platform
import threading
from pathlib import Path

import torch

from hyco2.text import DOCUMENT_SEPARATOR
from hyco2.training.data import read_squad

#: Where this workplace keeps the data: the benchmarks' default for --data-dir (never the package's).
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {  # name -> [(file, articles or None for all)]
    "default": [("squad-v2-dev-subset.json", ["Southern_California"]), ("xquad-en-subset.json", None)],
    "socal": [("squad-v2-dev-subset.json", ["Southern_California"])],
    "xquad": [("xquad-en-subset.json", None)],
    # validation for choosing between training variants: articles of the training pool that the
    # shipped recipe holds out of SQuAD v1.0 train (never the measurement set)
    "validation": [("squad-v2-dev-subset.json", ["Normans", "Computational_complexity_theory"])],
}


NAMES = {"selective-context": "Selective Context", "llmlingua": "LLMLingua", "longllmlingua": "LongLLMLingua",
         "mig": "COMI MIG", "truncate": "truncate", "random": "random"}


class PeakMemory:
    """Peak resident memory (CPU, sampled) or peak allocated GPU memory during a block, in MiB."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0.0, threading.Event()

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 2**20

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a wall-clock timing covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import os

    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def load_items(set_name: str, data_dir: Path):
    items = []
    for name, articles in SETS[set_name]:
        items += read_squad(data_dir / name, include=set(articles) if articles else None)
    return items


def gold_position(item) -> int:
    """1-based place of the question's own paragraph among the paragraphs of its context."""
    return item.context[: item.gold_start].count(DOCUMENT_SEPARATOR) + 1
