"""IU, FF, BE and BS on tiny CPU models (synthetic data): behaviour, and each public-code mode where it differs."""
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import TINY, compose_cfg, yaml_method, yaml_model
from tests.test_mechanisms import batch, trained
from unlearn.methods.base import Task
from unlearn.methods.be import widen
from unlearn.methods.bs import fgsm_point, pixel_stats
from unlearn.methods.ff import batch_mean_fisher, diagonal_fisher, forgotten_classes, public_variance
from unlearn.methods.grads import per_sample_grads, trainable
from unlearn.methods.iu import public_recursion, woodfisher_solve
from unlearn.metrics import evaluate
from unlearn.paradigms import Classwise, Random
from unlearn.train import Recipe, fit
from unlearn.workspace import run_experiment

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


def _step(out, model):
    return torch.cat([(a - b).flatten() for a, b in zip(out.parameters(), model.parameters())])


# --- BE ------------------------------------------------------------------------------------------------------

def test_be_prunes_the_shadow_class_and_forgets(cnn_classwise):
    model, task = cnn_classwise
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = yaml_method("be", epochs=5, lr=0.05, batch_size=16, weight_decay=0.0)(model, task)
    assert out.fc.out_features == model.fc.out_features == task.data.num_classes
    assert _same_shapes(out, model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items()), "original modified"
    assert _acc(model, task, task.split.forget) > 0.9
    assert _acc(out, task, task.split.forget) < 0.5  # the forget class moved to the (pruned) shadow class


def test_be_keep_predicts_the_shadow_class_and_is_scored_over_k_plus_1_outputs(cnn_classwise):
    model, task = cnn_classwise
    k = task.data.num_classes
    out = yaml_method("be", shadow="keep", epochs=5, lr=0.05, batch_size=16, weight_decay=0.0)(model, task)
    assert out.fc.out_features == k + 1
    x, _ = batch(task, task.split.forget)
    with torch.no_grad():
        shadow = (out(x).argmax(1) == k).float().mean().item()
    assert shadow > 0.8
    m = evaluate(out, task.data, task.split, seed=0)  # argmax and softmax over K + 1 outputs
    assert m["UA"] == pytest.approx(100 * (1 - _acc(out, task, task.split.forget)))
    assert m["UA"] >= 100 * shadow - 1e-9  # a forget sample predicted as the shadow class counts as forgotten
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values())


def test_be_keep_runs_through_the_runner(tmp_path):
    metrics = run_experiment(compose_cfg([*TINY, "method=be", "method.shadow=keep", "paradigm=classwise"], tmp_path))
    for key in ("UA", "MIA", "RA", "TA", "H", "avg_gap"):
        assert torch.isfinite(torch.tensor(metrics[key])), key


def test_be_shadow_row_inits():
    fc = torch.nn.Linear(16, 4)
    xavier = widen(fc, torch.Generator().manual_seed(0), "xavier")
    default = widen(fc, torch.Generator().manual_seed(0), "linear_default")
    for wide in (xavier, default):
        assert torch.equal(wide.weight[:4], fc.weight) and torch.equal(wide.bias[:4], fc.bias)
    assert xavier.bias[4] == 0 and default.bias[4] != 0
    assert default.weight[4].abs().max() <= 16 ** -0.5 and default.bias[4].abs() <= 16 ** -0.5


# --- BS ------------------------------------------------------------------------------------------------------

def test_bs_public_perturbation_is_bounded_in_pixel_space_and_quantised():
    model, task = trained("classwise", pixels=True)  # uint8 images normalised with mean 0.5, std 0.25
    x, y = batch(task, task.split.forget)
    stats = pixel_stats(task.data, x.device)
    pix = x * 0.25 + 0.5
    adv = fgsm_point(model, x, y, 0.1, "pixel", stats) * 0.25 + 0.5
    assert adv.min() >= 0 and adv.max() <= 1
    torch.testing.assert_close(adv * 255, (adv * 255).round(), atol=1e-4, rtol=0)  # on the 1/255 grid
    assert (adv - pix).abs().max() <= 0.1 + 0.5 / 255 + 1e-6
    assert (adv - pix).abs().max() > 0.09  # a full step where the clamp allows
    ours = fgsm_point(model, x, y, 0.1, "input") * 0.25 + 0.5  # 0.1 in normalised units = 0.025 in pixels
    torch.testing.assert_close((ours - pix).abs().max(), torch.tensor(0.025))


def test_bs_keep_true_may_keep_the_true_label_and_wrong_only_never_does():
    model, task = trained("classwise", pixels=True)
    f = task.split.forget
    keep = yaml_method("bs", space="pixel", bound=0.1, keep_true=True).relabel_clean(model, task)
    wrong = yaml_method("bs", space="pixel", bound=0.1, keep_true=False).relabel_clean(model, task)
    y = task.data.y_train[f]
    assert (keep == y).float().mean() > 0.5  # a 0.1 step rarely crosses a boundary of this fitted model
    assert (wrong != y).all()


