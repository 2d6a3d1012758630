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


# --- the stronger attacks (issue 9): threshold attacks scored by AUC / TPR at 1% FPR, and the additional MIA ---

from unlearn.metrics import ADDITIONAL_MIA, ATTACK_KEYS  # noqa: E402
from unlearn.mia import forget_vs_test, threshold_attack  # noqa: E402


def _conf_probs(confs, k=4, label=0):
    """Rows whose true class `label` has probability `conf` and the rest share the remainder evenly."""
    confs = torch.as_tensor(confs, dtype=torch.float32)
    p = ((1 - confs) / (k - 1)).view(-1, 1).repeat(1, k)
    p[:, label] = confs
    return p, torch.full((len(confs),), label, dtype=torch.long)


def test_threshold_attack_separable_and_indistinguishable():
    members, nonmembers = _conf_probs(torch.linspace(.9, .99, 200)), _conf_probs(torch.linspace(.3, .6, 200))
    for kind in ("loss", "confidence"):
        assert threshold_attack(members, nonmembers, kind) == {"auc": pytest.approx(100.0),
                                                               "tpr@1%fpr": pytest.approx(100.0)}
        same = threshold_attack(members, members, kind)
        assert same["auc"] == pytest.approx(50.0) and same["tpr@1%fpr"] <= 1.0


def test_threshold_confidence_is_label_free_unlike_the_loss():
    # members: confidently right; non-members: confidently wrong (the top class is not the label)
    members = _conf_probs([.95] * 50)
    wrong = torch.tensor([[.02, .95, .02, .01]]).repeat(50, 1), torch.zeros(50, dtype=torch.long)
    assert threshold_attack(members, wrong, "loss")["auc"] == pytest.approx(100.0)  # the loss sees the label
    assert threshold_attack(members, wrong, "confidence")["auc"] == pytest.approx(50.0)  # max prob is the same
    with pytest.raises(ValueError, match="allowed"):
        threshold_attack(members, wrong, "entropy")


def test_tpr_at_low_fpr_counts_only_thresholds_below_one_percent_fpr():
    # 200 non-members: 2 of them (1%) score above every member; the rest below all members
    nonmember = _conf_probs([.999, .999] + [.3] * 198)
    members = _conf_probs([.9] * 100)
    r = threshold_attack(members, nonmember, "loss")
    assert r["tpr@1%fpr"] == pytest.approx(100.0)  # 2 false positives = 1% FPR is allowed
    r = threshold_attack(members, _conf_probs([.999] * 3 + [.3] * 197), "loss")
    assert r["tpr@1%fpr"] == pytest.approx(0.0)  # 3 above: 1.5% FPR before the first member


@pytest.mark.parametrize("forget_conf", [.999, .05])  # remembered (low loss) and over-forgotten (high loss)
def test_additional_mia_separates_d_f_from_test_either_way(forget_conf):
    gen = torch.Generator().manual_seed(0)
    test = _conf_probs(0.5 + 0.1 * torch.rand(300, generator=gen))
    forget = _conf_probs(forget_conf * (1 - 0.01 * torch.rand(100, generator=gen)))
    assert forget_vs_test(forget, test, seed=0) == pytest.approx(100.0)


def test_additional_mia_is_chance_when_d_f_looks_like_test():
    gen = torch.Generator().manual_seed(1)
    confs = 0.2 + 0.79 * torch.rand(1200, generator=gen)
    acc = forget_vs_test(_conf_probs(confs[:300]), _conf_probs(confs[300:]), seed=0)
    assert 40 < acc < 60  # balanced accuracy: chance is 50 although test is 3x larger
    with pytest.raises(ValueError, match="at least 2"):
        forget_vs_test(_conf_probs([.5]), _conf_probs([.5, .6]), seed=0)


def test_evaluate_reports_the_stronger_attacks():
    gen = torch.Generator().manual_seed(2)
    k, n = 3, 60
    x_tr = torch.randn(n, k, generator=gen) * 3
    y_tr = torch.randint(0, k, (n,), generator=gen)
    x_te, y_te = torch.randn(40, k, generator=gen), torch.randint(0, k, (40,), generator=gen)
    data = Data("hand", x_tr, y_tr, x_te, y_te, num_classes=k)
    split = Split(torch.arange(10), torch.arange(10, n), torch.arange(40))
    m = evaluate(Identity(), data, split, seed=0)
    for key in (*ATTACK_KEYS, ADDITIONAL_MIA):
        assert 0.0 <= m[key] <= 100.0, key
