"""Each method's mechanism, pinned so that swapping in another method's update fails a test.

scripts/mutation_check.py replaces a method's loss (or one-shot update) by GA's and by FT's and checks that at
least one of its tests fails. Its tests are those of tests/methods/test_<method>.py (found by name; `unlearn
new-method` writes one, importing the helpers here) and those registered here with `@pins(method, ...)`. They
take no arguments (the script calls them directly) and share cached tiny models.
"""
from __future__ import annotations

import copy
import functools
import math
from collections import defaultdict
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF, yaml_model
from unlearn.data.synthetic import load_synthetic
from unlearn.methods.base import Run, Task
from unlearn.methods.ff import diagonal_fisher
from unlearn.methods.grads import trainable
from unlearn.paradigms import Classwise, Random
from unlearn.train import Recipe, fit

PINS: dict[str, list] = defaultdict(list)
SEARCH_PATH: list[str] = []  # extra config folders `method` composes from (a generated method's, in a test)
RECIPE = Recipe(epochs=6, lr=0.05, batch_size=16, optimizer="sgd", momentum=0.9, weight_decay=5e-4, scheduler="none")


def pins(*methods):
    """Register a test as pinning the mechanism of `methods` (for scripts/mutation_check.py)."""
    def register(fn):
        for m in methods:
            PINS[m].append(fn)
        return fn
    return register


@functools.lru_cache(maxsize=None)
def _spec(name: str) -> dict:
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        extra = [f"hydra.searchpath=[{','.join(f'file://{p}' for p in SEARCH_PATH)}]"] if SEARCH_PATH else []
        node = compose("config", overrides=[f"method={name}", "dataset=synthetic", *extra]).method
    spec = OmegaConf.to_container(node, resolve=True)
    spec.pop("name")
    return spec


def method(name: str, **keys):
    """The method of conf/method/<name>.yaml (synthetic regime) with `keys` changed."""
    return instantiate({**_spec(name), **keys})


@functools.lru_cache(maxsize=None)
def _data(pixels: bool = False):
    data = load_synthetic()
    if pixels:  # uint8 images normalised with a mean and std, as CIFAR: exercises pixel-space FGSM
        to_u8 = lambda x: (torch.sigmoid(x) * 255).round().to(torch.uint8)  # noqa: E731
        data = replace(data, x_train=to_u8(data.x_train), x_test=to_u8(data.x_test), mean=(0.5,), std=(0.25,))
    return data


@functools.lru_cache(maxsize=None)
def trained(paradigm: str = "random", pixels: bool = False):
    """(model, task): a small MLP fitted on synthetic data (read-only: methods work on copies)."""
    data = _data(pixels)
    split = (Random(0.25) if paradigm == "random" else Classwise(forget_class=1)).split(data, 0)

    def build():
        torch.manual_seed(0)
        return yaml_model("mlp", data.num_classes, data.input_shape, hidden=16, depth=1)

    model = fit(build(), data, torch.arange(len(data.y_train)), RECIPE, seed=0).eval()
    return model, Task(data, split, torch.device("cpu"), 0, build_model=build)


def batch(task, idx):
    return task.data.prepare(task.data.x_train[idx]), task.data.y_train[idx]


def fixed_batches(task, n: int = 12):
    """A forget batch and a retain batch of n samples each."""
    return batch(task, task.split.forget[:n]), batch(task, task.split.retain[:n])


def grad(loss_fn, model) -> torch.Tensor:
    """Flat gradient of `loss_fn()` w.r.t. the model's trainable parameters."""
    params = list(trainable(model).values())
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss_fn(), params)])


def loss_grad(m, model, task, forget, retain, run=None) -> torch.Tensor:
    run = run or Run(model, task, torch.Generator().manual_seed(0))
    return grad(lambda: m.loss(run, forget, retain), model)


def gls_ce(logits, y, alpha):
    """Cross-entropy against (1 - alpha) onehot + alpha / K, written out independently of unlearn.losses."""
    k = logits.shape[1]
    target = torch.full_like(logits, alpha / k)
    target[torch.arange(len(y)), y] += 1 - alpha
    return -(target * logits.log_softmax(1)).sum(1).mean()