def test_bs_every_batch_relabels_the_trained_batches_and_forgets():
    model, task = trained("classwise", pixels=True)
    logged = []
    task = Task(task.data, task.split, task.device, 0, build_model=task.build_model,
                log=lambda m, step: logged.append(m))
    bs = yaml_method("bs", space="pixel", relabel="every_batch", bound=0.2, epochs=4, lr=0.05, batch_size=16)
    out = bs(model, task)
    kept = [m["unlearn/kept_true"] for m in logged]
    assert 0 < kept[0] < 1  # some labels crossed a boundary, some did not
    assert _acc(out, task, task.split.forget) < 0.6 * _acc(model, task, task.split.forget)
    assert _acc(out, task, task.split.retain) > 0.6


def test_bs_pixel_space_rejects_inputs_outside_0_1(tmp_path):
    from unlearn.validate import ConfigError
    from unlearn.workspace import Workspace
    with pytest.raises(ConfigError, match="space='pixel'"):
        Workspace(compose_cfg([*TINY, "method=bs", "method.space=pixel"], tmp_path))


def test_bs_relabel_once_with_wrong_classes_and_forgets(cnn_classwise):
    model, task = cnn_classwise
    bs = yaml_method("bs", space="input", relabel="once", keep_true=False, bound=0.1, epochs=5, lr=0.005,
                     batch_size=16, weight_decay=0.0)
    labels = bs.relabel_clean(model, task)
    assert labels.shape == task.split.forget.shape
    assert (labels != task.data.y_train[task.split.forget]).all()
    out = bs(model, task)
    assert _same_shapes(out, model)
    assert _acc(out, task, task.split.forget) < 0.5 < _acc(out, task, task.split.retain)


# --- FF ------------------------------------------------------------------------------------------------------

def test_ff_moves_low_fisher_weights_more_and_zeroes_the_forgotten_head(cnn_classwise):
    model, task = cnn_classwise
    ff = yaml_method("ff", variant="paper", alpha=1e-3, power=0.25, max_std=10.0, head="zero", num_samples=48)
    fisher = ff.fisher(model, task)
    assert (fisher >= 0).all() and fisher.numel() == sum(p.numel() for p in model.parameters())
    out = ff(model, task)
    delta = _step(out, model).abs()
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


def test_ff_head_modes_on_class_wise_forgetting():
    model, task = trained("classwise")
    outs = {h: yaml_method("ff", head=h, alpha=1e-4, num_samples=16)(model, task) for h in ("keep", "resample")}
    row = model.fc.weight[1]
    kept, fresh = outs["keep"].fc.weight[1], outs["resample"].fc.weight[1]
    assert (kept - row).abs().max() < 0.05 * row.abs().max()  # keep: noised like any weight, still the row
    assert (fresh - row).abs().mean() > 0.5 * row.abs().mean()  # resample: a fresh N(0, 1e-3) row
    assert fresh.abs().max() < 5 * 1e-3 ** 0.5 and outs["resample"].fc.bias[1].abs() < 5 * 1e-3 ** 0.5
    torch.testing.assert_close(outs["keep"].fc.weight[0], outs["resample"].fc.weight[0])  # other rows alike


def test_ff_random_forgetting_keeps_the_head():
    model, task = _task("mlp", Random(0.25), hidden=16, depth=1)
    assert len(forgotten_classes(task)) == 0
    out = yaml_method("ff", alpha=1e-6, max_std=1e-3, head="zero")(model, task)
    assert (out.fc.weight != 0).all()


def test_ff_public_variance_follows_its_formula_on_a_hand_computed_fisher():
    fisher = {"body.weight": torch.tensor([[1e-6, 1.0, 4.0, 0.5], [2.0, 2.0, 2.0, 2.0]]),
              "bn.weight": torch.tensor([0.1, 1e-9]),
              "fc.weight": torch.tensor([[1e-6, 1.0], [0.25, 0.5], [10.0, 10.0]]),
              "fc.bias": torch.tensor([1e-6, 4.0, 100.0])}
    var = public_variance(fisher, {"fc.weight", "fc.bias"}, alpha=0.5, eps=1e-8)
    # body: alpha * min(1/F, 1e3) = [[500, .5, .125, 1], [.25] * 4], then the mean of each row
    torch.testing.assert_close(var["body.weight"], torch.tensor([[125.40625] * 4, [0.25] * 4]))
    # 1-D: alpha * min(1/F, 1e3) = [5, 500], x10
    torch.testing.assert_close(var["bn.weight"], torch.tensor([50.0, 5000.0]))
    # head: alpha * min(1/F, 1e2) = [[50, .5], [2, 1], [.05, .05]], row means, x10
    torch.testing.assert_close(var["fc.weight"], torch.tensor([[252.5] * 2, [15.0] * 2, [0.5] * 2]))
    torch.testing.assert_close(var["fc.bias"], torch.tensor([500.0, 1.25, 0.05]), rtol=1e-4, atol=1e-6)


