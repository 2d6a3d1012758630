"""`unlearn new-method NAME`: a working method to start from, in the three files a method needs.

    unlearn new-method NAME [--class CLASS]

writes `<conf>/method/NAME.yaml` (its hyperparameters, each with a comment), `unlearn/methods/NAME.py` (a
`LossMethod` that overrides only `loss`) and `tests/methods/test_NAME.py` (its mechanism test, which
scripts/mutation_check.py finds by the file's name, with no registration). The example loss is
L = CE(B_r) - weight * CE(B_f); replace it, its formula in the test and the YAML's comment by the method's own.
"""
from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

from unlearn.help import CONF

PACKAGE = Path(__file__).resolve().parent  # unlearn/
TESTS = PACKAGE.parent / "tests" / "methods"  # in a source checkout: where the mechanism tests of new methods go

YAML = """\
# {name}: L = CE(B_r) - weight * CE(B_f) (the template's example loss; say the method's own and its source). One
# epoch is one pass over D_f, each forget batch paired with an equal-size retain batch (unlearn/methods/{name}.py).
# Values here are the authors' at paper scale; the optimiser recipe is inherited from optim/sgd.yaml.
# Small regimes (synthetic, digits, the CPU copies): state only what differs in tuned/<regime>/{name}.yaml
# (`# @package method`, with where each value comes from; tuned/README.md). A forget set of a few batches needs a
# larger step than the paper's: start from GA's there (tuned/digits/ga.yaml: lr 0.002, 5 epochs, batch 64), or
# let `unlearn tune method={name}` pick them on a validation split (docs/own-data.md).
defaults:
  - /optim@_here_: sgd
  - _self_
_target_: unlearn.methods.{name}.{cls}
name: {name}
weight: 0.5  # weight of the forget (ascent) term against the retain (descent) term, >= 0
lr: 1e-4  # learning rate (GA's, App. D.3: the method ascends on D_f)
"""

MODULE = '''\
"""{cls}: L = CE(B_r) - weight * CE(B_f) (the template's example loss; name the method and its paper here)."""
import torch.nn.functional as F

from unlearn.checks import finite, require
from unlearn.methods.base import LossMethod


class {cls}(LossMethod):
    """L = CE(B_r) - weight * CE(B_f); one epoch is one pass over D_f (`drive`), each forget batch paired with
    an equal-size retain batch (`pair`). Hyperparameters are required keyword arguments: their values live in
    conf/method/{name}.yaml only. Per-call state (relabelled targets, masks) goes in the `Run` the hooks get."""

    drive = "forget"
    pair = True

    def __init__(self, *, weight: float, **recipe):
        super().__init__(**recipe)
        require([("weight", finite(weight) and weight >= 0, "a finite number >= 0 (weight of the forget term)")],
                {{"weight": weight}}, "{name}: ")
        self.weight = weight

    def loss(self, run, forget, retain):
        (xf, yf), (xr, yr) = forget, retain
        return F.cross_entropy(run.model(xr), yr) - self.weight * F.cross_entropy(run.model(xf), yf)
'''

TEST = '''\
"""{cls}'s mechanism, pinned. scripts/mutation_check.py runs every argument-free test of this file (found by its
name, tests/methods/test_<method>.py) against {name}'s GA and FT mutants: each mutant must fail one of them.

Pin the loss on a fixed batch against its formula written out here, never by calling the method's own code. If
the method's behaviour lives in hooks (start_epoch, targets, before_step), the mutants keep the hooks: assert
what the hooks feed the loss too (tests/test_mechanisms.py::_check_relabelled_ce does it for RL's labels)."""
import torch
import torch.nn.functional as F

from tests.test_mechanisms import far_apart, fixed_batches, grad, loss_grad, method, same, trained


def test_{name}_gradient_is_its_loss():
    model, task = trained()  # an MLP fitted on the synthetic data; the method works on a copy
    (xf, yf), (xr, yr) = forget, retain = fixed_batches(task)
    got = loss_grad(method("{name}", weight=0.5), model, task, forget, retain)
    want = grad(lambda: F.cross_entropy(model(xr), yr) - 0.5 * F.cross_entropy(model(xf), yf), model)
    same(got, want)
    assert far_apart(got, grad(lambda: -F.cross_entropy(model(xf), yf), model))  # not GA's gradient
    assert far_apart(got, grad(lambda: F.cross_entropy(model(xr), yr), model))  # nor FT's


def test_{name}_the_loop_runs_its_loss_and_stays_finite():
    model, task = trained()
    out = method("{name}", weight=0.5, epochs=1, lr=0.05, batch_size=16)(model, task)
    assert all(p.isfinite().all() for p in out.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(out.parameters(), model.parameters()))  # it took steps
'''


def class_name(name: str) -> str:
    """ugradsl_plus -> UgradslPlus (pass --class for acronyms, e.g. UGradSLPlus)."""
    return "".join(part.capitalize() for part in name.split("_"))


def paths(name: str, conf: Path = CONF, package: Path = PACKAGE, tests: Path = TESTS) -> dict[str, Path]:
    return {"yaml": conf / "method" / f"{name}.yaml", "module": package / "methods" / f"{name}.py",
            "test": tests / f"test_{name}.py"}


def write(name: str, cls: str | None = None, conf: Path = CONF, package: Path = PACKAGE,
          tests: Path = TESTS) -> dict[str, Path]:
    """Write the three files of method `name`; refuses a bad name or one whose files exist. Returns their paths."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ValueError(f"method name {name!r} is invalid; allowed: lower case letters, digits and _, starting "
                         f"with a letter (it names the YAML, the module and the test)")
    cls = cls or class_name(name)
    if not cls.isidentifier() or not cls[0].isupper():
        raise ValueError(f"--class {cls!r} is invalid; allowed: a Python class name starting with a capital")
    out = paths(name, conf, package, tests)
    if taken := [str(p) for p in out.values() if p.exists()]:
        raise ValueError(f"method {name!r} exists already ({', '.join(taken)}); pick another name")
    for key, template in (("yaml", YAML), ("module", MODULE), ("test", TEST)):
        out[key].parent.mkdir(parents=True, exist_ok=True)
        out[key].write_text(template.format(name=name, cls=cls))
    init = tests / "__init__.py"
    if not init.exists():
        init.write_text("")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unlearn new-method", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the method's name: conf/method/NAME.yaml, unlearn/methods/NAME.py")
    parser.add_argument("--class", dest="cls", help="the class name (default: NAME in CamelCase)")
    args = parser.parse_args(argv)
    try:
        if not TESTS.parent.is_dir():
            raise ValueError(f"unlearn new-method writes into a source checkout (git clone, pip install -e .); "
                             f"{TESTS.parent} is not there")
        out = write(args.name, args.cls)
    except ValueError as e:  # one line, exit status 2, as every refused command
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in out.values():
        print(f"wrote {path}")
    print(f"next: make the loss yours (module, YAML comment, the formula in the test), then\n"
          f"  .venv/bin/pytest -q {out['test']}\n"
          f"  .venv/bin/python scripts/mutation_check.py {args.name}\n"
          f"  unlearn method={args.name} dataset=synthetic")
    return 0
