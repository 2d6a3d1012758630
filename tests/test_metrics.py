"""Each metric on hand-made outputs, and MIA-efficacy on a perfectly separable case."""
import math

import pytest
import torch

from unlearn.data import Data
from unlearn.metrics import evaluate, summarize
from unlearn.mia import entropy, mia_efficacy, modified_entropy
from unlearn.paradigms import Split


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


def _logits(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float32))


def test_accuracies_and_entropy():
    # train: 0,1 forget (one right, one wrong); 2,3,4 retain (all right); test: two right, one wrong
    x_tr = _logits([[.9, .1], [.8, .2], [.1, .9], [.7, .3], [.6, .4]])
    y_tr = torch.tensor([0, 1, 1, 0, 0])
    x_te = _logits([[.9, .1], [.2, .8], [.3, .7]])
    y_te = torch.tensor([0, 1, 0])
    data = Data("hand", x_tr, y_tr, x_te, y_te, num_classes=2)
    split = Split(torch.tensor([0, 1]), torch.tensor([2, 3, 4]), torch.arange(3))
    m = evaluate(Identity(), data, split, seed=0)
    assert m["UA"] == pytest.approx(50.0)
    assert m["RA"] == pytest.approx(100.0)
    assert m["TA"] == pytest.approx(200 / 3)
    h = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p))  # noqa: E731
    assert m["H"] == pytest.approx((h(.9) + h(.8)) / 2, rel=1e-5)
    assert m["forget/loss"] == pytest.approx(-(math.log(.9) + math.log(.2)) / 2, rel=1e-5)
    assert m["mia/correctness"] == pytest.approx(50.0)
    assert m["MIA"] == m["mia/confidence"]


def test_modified_entropy_formula():
    p = torch.tensor([[0.7, 0.2, 0.1]])
    y = torch.tensor([0])
    expected = -(1 - .7) * math.log(.7) - .2 * math.log(1 - .2) - .1 * math.log(1 - .1)
    assert modified_entropy(p, y).item() == pytest.approx(expected, rel=1e-6)
    # with the true label elsewhere the roles swap
    expected1 = -(1 - .2) * math.log(.2) - .7 * math.log(1 - .7) - .1 * math.log(1 - .1)
    assert modified_entropy(p, torch.tensor([1])).item() == pytest.approx(expected1, rel=1e-6)
    assert entropy(torch.tensor([[0.5, 0.5]])).item() == pytest.approx(math.log(2))


def _probs(conf, n, k=4):
    p = torch.full((n, k), (1 - conf) / (k - 1))
    p[:, 0] = conf
    return p, torch.zeros(n, dtype=torch.long)


@pytest.mark.parametrize("kind", ["confidence", "entropy", "m_entropy", "prob"])
def test_mia_perfectly_separable(kind):
    members, nonmembers = _probs(0.99, 50), _probs(0.3, 50)
    assert mia_efficacy(members, nonmembers, _probs(0.3, 20), kind) == pytest.approx(100.0)  # all forgotten
    assert mia_efficacy(members, nonmembers, _probs(0.99, 20), kind) == pytest.approx(0.0)  # all remembered


def test_mia_bad_feature():
    with pytest.raises(ValueError, match="allowed"):
        mia_efficacy(_probs(.9, 4), _probs(.3, 4), _probs(.3, 4), "loss")


def test_summarize_gap_and_sum():
    m = {"UA": 10.0, "MIA": 20.0, "RA": 90.0, "TA": 80.0}
    ref = {"UA": 30.0, "MIA": 20.0, "RA": 100.0, "TA": 70.0}
    s = summarize(m, ref)
    assert s["avg_gap"] == pytest.approx((20 + 0 + 10 + 10) / 4)
    assert s["sum"] == pytest.approx(200.0)
