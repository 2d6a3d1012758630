"""RL, SalUn, l1-sparse and SCRUB on tiny models (incl. the public-code modes), and the adaptive smooth rate."""
import copy
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import TINY, compose_cfg, yaml_method
from unlearn.methods.base import Run, Task
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


def test_rl_uniform_labels_keep_the_true_class_about_1_in_k_and_wrong_labels_never(overfit):
    kept = {}
    for labels in ("uniform", "wrong"):
        ws, _ = overfit("method=rl", f"method.labels={labels}")
        data, forget = ws.data, ws.split.forget
        run = Run(None, ws.task, torch.Generator().manual_seed(0))
        same = []
        for epoch in range(50):  # a fresh draw every epoch
            ws.method.start_epoch(run)
            new = ws.method.targets(run, forget)
            assert ((new >= 0) & (new < data.num_classes)).all()
            same.append((new == data.y_train[forget]).float().mean().item())
        kept[labels] = sum(same) / len(same)
    assert abs(kept["uniform"] - 1 / data.num_classes) < 0.05 and kept["wrong"] == 0


def _pure_decay(w, steps, lr, wd, momentum):
    """SGD on a weight whose gradient is masked to 0: only weight decay (and its momentum) move it."""
    buf = None
    for _ in range(steps):
        d = wd * w
        buf = d if buf is None else momentum * buf + d
        w = w - lr * buf
    return w


def test_salun_grad_only_lets_weight_decay_move_the_weights_outside_the_mask(overfit):
    ws, original = overfit("method=salun", "method.mask_fraction=0.3", "method.mask_apply=grad", "method.epochs=2",
                           "method.lr=0.05", "method.weight_decay=0.01", "method.batch_size=32")
    mask = ws.method.saliency_mask(copy.deepcopy(original), ws.task)
    before, after = _params(original), _params(ws.method(original, ws.task))
    steps = 2 * (math.ceil(len(ws.split.forget) / 32) + math.ceil(len(ws.split.retain) / 32))
    for n, m in mask.items():
        want = _pure_decay(before[n][~m], steps, 0.05, 0.01, 0.9)
        torch.testing.assert_close(after[n][~m], want, rtol=1e-5, atol=1e-7)
        assert not torch.equal(after[n][~m], before[n][~m]) or (before[n][~m] == 0).all()


def test_salun_saliency_uses_the_augmented_forget_batches_when_asked(overfit):
    ws, original = overfit("method=salun")
    task = Task(replace(ws.data, augment=True), ws.split, ws.device, 0)
    sal = {}
    for augment in (True, False):
        m = yaml_method("salun", saliency_augment=augment, mask_fraction=0.3, batch_size=32)
        sal[augment] = m.saliency(original, task, torch.Generator().manual_seed(0))
    clean = yaml_method("salun", saliency_augment=False, batch_size=32).saliency(original, ws.task)
    assert all(torch.equal(sal[False][n], clean[n]) for n in clean)  # no augmentation: the clean D_f
    assert any(not torch.allclose(sal[True][n], clean[n]) for n in clean)


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
    ws, original = overfit("method=scrub", "method.epochs=3", "method.lr=0.01", "method.forget_batch_size=16")
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
    unlearned = scrub(original, ws.task)  # the whole method: away from the teacher on D_f, close to it on D_r
    xr = ws.data.prepare(ws.data.x_train[ws.split.retain])
    with torch.no_grad():
        retain_kl = distill_kl(unlearned.eval()(xr), original.eval()(xr), scrub.temperature).item()
    assert forget_kl(unlearned) > 2 * retain_kl, (forget_kl(unlearned), retain_kl)


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
