"""``--engine ray``: the compress step on the actors of a Ray cluster (this machine, or many).

Why actors behind the :class:`batch.devices.DevicePool` interface, not a separate pipeline: the driver
keeps reading the folder, skipping what is done and being the one SQLite writer, so a Ray run is
resumable exactly like a local one (by file hash; a document commits whole or not at all) and needs no merge
step; only the compress step moves, to one actor per GPU (or CPU worker) that Ray places on whichever
machine of the cluster has it free. What crosses the network is each batch's text and each result's
row columns (no hidden states, no per-token scores, soft tokens only when the run stores them). The
driver's share of the work (reading, hashing, writing) is what bounds a very large cluster;
``bench/batch.py`` measures it.

Every node needs this package installed (``pip install 'hyco2[ray]'``) and, for ``--checkpoint``, the
same path; the default checkpoint and backbone ship with the package.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future

from hyco2.errors import HyCo2Error, InvalidSettingError
from hyco2.settings import CompressionSettings

from .devices import DeviceWorker, Items, check_per_device, parse_devices


def import_ray():
    try:
        import ray
    except ImportError:
        raise HyCo2Error("--engine ray needs Ray: pip install 'hyco2[ray]' (or pip install ray)") from None
    return ray


def ray_devices(spec: str | None, cluster: dict[str, float], per_device: int = 1) -> list[str]:
    """One entry per actor: ``all`` → every GPU of the cluster; ``cuda:0,cuda:1`` → two GPU actors (Ray
    picks the GPUs, on any node); ``cpu,cpu`` → two CPU actors; nothing → one CPU actor; each
    ``per_device`` times (a GPU actor then takes that share of its GPU)."""
    check_per_device(per_device)
    if not spec:
        return ["cpu"] * per_device
    if spec.strip() == "all":
        gpus = int(cluster.get("GPU", 0))
        if not gpus:
            raise InvalidSettingError("--devices all: the Ray cluster has no GPUs; use --devices cpu,cpu,… instead.")
        return ["cuda"] * gpus * per_device
    # the local path's check of each entry
    return ["cpu" if d == "cpu" else "cuda" for d in parse_devices(spec, per_device)]


class _Actor(DeviceWorker):
    def work(self, items: Items):
        return self(items)

    def ready(self) -> bool:
        return True


class RayPool:
    """One Ray actor per device; each batch goes to the actor with the fewest batches in flight."""

    def __init__(self, devices: str | None, *, checkpoint: str | None, model: str | None, quantize: str,
                 settings: CompressionSettings, batch_size: int, batch_tokens: int | None = None,
                 compile: bool = False, embeddings: bool = False, address: str | None = None,
                 per_device: int = 1):
        ray = import_ray()
        self.ray, self.started = ray, not ray.is_initialized()
        if self.started:  # address None: a local cluster, or the one $RAY_ADDRESS names
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.devices = ray_devices(devices, ray.cluster_resources(), per_device)
        n_cpu = self.devices.count("cpu")
        actor = ray.remote(_Actor)
        self.actors = [actor.options(num_cpus=1, num_gpus=1 / per_device if d == "cuda" else 0).remote(
            d, checkpoint, model, quantize, settings, batch_size, batch_tokens, compile,
            share=max(1, n_cpu) if d == "cpu" else 1, embeddings=embeddings)
            for d in self.devices]
        ray.get([a.ready.remote() for a in self.actors])  # models loaded before the run's clock starts
        self.in_flight = [0] * len(self.actors)
        self.lock = threading.Lock()

    def submit(self, items: Items) -> Future:
        with self.lock:
            i = min(range(len(self.actors)), key=self.in_flight.__getitem__)
            self.in_flight[i] += 1
        future = self.actors[i].work.remote(items).future()
        future.add_done_callback(lambda _: self._done(i))
        return future

    def _done(self, i: int) -> None:
        with self.lock:
            self.in_flight[i] -= 1

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()
