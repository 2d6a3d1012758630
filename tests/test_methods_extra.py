"""Behaviour of the extra baselines (RL, SalUn, l1-sparse, SCRUB, NegGrad+) and the adaptive smooth rate."""
import copy

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import TINY, compose_cfg
from unlearn.methods.scrub import distill_kl
from unlearn.methods.ugradsl import adaptive_smooth_rate, pair_distances
from unlearn.workspace import Workspace


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("extra")  # one cache: the tiny original is trained once per module


@pytest.fixture
def overfit(shared_dir):
    """Workspace factory on a tiny model trained to fit D_tr (one class forgotten), and that model."""
    def make(*extra, paradigm="classwise"):
        ws = Workspace(compose_cfg([*TINY, "train.epochs=8", "method.batch_size=32", f"paradigm={paradigm}", *extra],
                                   shared_dir))
        return ws, ws.refs.original()[0]
    return make


def _accuracy(model, ws, idx):
    with torch.no_grad():
        x = ws.data.prepare(ws.data.x_train[idx])
        return (model.eval()(x).argmax(1) == ws.data.y_train[idx]).float().mean().item()


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_rl_lowers_forget_accuracy(overfit):
    ws, original = overfit("method=rl", "method.epochs=2", "method.lr=0.05")
    before = _accuracy(original, ws, ws.split.forget)
    assert before > 0.9, "the tiny model should fit D_f before unlearning"
    unlearned = ws.method(original, ws.task)
    assert _accuracy(unlearned, ws, ws.split.forget) < before - 0.2
    assert _accuracy(unlearned, ws, ws.split.retain) > 0.6  # D_r is still trained on its true labels


def test_salun_leaves_weights_outside_the_mask_bit_identical(overfit):
    ws, original = overfit("method=salun", "method.mask_fraction=0.3", "method.epochs=2", "method.lr=0.05",
                           "method.weight_decay=0.01")
    mask = ws.method.saliency_mask(copy.deepcopy(original), ws.task)
    total = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in mask.values()) == round(0.3 * total)
    before, after = _params(original), _params(ws.method(original, ws.task))
    moved = 0
    for n, m in mask.items():
        assert torch.equal(after[n][~m], before[n][~m]), f"{n}: a weight outside the mask changed"
        moved += int((after[n][m] != before[n][m]).sum())
    assert moved > 0.5 * round(0.3 * total), "masked weights should be updated"


def test_l1_sparse_increases_near_zero_weights(overfit):
    def small_fraction(model, tol=0.01):  # above the subgradient jitter lr * l1_coef = 0.005
        w = torch.cat([p.detach().flatten() for p in model.parameters()])
        return (w.abs() < tol).float().mean().item()

    recipe = ("method.epochs=10", "method.lr=0.05", "method.momentum=0", "method.weight_decay=0")
    ws, original = overfit("method=l1_sparse", "method.l1_coef=0.1", *recipe)
    sparse = ws.method(original, ws.task)
    ws_ft, _ = overfit("method=l1_sparse", "method.l1_coef=0", *recipe)  # same loop, no penalty = FT
    plain = ws_ft.method(original, ws_ft.task)
    assert small_fraction(sparse) > small_fraction(original) + 0.05
    assert small_fraction(sparse) > small_fraction(plain) + 0.05
    assert ws.method.coef(0) == 0.1 and ws.method.coef(5) == 0.05  # linear decay over the 10 epochs


def test_scrub_max_step_raises_the_forget_kl(overfit):
    ws, original = overfit("method=scrub", "method.epochs=3", "method.lr=0.01")
    scrub, f = ws.method, ws.split.forget
    x = ws.data.prepare(ws.data.x_train[f])

    def forget_kl(student):
        with torch.no_grad():
            return distill_kl(student.eval()(x), original.eval()(x), scrub.temperature).item()

    student, teacher = copy.deepcopy(original), copy.deepcopy(original).eval().requires_grad_(False)
    opt = scrub.recipe.optimizer_for(student.parameters())
    g = torch.Generator().manual_seed(0)
    kls = []
    for _ in range(3):
        scrub.max_pass(student, teacher, ws.task, opt, g)
        kls.append(forget_kl(student))
    assert kls[0] > 0 and kls[2] > kls[0] * 1.5, kls
    assert forget_kl(scrub(original, ws.task)) > 0  # the whole method moves away from the teacher on D_f


def test_adaptive_alpha_is_larger_for_isolated_forget_samples():
    # Forget sample 0 sits among the retain samples, forget sample 1 far away from all of them.
    xr = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0]])
    xf = torch.tensor([[0.05, 0.05], [-9.0, 9.0]])
    dist = pair_distances(None, xf, xr, "input_l2")
    alpha = adaptive_smooth_rate(-0.8, dist, delta=0.5)
    assert torch.allclose(alpha, torch.tensor([-0.8 * (1 - 3 / 4), -0.8]))
    assert alpha[1].abs() > alpha[0].abs()


def test_adaptive_alpha_with_feature_cosine():
    class Identity(torch.nn.Module):
        def features(self, x):
            return x

    xr = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.9, 0.0]])
    xf = torch.tensor([[1.0, 0.05], [0.0, 1.0]])
    alpha = adaptive_smooth_rate(-1.0, pair_distances(Identity(), xf, xr, "feature_cosine"), delta=0.1)
    assert alpha[0] == 0 and alpha[1] == -1.0


def test_adaptive_ugradsl_runs_and_differs_from_fixed(overfit):
    runs = {}
    for mode in ("fixed", "adaptive"):
        ws, original = overfit("method=ugradsl_plus", "method.epochs=1", f"method.smooth_rate_mode={mode}",
                               "method.delta=0.5", "smooth_rate=-1", paradigm="random")
        runs[mode] = _params(ws.method(original, ws.task))
    assert any(not torch.equal(runs["fixed"][n], runs["adaptive"][n]) for n in runs["fixed"])


def test_neggrad_plus_equals_ugradsl_plus_without_smoothing(overfit):
    a, original = overfit("method=neggrad_plus", "method.epochs=1", "smooth_rate=-0.9")  # alpha must be ignored
    b, _ = overfit("method=ugradsl_plus", "method.epochs=1", "smooth_rate=0")
    wa, wb = a.method(original, a.task).state_dict(), b.method(original, b.task).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ugradsl_no_retain_is_gradient_ascent_with_gls(tiny_cfg):
    ws = Workspace(tiny_cfg("method=ugradsl_no_retain", "smooth_rate=-0.5", "p=0.8"))
    assert ws.method.pair is False and ws.method.drive == "forget"
    x = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    from unlearn.losses import gls_cross_entropy
    from unlearn.methods.base import Run
    model = type("M", (torch.nn.Module,), {"forward": lambda self, t: t})()
    run = Run(model, ws.task, torch.Generator())
    assert torch.allclose(ws.method.loss(run, (x, y), None), -0.2 * gls_cross_entropy(x, y, -0.5))
    assert not torch.allclose(ws.method.loss(run, (x, y), None), -0.2 * F.cross_entropy(x, y))