def same(got, want, rel=1e-4):
    """Equal up to float error relative to the size of `want` (gradients of a fitted model are tiny)."""
    err = ((got - want).norm() / want.norm()).item()
    assert want.norm() > 0 and err <= rel, f"relative error {err:.3g} > {rel:g}"


def far_apart(a, b, rel=0.1):
    return (a - b).norm() > rel * max(a.norm(), b.norm())


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# --- gradient methods: the loss on a fixed batch -------------------------------------------------------------

def _check_eq10(name):
    model, task = trained()
    (xf, yf), (xr, yr) = forget, retain = fixed_batches(task)
    got = loss_grad(method(name, smooth_rate=-0.5, p=0.7), model, task, forget, retain)
    want = grad(lambda: 0.7 * F.cross_entropy(model(xr), yr) - 0.3 * gls_ce(model(xf), yf, -0.5), model)
    same(got, want)
    assert far_apart(got, grad(lambda: -F.cross_entropy(model(xf), yf), model))  # not GA's gradient


@pins("ugradsl")
def test_ugradsl_gradient_is_eq10():
    _check_eq10("ugradsl")


@pins("ugradsl_plus")
def test_ugradsl_plus_gradient_is_eq10():
    _check_eq10("ugradsl_plus")


@pytest.mark.parametrize("name", ["ugradsl", "ugradsl_plus"])
def test_without_leaves_one_term_of_eq10_out_at_its_weight(name):
    """Table 6's ablation rows: without=retain is the ascent term -(1 - p) CE_GLS(B_f) alone (GA at alpha 0),
    without=forget the descent term p CE(B_r) alone (FT), each at the weight the mixed loss gives it."""
    model, task = trained()
    (xf, yf), (xr, yr) = forget, retain = fixed_batches(task)
    ascent = loss_grad(method(name, smooth_rate=-0.5, p=0.7, without="retain"), model, task, forget, retain)
    same(ascent, grad(lambda: -0.3 * gls_ce(model(xf), yf, -0.5), model))
    descent = loss_grad(method(name, smooth_rate=-0.5, p=0.7, without="forget"), model, task, forget, retain)
    same(descent, grad(lambda: 0.7 * F.cross_entropy(model(xr), yr), model))
    with pytest.raises(Exception, match="without=.both. is invalid.*null, retain or forget"):  # via instantiate
        method(name, smooth_rate=-0.5, p=0.7, without="both")


@pins("ugradsl_no_retain")
def test_ugradsl_no_retain_gradient_is_the_gls_ascent_term_only():
    model, task = trained()
    (xf, yf), _ = forget, _ = fixed_batches(task)
    m = method("ugradsl_no_retain", smooth_rate=-0.5, p=0.7)
    got = loss_grad(m, model, task, forget, None)
    same(got, grad(lambda: -0.3 * gls_ce(model(xf), yf, -0.5), model))
    assert far_apart(got, grad(lambda: -0.3 * F.cross_entropy(model(xf), yf), model))  # the NLS term matters


@pins("neggrad_plus")
def test_neggrad_plus_gradient_is_eq10_without_smoothing():
    model, task = trained()
    (xf, yf), (xr, yr) = forget, retain = fixed_batches(task)
    got = loss_grad(method("neggrad_plus", p=0.7), model, task, forget, retain)
    want = grad(lambda: 0.7 * F.cross_entropy(model(xr), yr) - 0.3 * F.cross_entropy(model(xf), yf), model)
    same(got, want)


@pins("neggrad_plus", "ugradsl_plus")
def test_neggrad_plus_equals_ugradsl_plus_at_alpha_zero():
    model, task = trained()
    a = method("neggrad_plus", p=0.7, epochs=1, lr=0.05, batch_size=16)(model, task)
    b = method("ugradsl_plus", smooth_rate=0.0, p=0.7, epochs=1, lr=0.05, batch_size=16)(model, task)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), model.state_dict().values()))


@pins("ga")
def test_ga_gradient_ascends_the_forget_cross_entropy():
    model, task = trained()
    (xf, yf), _ = forget, retain = fixed_batches(task)
    got = loss_grad(method("ga"), model, task, forget, None)
    same(got, grad(lambda: -F.cross_entropy(model(xf), yf), model))


