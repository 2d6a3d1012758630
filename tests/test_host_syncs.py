"""The unlearning loop keeps its logged sums on the device: no host sync per step (one read per epoch)."""
from __future__ import annotations

import torch

from unlearn.methods.base import Run


def test_recorded_tensors_stay_tensors_until_the_epoch_is_logged():
    run = Run(model=torch.nn.Linear(2, 2), task=None, generator=torch.Generator())
    for value in (torch.tensor(1.5), torch.tensor(2.5)):
        run.record(forget_loss=value, note=1.0)
    total, n = run.sums["forget_loss"]
    assert isinstance(total, torch.Tensor) and total.dtype == torch.float64 and n == 2  # not read on the host
    assert float(total) / n == 2.0 and run.sums["note"] == (2.0, 2)  # plain numbers still work
