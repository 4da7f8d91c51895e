"""Host ↔ device copies (hyco2.transfer): the same values, wherever they run."""
import pytest
import torch

from hyco2.transfer import HostCopy, to_device


def test_to_device_on_cpu_is_the_same_tensor_values():
    t = torch.arange(6).reshape(2, 3)
    out = to_device(t, torch.device("cpu"))
    assert out.device.type == "cpu" and torch.equal(out, t)


def test_host_copy_returns_the_values_on_the_host():
    a, b = torch.randn(3, 4), torch.rand(2)
    got = HostCopy(a, b).wait()
    assert [t.device.type for t in got] == ["cpu", "cpu"]
    assert torch.equal(got[0], a) and torch.equal(got[1], b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_queued_copies_on_a_gpu_arrive_whole():
    dev = torch.device("cuda")
    x = to_device(torch.arange(1 << 20, dtype=torch.float32), dev)
    y = x
    for _ in range(50):  # work queued before the copy
        y = y + 1
    got = HostCopy(y, x[:5]).wait()
    assert not any(t.is_pinned() for t in got)  # results keep them: no pinned memory held
    assert torch.equal(got[0], torch.arange(1 << 20, dtype=torch.float32) + 50)
    assert torch.equal(got[1], torch.arange(5, dtype=torch.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compressed_results_on_a_gpu_hold_no_pinned_memory():
    from hyco2 import HyCo2Compressor

    comp = HyCo2Compressor.from_pretrained(device="cuda")
    texts = [f"Paragraph {i}: the bridge opened in {1900 + i} and carries {i} lanes." for i in range(40)]
    results = comp.compress_batch(texts, rate=0.3, batch_size=8)
    assert all(r.soft_embeddings.device.type == "cpu" and not r.soft_embeddings.is_pinned() for r in results)
    assert [r.kept_text for r in results] == [comp.compress(t, rate=0.3).kept_text for t in texts]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_queued_copies_from_a_second_gpu_arrive_whole():
    """The event that wait() waits for is on the tensors' device, not the current one (cuda:0)."""
    dev = torch.device("cuda:1")
    x = to_device(torch.arange(1 << 22, dtype=torch.float32), dev)
    y = x
    for _ in range(200):  # long work queued on cuda:1 before the copy
        y = y * 1.0001 + 1
    expected = y.cpu()
    y = x
    for _ in range(200):
        y = y * 1.0001 + 1
    assert torch.equal(HostCopy(y).wait()[0], expected)
