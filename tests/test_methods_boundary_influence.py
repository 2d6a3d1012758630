"""Behaviour of IU, FF, BE and BS on tiny CPU models (synthetic data)."""
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import yaml_method, yaml_model
from unlearn.methods.base import Task
from unlearn.methods.ff import forgotten_classes
from unlearn.methods.grads import per_sample_grads
from unlearn.methods.iu import woodfisher_solve
from unlearn.paradigms import Classwise, Random
from unlearn.train import Recipe, fit

RECIPE = Recipe(epochs=8, lr=0.05, batch_size=32, optimizer="sgd", momentum=0.9, weight_decay=5e-4, scheduler="none")


def _task(model_name, paradigm, **model_kw):
    from unlearn.data.synthetic import load_synthetic
    data = load_synthetic()
    torch.manual_seed(0)
    model = yaml_model(model_name, data.num_classes, data.input_shape, **model_kw)
    fit(model, data, torch.arange(len(data.y_train)), RECIPE, seed=0)
    return model.eval(), Task(data, paradigm.split(data, 0), torch.device("cpu"), 0)


@pytest.fixture(scope="module")
def cnn_classwise():
    return _task("cnn", Classwise(forget_class=1), width=8)


def _acc(model, task, idx):
    with torch.no_grad():
        x = task.data.prepare(task.data.x_train[idx])
        return (model.eval()(x).argmax(1) == task.data.y_train[idx]).float().mean().item()


def _same_shapes(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


def test_be_prunes_the_shadow_class_and_forgets(cnn_classwise):
    model, task = cnn_classwise
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = yaml_method("be", epochs=5, lr=0.05, batch_size=16, weight_decay=0.0)(model, task)
    assert out.fc.out_features == model.fc.out_features == task.data.num_classes
    assert out(task.data.x_test[:3]).shape == (3, task.data.num_classes)
    assert _same_shapes(out, model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items()), "original modified"
    assert _acc(model, task, task.split.forget) > 0.9
    assert _acc(out, task, task.split.forget) < 0.5  # the forget class moved to the (pruned) shadow class


def test_bs_relabels_with_a_wrong_class_and_forgets(cnn_classwise):
    model, task = cnn_classwise
    bs = yaml_method("bs", bound=0.1, epochs=5, lr=0.005, batch_size=16, weight_decay=0.0)
    labels = bs.relabel(model, task)
    assert labels.shape == task.split.forget.shape
    assert (labels != task.data.y_train[task.split.forget]).all()
    assert ((labels >= 0) & (labels < task.data.num_classes)).all()
    out = bs(model, task)
    assert _same_shapes(out, model)
    assert _acc(out, task, task.split.forget) < 0.5 < _acc(out, task, task.split.retain)


def test_ff_moves_low_fisher_weights_more_and_resets_the_forgotten_head(cnn_classwise):
    model, task = cnn_classwise
    ff = yaml_method("ff", alpha=1e-3, power=0.25, max_std=10.0, head="zero", num_samples=48)
    fisher = ff.fisher(model, task)
    assert (fisher >= 0).all() and fisher.numel() == sum(p.numel() for p in model.parameters())
    out = ff(model, task)
    delta = torch.cat([(a - b).flatten() for a, b in zip(out.parameters(), model.parameters())]).abs()
    keep = torch.ones_like(delta, dtype=torch.bool)
    keep[-(model.fc.weight.numel() + model.fc.bias.numel()):] = False  # the head rows are reset, not noised
    lo, hi = fisher[keep].quantile(0.25), fisher[keep].quantile(0.75)
    assert delta[keep & (fisher <= lo)].mean() > 3 * delta[keep & (fisher >= hi)].mean()
    assert torch.equal(forgotten_classes(task), torch.tensor([1]))
    assert (out.fc.weight[1] == 0).all() and out.fc.bias[1] == 0
    clipped = yaml_method("ff", alpha=1e-3, power=0.25, max_std=0.05, eps=1e-8).noise_std(torch.tensor([0.0, 1e4]))
    torch.testing.assert_close(clipped, torch.tensor([0.05, 1e-4]))  # 1e-3 * 1e-8^-1/4 = 0.1 is capped
    again = ff(model, task)
    assert all(torch.equal(a, b) for a, b in zip(out.parameters(), again.parameters())), "not seeded"


def test_ff_random_forgetting_keeps_the_head():
    model, task = _task("mlp", Random(0.25), hidden=16, depth=1)
    assert len(forgotten_classes(task)) == 0
    out = yaml_method("ff", alpha=1e-6, max_std=1e-3)(model, task)
    assert (out.fc.weight != 0).all()


def test_woodfisher_solves_the_damped_system():
    torch.manual_seed(0)
    g, v = torch.randn(40, 300, dtype=torch.float64), torch.randn(300, dtype=torch.float64)
    for damping in (1.0, 1e-2):
        h = damping * torch.eye(300, dtype=torch.float64) + g.T @ g / len(g)
        torch.testing.assert_close(woodfisher_solve(g, v, damping), torch.linalg.solve(h, v))


def test_iu_update_is_the_direct_solve_on_a_tiny_mlp():
    model, task = _task("mlp", Random(0.25), hidden=8, depth=1)  # 556 parameters
    data, split = task.data, task.split
    params = list(model.parameters())
    d = sum(p.numel() for p in params)

    def flat_grad(idx):  # plain autograd, one sample at a time: independent of the vmap path
        rows = []
        for i in idx:
            loss = F.cross_entropy(model(data.prepare(data.x_train[i:i + 1])), data.y_train[i:i + 1])
            rows.append(torch.cat([x.flatten() for x in torch.autograd.grad(loss, params)]))
        return torch.stack(rows)

    gf, gr = flat_grad(split.forget), flat_grad(split.retain)
    n = len(data.y_train)
    v = (gf.sum(0) - len(split.forget) * gr.mean(0)) / n
    damping = 0.05
    h = damping * torch.eye(d) + gr.T @ gr / len(gr)  # all of D_r in the Fisher
    expected = torch.linalg.solve(h.double(), v.double()).float()
    iu = yaml_method("iu", num_samples=len(split.retain), damping=damping, scale=0.5)
    torch.testing.assert_close(iu.direction(model, task), expected, rtol=1e-3, atol=1e-5)
    out = iu(model, task)
    step = torch.cat([(a - b).flatten() for a, b in zip(out.parameters(), model.parameters())])
    torch.testing.assert_close(step, 0.5 * expected, rtol=1e-3, atol=1e-5)
    x = data.prepare(data.x_train[split.retain[:5]])
    torch.testing.assert_close(torch.cat(list(per_sample_grads(model, x, data.y_train[split.retain[:5]], 2))),
                               gr[:5], rtol=1e-4, atol=1e-6)