@pins("ft")
def test_ft_gradient_descends_the_retain_cross_entropy():
    model, task = trained()
    _, (xr, yr) = _, retain = fixed_batches(task)
    got = loss_grad(method("ft"), model, task, None, retain)
    same(got, grad(lambda: F.cross_entropy(model(xr), yr), model))


def _check_relabelled_ce(name, **keys):
    """One mean CE over the forget part (with the method's random labels) and the retain part (true labels)."""
    model, task = trained()
    m = method(name, **keys)
    run = Run(model, task, torch.Generator().manual_seed(0))
    m.start_epoch(run)
    f, r = task.split.forget[:12], task.split.retain[:12]
    (xf, yf), (xr, yr) = batch(task, f), batch(task, r)
    new = m.targets(run, f)
    assert torch.equal(m.targets(run, r), yr)
    got = loss_grad(m, model, task, (xf, new), (xr, yr), run)
    want = grad(lambda: F.cross_entropy(model(torch.cat([xf, xr])), torch.cat([new, yr])), model)
    same(got, want)
    assert (new != yf).any()


@pins("rl")
def test_rl_loss_is_one_cross_entropy_over_relabelled_forget_and_retain():
    _check_relabelled_ce("rl")


@pins("salun")
def test_salun_loss_is_rls():
    _check_relabelled_ce("salun")


@pins("l1_sparse")
def test_l1_sparse_gradient_adds_a_linearly_decaying_l1_term():
    model, task = trained()
    _, (xr, yr) = _, retain = fixed_batches(task)
    m = method("l1_sparse", l1_coef=0.05, epochs=4)
    run = Run(model, task, torch.Generator().manual_seed(0))
    gammas = []
    for epoch in range(4):
        run.epoch = epoch
        m.start_epoch(run)
        gammas.append(run.state["gamma"])
        got = loss_grad(m, model, task, None, retain, run)
        sign = torch.cat([p.detach().sign().flatten() for p in trainable(model).values()])
        want = grad(lambda: F.cross_entropy(model(xr), yr), model) + gammas[-1] * sign
        same(got, want)
    assert gammas == pytest.approx([0.05, 0.0375, 0.025, 0.0125])  # 0.05 * (1 - t/4): reaches 0 after the last epoch
    assert gammas[-1] - (gammas[-2] - gammas[-1]) == pytest.approx(0.0)


def _be_wide(model, task, **keys):
    """BE's widened model after training in keep mode, and the same run pruned."""
    keep = method("be", shadow="keep", epochs=4, lr=0.1, batch_size=16, weight_decay=0.0, **keys)(model, task)
    pruned = method("be", shadow="prune", epochs=4, lr=0.1, batch_size=16, weight_decay=0.0, **keys)(model, task)
    return keep, pruned


@pins("be")
def test_be_trains_d_f_into_the_shadow_class():
    model, task = trained("classwise")
    k = task.data.num_classes
    m = method("be", shadow="keep")
    wide = copy.deepcopy(model)
    from unlearn.methods.be import widen
    wide.fc = widen(wide.fc, torch.Generator().manual_seed(0))
    (xf, yf), _ = forget, _ = fixed_batches(task)
    got = loss_grad(m, wide, task, forget, None)
    same(got, grad(lambda: F.cross_entropy(wide(xf), torch.full_like(yf, k)), wide))
    keep, pruned = _be_wide(model, task)
    xf_all, _ = batch(task, task.split.forget)
    with torch.no_grad():
        assert keep(xf_all).shape[1] == k + 1 and (keep(xf_all).argmax(1) == k).float().mean() > 0.9
        assert pruned(xf_all).shape[1] == k
        torch.testing.assert_close(pruned(xf_all), keep(xf_all)[:, :k])  # the same training, shadow dropped


