"""Splits are disjoint, cover D_tr, have the requested size and depend only on the seed."""
import pytest
import torch

from unlearn.paradigms import Classwise, Group, Random, RandomInClass

PARADIGMS = [Classwise(1), Random(0.1), RandomInClass(2, 0.25), Group(forget_group=3, forget_group_fraction=None)]


def _data(p, synthetic):
    return synthetic.to_coarse() if p.labels == "coarse" else synthetic


@pytest.mark.parametrize("paradigm", PARADIGMS, ids=lambda p: type(p).__name__)
def test_disjoint_cover_deterministic(paradigm, synthetic):
    data = _data(paradigm, synthetic)
    s1, s2 = paradigm.split(data, seed=3), paradigm.split(data, seed=3)
    n = len(data.y_train)
    assert set(s1.forget.tolist()).isdisjoint(s1.retain.tolist())
    assert sorted(s1.forget.tolist() + s1.retain.tolist()) == list(range(n))
    assert torch.equal(s1.forget, s2.forget) and s1.fingerprint() == s2.fingerprint()


def test_sizes(synthetic):
    y = synthetic.y_train
    cw = Classwise(1).split(synthetic, 0)
    assert torch.equal(cw.forget, torch.nonzero(y == 1).flatten())
    assert (synthetic.y_test[cw.test] != 1).all() and len(cw.test) == 30  # TA without the class
    rnd = Random(0.1).split(synthetic, 0)
    assert len(rnd.forget) == 16 and all((y[rnd.forget] == c).sum() == 4 for c in range(4))
    ric = RandomInClass(2, 0.25).split(synthetic, 0)
    assert len(ric.forget) == 10 and (y[ric.forget] == 2).all() and len(ric.test) == 40


def test_random_depends_on_seed(synthetic):
    assert not torch.equal(Random(0.1).split(synthetic, 0).forget, Random(0.1).split(synthetic, 1).forget)


def test_group_forgets_one_fine_class_within_its_superclass(synthetic):
    data = synthetic.to_coarse()
    assert data.num_classes == 2 and torch.equal(data.y_train, synthetic.y_train % 2)
    s = Group(forget_group=3, forget_group_fraction=None).split(data, 0)
    assert torch.equal(s.forget, torch.nonzero(synthetic.y_train == 3).flatten())
    assert len(s.test) == len(data.y_test)
    frac = Group(forget_group=None, forget_group_fraction=0.5).split(data, 0)
    assert len(torch.unique(data.group_train[frac.forget])) == 2


@pytest.mark.parametrize("make, match", [
    (lambda: Random(0.0), "forget_fraction=0.0"),
    (lambda: Random(1.5), "forget_fraction=1.5"),
    (lambda: RandomInClass(0, -0.1), "forget_fraction=-0.1"),
])
def test_bad_fraction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_class_and_empty(synthetic):
    with pytest.raises(ValueError, match=r"forget_class=4 is invalid; allowed: an integer in \[0, 4\)"):
        Classwise(4).split(synthetic, 0)
    with pytest.raises(ValueError, match="forget set is empty"):
        Random(0.001).split(synthetic, 0)
    with pytest.raises(ValueError, match="groups \\[9\\] do not exist"):
        Group(forget_group=9, forget_group_fraction=None).split(synthetic.to_coarse(), 0)
    with pytest.raises(ValueError, match="forget_group='any' is invalid"):
        Group(forget_group="any", forget_group_fraction=None)


def test_random_class_is_drawn_per_seed_and_recorded(synthetic):
    drawn = {}
    for seed in range(12):
        s = Classwise("random").split(synthetic, seed)
        c = s.info["forget_class"]
        assert torch.equal(s.forget, torch.nonzero(synthetic.y_train == c).flatten())
        assert (synthetic.y_test[s.test] != c).all()  # TA without the drawn class
        assert Classwise("random").split(synthetic, seed).info == s.info  # the same seed draws the same class
        drawn[seed] = c
    assert len(set(drawn.values())) > 1
    ric = RandomInClass("random", 0.25).split(synthetic, 5)
    assert (synthetic.y_train[ric.forget] == ric.info["forget_class"]).all()


def test_random_groups(synthetic):
    data = synthetic.to_coarse()  # 4 fine classes in 2 superclasses (c % 2)
    one = Group(forget_group="random", forget_group_fraction=None).split(data, 3)
    assert len(one.info["forget_group"]) == 1
    assert torch.equal(one.forget, torch.nonzero(data.group_train == one.info["forget_group"][0]).flatten())
    each = Group(forget_group="one_per_superclass", forget_group_fraction=None).split(data, 3)
    groups = each.info["forget_group"]
    assert len(groups) == 2 and sorted(g % 2 for g in groups) == [0, 1]  # one fine class of every superclass


@pytest.mark.parametrize("make", [Classwise, lambda c: RandomInClass(c, 0.5)], ids=["classwise", "random_in_class"])
def test_a_class_is_chosen_by_its_name_as_by_its_id(make, synthetic, caplog):
    caplog.set_level("INFO", logger="unlearn")
    by_name, by_id = make("c2").split(synthetic, 0), make(2).split(synthetic, 0)
    assert torch.equal(by_name.forget, by_id.forget) and torch.equal(by_name.test, by_id.test)
    assert by_name.info == {"forget_class": 2}
    assert "forget_class=c2: class 2 (c2); classes: 0 c0, 1 c1, 2 c2, 3 c3" in caplog.text  # the map, on one line


def test_a_bad_class_name_is_refused_with_the_names_allowed(synthetic):
    with pytest.raises(ValueError, match=r"forget_class='c' is invalid; .*a class name \(c0, c1, c2, c3\), or "
                                         r"'random' .*did you mean"):
        Classwise("c").split(synthetic, 0)
    with pytest.raises(ValueError, match=r"forget_class='2' is invalid"):  # a quoted id is not a name here
        Classwise("2").split(synthetic, 0)


def test_a_long_class_map_stays_on_one_short_line():
    from unlearn.paradigms import class_map
    text = class_map([f"name{i}" for i in range(100)])
    assert text.startswith("0 name0, 1 name1") and text.endswith("..., 98 name98, 99 name99") and len(text) < 250