def test_ff_public_fisher_is_over_batch_mean_gradients():
    model, task = trained()
    x, _ = batch(task, task.split.retain[:32])
    per_sample = diagonal_fisher(model, x)
    torch.testing.assert_close(batch_mean_fisher(model, x.split(1)), per_sample, rtol=1e-4, atol=1e-10)
    ps = list(model.parameters())
    want = 0
    for xb in x.split(16):  # by hand: mean_i p(c | x_i) * (grad of the batch-mean CE with every target c)^2
        probs = F.softmax(model(xb), 1).detach()
        for c in range(probs.shape[1]):
            g = torch.autograd.grad(F.cross_entropy(model(xb), torch.full((len(xb),), c)), ps)
            want = want + probs[:, c].mean() * torch.cat([t.flatten() for t in g]).pow(2)
    pooled = batch_mean_fisher(model, x.split(16))
    torch.testing.assert_close(pooled, want / 2)
    assert (pooled - per_sample).norm() > 0.5 * per_sample.norm()  # not the per-sample Fisher


def test_ff_public_noise_is_sqrt_of_its_variance_times_a_seeded_draw():
    model, task = trained("classwise")
    ff = yaml_method("ff", variant="public", alpha=1e-7, fisher_batch=8, head="keep", num_samples=None)
    x, _ = batch(task, task.split.retain)
    f = batch_mean_fisher(model, x.split(8))
    names = list(trainable(model))
    parts, pos = {}, 0
    for n, p in trainable(model).items():
        parts[n] = f[pos:pos + p.numel()].view_as(p)
        pos += p.numel()
    var = public_variance(parts, {"fc.weight", "fc.bias"}, 1e-7, 1e-8)
    std = torch.cat([var[n].flatten() for n in names]).sqrt()
    noise = std * torch.randn(std.shape, generator=torch.Generator().manual_seed(task.seed))
    step = _step(ff(model, task), model)
    assert (step - noise).norm() <= 1e-4 * noise.norm()
    paper = _step(yaml_method("ff", variant="paper", alpha=1e-7, head="keep", num_samples=None)(model, task), model)
    assert (paper - step).norm() > 0.5 * step.norm()  # the two laws differ


# --- IU ------------------------------------------------------------------------------------------------------

def test_woodfisher_solves_the_damped_system():
    torch.manual_seed(0)
    g, v = torch.randn(40, 300, dtype=torch.float64), torch.randn(300, dtype=torch.float64)
    for damping in (1.0, 1e-2):
        h = damping * torch.eye(300, dtype=torch.float64) + g.T @ g / len(g)
        torch.testing.assert_close(woodfisher_solve(g, v, damping), torch.linalg.solve(h, v))


def test_public_recursion_on_a_two_sample_toy_and_its_rank_one_corrections():
    g = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    v = torch.tensor([1.0, 1.0], dtype=torch.float64)
    # by hand: k = v - (g2 . v) / (N + g1 . g2) g1 = (1, 1) - 4/6 (2, 1) with N = 1
    torch.testing.assert_close(public_recursion([g], v, 1.0), torch.tensor([-1 / 3, 1 / 3], dtype=torch.float64))
    torch.testing.assert_close(woodfisher_solve(g, v, 1.0), torch.tensor([0.2373, 0.0678], dtype=torch.float64),
                               atol=1e-4, rtol=0)  # (I + (g1 g1^T + g2 g2^T) / 2)^-1 v
    torch.manual_seed(0)
    gs, v = torch.randn(10, 50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    k = public_recursion(gs.split(3), v, 5.0)  # chunked like per_sample_grads
    torch.testing.assert_close(k, public_recursion([gs], v, 5.0))
    d = k - v
    torch.testing.assert_close(d, (d @ gs[0]) / (gs[0] @ gs[0]) * gs[0])  # every correction lies along g_1


def test_iu_public_solver_steps_along_the_public_recursion():
    model, task = trained()
    data, split = task.data, task.split
    iu = yaml_method("iu", solver="public", num_samples=20, scale=0.5)
    nf, nr = len(split.forget), len(split.retain)
    from unlearn.methods.grads import mean_grad
    v = nf / (nf + nr) * (mean_grad(model, data, split.forget) - mean_grad(model, data, split.retain))
    x, y = batch(task, split.retain[:22])
    expected = public_recursion([torch.cat(list(per_sample_grads(model, x, y)))], v, 20.0)
    assert (iu.direction(model, task) - expected).norm() <= 1e-4 * expected.norm()
    torch.testing.assert_close(_step(iu(model, task), model), 0.5 * expected, atol=3e-7, rtol=0)


def test_iu_per_sample_gradients_match_autograd():
    model, task = trained()
    data, idx = task.data, task.split.retain[:5]
    params = list(model.parameters())
    rows = [torch.cat([g.flatten() for g in torch.autograd.grad(
        F.cross_entropy(model(data.prepare(data.x_train[i:i + 1])), data.y_train[i:i + 1]), params)]) for i in idx]
    x, y = batch(task, idx)
    torch.testing.assert_close(torch.cat(list(per_sample_grads(model, x, y, 2))), torch.stack(rows),
                               rtol=1e-4, atol=1e-6)