@pins("bs")
def test_bs_gradient_uses_labels_of_a_pixel_fgsm_step_on_the_frozen_original():
    model, task = trained("classwise", pixels=True)
    m = method("bs", space="pixel", relabel="every_batch", keep_true=True, bound=0.15)
    run = Run(copy.deepcopy(model), task, torch.Generator().manual_seed(0))
    m.setup(run)
    with torch.no_grad():  # the model being trained has moved; the labels must still come from the original
        for p in run.model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    (x, y) = batch(task, task.split.forget[:16])
    xr = x.detach().clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
    pix = torch.round(((x * 0.25 + 0.5) + 0.15 * gx.sign()).clamp(0, 1) * 255) / 255
    with torch.no_grad():
        labels = model((pix - 0.5) / 0.25).argmax(1)
    assert (labels != y).any() and (labels == y).any()
    got = loss_grad(m, run.model, task, (x, y), None, run)
    same(got, grad(lambda: F.cross_entropy(run.model(x), labels), run.model))


# --- SCRUB: max steps ascend the KL on D_f, min steps descend CE + KL on D_r ----------------------------------

def _scrub_pass(kind, student, task, **keys):
    m = method("scrub", momentum=0.0, weight_decay=0.0, lr=0.05, forget_batch_size=16, batch_size=16, **keys)
    model, _ = trained()
    teacher = copy.deepcopy(model).requires_grad_(False).eval()
    opt = m.recipe.optimizer_for(student.parameters())
    getattr(m, f"{kind}_pass")(student, teacher, task, opt, torch.Generator().manual_seed(0))
    return m


def _max_change(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def _kl(student, teacher, x, t=4.0):
    with torch.no_grad():
        ps, pt = F.softmax(student(x) / t, 1), F.softmax(teacher(x) / t, 1)
        return ((pt * (pt.log() - ps.log())).sum(1).mean() * t * t).item()


@pins("scrub")
def test_scrub_max_pass_is_still_at_the_teacher_and_ascends_the_kl_away_from_it():
    model, task = trained()
    student = copy.deepcopy(model)
    _scrub_pass("max", student, task)  # KL has zero gradient at student == teacher (an MLP: train == eval)
    assert _max_change(student, model) < 1e-6
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    xf, _ = batch(task, task.split.forget)
    before = _kl(student, model, xf)
    _scrub_pass("max", student, task)
    assert _kl(student, model, xf) > 2 * before > 0


@pins("scrub")
def test_scrub_min_pass_lowers_retain_ce_towards_the_teacher():
    model, task = trained()
    student = copy.deepcopy(model)
    _scrub_pass("min", student, task, ce_weight=0.0, kl_weight=1.0)  # KL only: zero gradient at the teacher
    assert _max_change(student, model) < 1e-6
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    xr, yr = batch(task, task.split.retain)
    ce = lambda: F.cross_entropy(student(xr), yr).item()  # noqa: E731
    ce0, kl0 = ce(), _kl(student, model, xr)
    _scrub_pass("min", student, task)
    assert ce() < ce0 and _kl(student, model, xr) < kl0


@pins("scrub")
def test_scrub_losses_are_the_papers():
    m = method("scrub", temperature=2.0, ce_weight=0.9, kl_weight=0.3)
    g = torch.Generator().manual_seed(4)
    s, t, y = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.tensor([0, 1, 2, 3, 0])
    ps, pt = F.softmax(s / 2, 1), F.softmax(t / 2, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean() * 4
    torch.testing.assert_close(m.max_loss(s, t, y), -kl)
    torch.testing.assert_close(m.min_loss(s, t, y), 0.9 * F.cross_entropy(s, y) + 0.3 * kl)


def test_scrub_runs_max_before_min_for_the_first_max_steps_epochs():
    model, task = trained()
    m = method("scrub", epochs=3, max_steps=2)
    calls = []
    for kind in ("max", "min"):
        setattr(m, f"{kind}_pass", lambda *a, kind=kind, **k: calls.append(kind) or 0.0)
    m(model, task)
    assert calls == ["max", "min", "max", "min", "min"]


# --- one-shot and reference methods ---------------------------------------------------------------------------

@pins("iu")
def test_iu_step_is_the_direct_solve():
    model, task = trained()
    data, split = task.data, task.split
    ps = list(model.parameters())
    d = sum(p.numel() for p in ps)

    def per_sample(idx):  # plain autograd, one sample at a time: independent of the vmap path
        return torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(
            F.cross_entropy(model(data.prepare(data.x_train[i:i + 1])), data.y_train[i:i + 1]), ps)]) for i in idx])

    gf, gr = per_sample(split.forget), per_sample(split.retain)
    v = (gf.sum(0) - len(split.forget) * gr.mean(0)) / len(data.y_train)
    h = 0.05 * torch.eye(d, dtype=torch.float64) + (gr.T @ gr).double() / len(gr)  # all of D_r in H
    expected = torch.linalg.solve(h, v.double()).float()
    iu = method("iu", solver="woodfisher", num_samples=len(split.retain), damping=0.05, scale=0.5)
    step = torch.cat([(a - b).flatten() for a, b in zip(iu(model, task).parameters(), model.parameters())])
    same(step, 0.5 * expected, rel=1e-3)


