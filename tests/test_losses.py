"""GLS cross-entropy matches Eq. 9 of the paper term by term; the mixed loss is Eq. 10."""
import pytest
import torch
import torch.nn.functional as F

from unlearn.losses import gls_cross_entropy, gls_targets, mixed_loss


@pytest.mark.parametrize("alpha", [-1.0, -0.5, 0.3, 1.0])
def test_gls_equals_eq9_expansion(alpha):
    torch.manual_seed(0)
    k = 5
    logits, y = torch.randn(7, k), torch.randint(0, k, (7,))
    ce = lambda t: F.cross_entropy(logits, t, reduction="none")  # noqa: E731
    others = sum(ce(torch.full_like(y, c)) * (y != c) for c in range(k))
    expected = (1 + (1 - k) / k * alpha) * ce(y) + alpha / k * others
    torch.testing.assert_close(gls_cross_entropy(logits, y, alpha, reduction="none"), expected)


def test_alpha_zero_is_cross_entropy():
    logits, y = torch.randn(9, 4), torch.randint(0, 4, (9,))
    torch.testing.assert_close(gls_cross_entropy(logits, y, 0.0), F.cross_entropy(logits, y))


def test_targets_and_per_sample_alpha():
    y = torch.tensor([0, 2])
    t = gls_targets(y, 4, -0.4)
    torch.testing.assert_close(t.sum(1), torch.ones(2))  # GLS targets still sum to one
    assert t[0, 0] == pytest.approx(1 + (1 - 4) / 4 * -0.4) and t[0, 1] == pytest.approx(-0.1)
    logits = torch.randn(2, 4)
    per = gls_cross_entropy(logits, y, torch.tensor([-0.4, 0.2]), reduction="none")
    assert per[0] == pytest.approx(gls_cross_entropy(logits[:1], y[:1], -0.4).item())
    assert per[1] == pytest.approx(gls_cross_entropy(logits[1:], y[1:], 0.2).item())


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        gls_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), reduction="avg")


def test_mixed_loss_is_eq10_with_batch_means():
    torch.manual_seed(1)
    lf, lr_ = torch.randn(6, 4), torch.randn(6, 4)
    yf, yr = torch.randint(0, 4, (6,)), torch.randint(0, 4, (6,))
    loss, f, r = mixed_loss(lf, yf, -0.5, 0.7, lr_, yr)
    torch.testing.assert_close(f, gls_cross_entropy(lf, yf, -0.5))
    torch.testing.assert_close(r, F.cross_entropy(lr_, yr))
    torch.testing.assert_close(loss, 0.7 * r - 0.3 * f)
    alone, f2, r2 = mixed_loss(lf, yf, -0.5, 0.7)  # no retain logits: the descent term is 0
    torch.testing.assert_close(alone, -0.3 * f)
    torch.testing.assert_close(f2, f)
    assert r2 == 0
