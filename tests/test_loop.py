"""hyco2.training.loop: the one loop every stage runs on (schedule, time budget, skipped steps, resume,
held-out loss), on a toy model with an adapter and a classifier. The stages on it: test_training.py
(stages 1-2) and test_distill.py (stage 3)."""
import pytest
import torch
from torch import nn

from hyco2.training.loop import LoopConfig, lr_multiplier, plan_total, train


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.adapter = nn.Linear(4, 4)
        self.classifier = nn.Linear(4, 1)

    def loss(self, x):
        return (self.classifier(self.adapter(x)) ** 2).mean()


def _data(n=64):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g)


def test_schedule_warms_up_then_decays_to_zero_and_fits_the_time_left():
    total = 100
    lrs = [lr_multiplier(s, total) for s in range(total)]
    assert lrs[0] == pytest.approx(1 / 3) and max(lrs) == 1.0 and lrs[-1] == pytest.approx(1 / 97)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # decays after the warm-up
    assert lr_multiplier(total, total) == 0.0
    assert plan_total(30, 1000, elapsed_s=30.0, per_step_s=1.0, minutes=1.0) == 60  # 30 s left at 1 s a step
    assert plan_total(30, 40, elapsed_s=3.0, per_step_s=0.1, minutes=1.0) == 40  # never above the cap


def test_classifier_gets_its_own_rate_bad_steps_are_skipped_and_held_out_is_reported(tmp_path):
    model, x = Toy(), _data()
    seen = []

    def step(i):
        seen.append(i)
        loss = model.loss(x[i % 8 * 8:(i % 8 + 1) * 8])
        return (loss * float("nan") if i == 2 else loss), {"loss": float(loss)}

    cfg = LoopConfig(name="toy", steps=6, lr=1e-2, batch_size=8, classifier_lr_mult=10.0, log_every=2)
    before = [p.detach().clone() for p in model.parameters()]
    summary = train(model, list(model.parameters()), step, cfg, tmp_path, progress=False,
                    evaluate=lambda: {"loss": float(model.loss(x[-8:]))})
    assert seen == list(range(6)) and summary["steps_done"] == 6 and summary["examples_seen"] == 48
    assert summary["skipped_steps"] == 1 and all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert summary["held_out"]["step"] == 6 and summary["held_out"]["loss"] == pytest.approx(float(model.loss(x[-8:])))
    assert [h["step"] for h in summary["history"]] == [1, 2, 4, 6]
    assert not any(p.requires_grad for p in model.parameters())  # frozen again after training
    files = sorted(q.name for q in (tmp_path / "toy").iterdir())
    assert files == ["trainer_state.pt"]  # saved atomically: no temporary file left


def test_a_killed_run_resumes_from_its_last_save_and_ends_where_an_unbroken_one_does(tmp_path):
    x = _data()

    def step_of(m, die_at=None):
        def step(i):
            if i == die_at:
                raise KeyboardInterrupt  # killed mid-run, after the save at step 3
            return m.loss(x[i % 8 * 8:(i % 8 + 1) * 8]), {}
        return step

    straight = Toy()
    train(straight, list(straight.parameters()), step_of(straight), LoopConfig("s", 6, 1e-2, 8), tmp_path / "a",
          progress=False)
    killed = Toy()
    with pytest.raises(KeyboardInterrupt):
        train(killed, list(killed.parameters()), step_of(killed, die_at=4), LoopConfig("s", 6, 1e-2, 8, save_every=3),
              tmp_path / "b", progress=False)
    assert torch.load(tmp_path / "b" / "s" / "trainer_state.pt", weights_only=False)["step"] == 3
    resumed = Toy()
    summary = train(resumed, list(resumed.parameters()), step_of(resumed), LoopConfig("s", 6, 1e-2, 8),
                    tmp_path / "b", progress=False)
    assert summary["steps_done"] == 6 and summary["examples_seen"] == 48
    for a, b in zip(resumed.parameters(), straight.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