@pins("ff")
def test_ff_noise_is_its_std_formula_times_a_seeded_normal_draw():
    model, task = trained()
    ff = method("ff", variant="paper", alpha=1e-3, power=0.25, max_std=0.02, head="keep", num_samples=40)
    g = torch.Generator().manual_seed(task.seed)
    pick = task.split.retain[torch.randperm(len(task.split.retain), generator=g)[:40]]
    x = task.data.prepare(task.data.x_train[pick])
    ps = list(model.parameters())
    fisher = torch.zeros(sum(p.numel() for p in ps))
    with torch.no_grad():
        probs = F.softmax(model(x), 1)
    for i in range(len(x)):  # per sample and class, plain autograd
        for c in range(task.data.num_classes):
            gi = torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), torch.tensor([c])), ps)
            fisher += probs[i, c] * torch.cat([t.flatten() for t in gi]).pow(2)
    fisher /= len(x)
    same(diagonal_fisher(model, x), fisher)
    std = (1e-3 * (fisher + 1e-8).pow(-0.25)).clamp(max=0.02)
    assert (std < 0.02).any() and (std == 0.02).any()  # both branches of the law are exercised
    noise = std * torch.randn(std.shape, generator=torch.Generator().manual_seed(task.seed))
    step = torch.cat([(a - b).flatten() for a, b in zip(ff(model, task).parameters(), ps)])
    same(step, noise)


@pins("retrain")
def test_retrain_is_the_recipe_from_a_fresh_initialisation_on_d_r_only():
    model, task = trained()
    m = method("retrain", epochs=2, lr=0.05, batch_size=16, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
               scheduler="none")
    out = m(model, task)
    want = fit(task.build_model(), task.data, task.split.retain, m.recipe, task.seed)
    assert all(torch.equal(a, b) for a, b in zip(out.state_dict().values(), want.state_dict().values()))
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1)
    again = m(other, task)  # the input model plays no part
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), want.state_dict().values()))


@pins("salun")
def test_salun_masked_weights_stay_bit_identical_and_the_mask_is_the_top_saliency():
    model, task = trained()
    m = method("salun", mask_fraction=0.3, mask_apply="restore", epochs=2, lr=0.05, batch_size=16,
               weight_decay=0.01)
    data, forget = task.data, task.split.forget
    ps = dict(model.named_parameters())
    sal = {n: torch.zeros_like(p) for n, p in ps.items()}
    for b in forget.split(16):  # signed sum over batches, then abs
        for n, gi in zip(ps, torch.autograd.grad(F.cross_entropy(model(data.prepare(data.x_train[b])),
                                                                 data.y_train[b]), list(ps.values()))):
            sal[n] += gi
    flat = torch.cat([v.abs().flatten() for v in sal.values()])
    k = int(0.3 * flat.numel())
    mask = m.saliency_mask(model, task)
    assert sum(int(v.sum()) for v in mask.values()) == k
    chosen = torch.cat([mask[n].flatten() for n in ps])
    assert flat[chosen].min() >= flat[~chosen].max()
    before, after = params(model), params(m(model, task))
    moved = 0
    for n, msk in mask.items():
        assert torch.equal(after[n][~msk], before[n][~msk]), f"{n}: a weight outside the mask changed"
        moved += int((after[n][msk] != before[n][msk]).sum())
    assert moved > 0.5 * k


# --- which split drives each loop (not loss mutations, but swapping the loop fails these) ----------------------

def _visits(name, **keys):
    """The index batches each step's loss sees in one epoch: [(forget idx, retain idx)] (None when absent)."""
    model, task = trained()
    m = method(name, epochs=1, batch_size=16, lr=1e-6, **keys)
    in_f = torch.zeros(len(task.data.y_train), dtype=torch.bool)
    in_f[task.split.forget] = True
    fetched, steps = [], []
    targets, loss = m.targets, m.loss
    m.targets = lambda run, idx: fetched.append(idx) or targets(run, idx)

    def spy(run, forget, retain):
        n = (forget is not None) + (retain is not None)
        got = fetched[-n:]
        fetched.clear()
        split = {"f": torch.cat([i for i in got if in_f[i].all()] or [torch.empty(0, dtype=torch.long)]),
                 "r": torch.cat([i for i in got if (~in_f[i]).all()] or [torch.empty(0, dtype=torch.long)])}
        steps.append(split)
        return loss(run, forget, retain)

    m.loss = spy
    m(model, task)
    return steps, task


def _covers(steps, key, idx):
    seen = torch.cat([s[key] for s in steps])
    return len(seen) == len(idx) and torch.equal(seen.sort().values, idx)


@pytest.mark.parametrize("name", ["ugradsl", "ugradsl_plus", "neggrad_plus"])
def test_paired_methods_iterate_their_split_with_equal_size_batches_of_the_other(name):
    steps, task = _visits(name)
    main = "f" if name == "ugradsl" else "r"
    assert _covers(steps, main, getattr(task.split, "forget" if main == "f" else "retain"))
    assert all(len(s["f"]) == len(s["r"]) > 0 for s in steps)
    assert len(steps) == math.ceil(len(getattr(task.split, "forget" if main == "f" else "retain")) / 16)


@pytest.mark.parametrize("name, split", [("ga", "f"), ("ugradsl_no_retain", "f"), ("be", "f"), ("bs", "f"),
                                         ("ft", "r"), ("l1_sparse", "r")])
def test_single_split_methods_see_only_their_split(name, split):
    steps, task = _visits(name)
    other = "r" if split == "f" else "f"
    assert _covers(steps, split, task.split.forget if split == "f" else task.split.retain)
    assert all(len(s[other]) == 0 for s in steps)


def test_rl_sequential_passes_d_f_then_d_r_and_combined_mixes_them():
    steps, task = _visits("rl", loop="sequential")
    kinds = ["f" if len(s["f"]) else "r" for s in steps]
    n_f = math.ceil(len(task.split.forget) / 16)
    assert kinds == ["f"] * n_f + ["r"] * math.ceil(len(task.split.retain) / 16)
    assert all(len(s["f"]) == 0 or len(s["r"]) == 0 for s in steps)
    steps, task = _visits("rl", loop="combined")
    assert _covers(steps, "f", task.split.forget) and _covers(steps, "r", task.split.retain)
    assert sum(len(s["f"]) > 0 and len(s["r"]) > 0 for s in steps) > len(steps) // 2


def test_a_single_sample_last_batch_joins_the_one_before():
    """Batch norm cannot train on one sample: a D_f of 161 at batch 32 crashed UGradSL on digits (table 8's (R)
    selection). The unlearning loop folds such a last batch into the one before; every sample is seen once."""
    from unlearn.train import batches, n_batches
    g = torch.Generator().manual_seed(0)
    got = list(batches(torch.arange(161), 32, g, fold_single=True))
    assert [len(b) for b in got] == [32, 32, 32, 32, 33] == [len(b) for b in got][:n_batches(161, 32, True)]
    assert sorted(torch.cat(got).tolist()) == list(range(161))
    assert [len(b) for b in batches(torch.arange(161), 32, g)] == [32] * 5 + [1]  # fit() keeps its batches
    assert [len(b) for b in batches(torch.arange(1), 32, g, fold_single=True)] == [1]
    assert n_batches(160, 32, True) == 5 and n_batches(162, 32, True) == 6
