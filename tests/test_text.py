"""Text data and models: the 20 Newsgroups bydate loader on a generated fixture, token caching, and
the bow / BERT / MiniLM classifiers on tiny inputs. Nothing downloads."""
import math

import pytest
import torch

from tests.conftest import SHARED_DATA, compose_cfg, state_round_trip, yaml_model
from unlearn.data import newsgroups
from unlearn.data.newsgroups import GROUPS, load_newsgroups20, read_bydate, strip_text
from unlearn.workspace import build, run_experiment

TRAIN, TEST = 3, 2  # posts per group in the fixture
TINY_BERT = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def post(group: str, i: int) -> bytes:
    """A raw post: header block, a quoted reply, body words of its group, a signature; latin-1 bytes."""
    words = " ".join([group.replace(".", " ")] * 3)
    return (f"From: user{i}@{group}.example (Jos\xe9 Doe)\nSubject: Re: post {i}\nOrganization: HEADERWORD\n"
            f"Lines: 5\n\nIn article <{i}@x> someone writes:\n> quotedword here\n"
            f"I think {words} caf\xe9 number {i}.\n\n--\nsignatureword\n").encode("latin-1")


@pytest.fixture(scope="module")
def bydate(tmp_path_factory):
    root = tmp_path_factory.mktemp("20news")
    for folder, n in (("20news-bydate-train", TRAIN), ("20news-bydate-test", TEST)):
        for g, group in enumerate(GROUPS):
            (root / folder / group).mkdir(parents=True)
            for i in range(n):
                (root / folder / group / str(50000 + 10 * g + i)).write_bytes(post(group, i))
    return root


def load(root, **kw):
    return load_newsgroups20(root=str(root), max_length=96, **kw)


def test_bydate_sizes_labels_superclasses(bydate):
    d = load(bydate)
    assert d.x_train.shape == (20 * TRAIN, 96) and d.x_test.shape == (20 * TEST, 96)
    assert d.x_train.dtype == torch.int64 and (d.x_train == 0).any()  # right-padded with the pad id 0
    assert d.classes == list(GROUPS) and d.num_classes == 20
    assert d.y_train.tolist() == [g for g in range(20) for _ in range(TRAIN)]
    assert d.coarse_classes == ["alt", "comp", "misc", "rec", "sci", "soc", "talk"]
    prefix = [d.coarse_classes[c] for c in d.coarse_of.tolist()]
    assert prefix == [g.split(".")[0] for g in GROUPS]
    coarse = d.to_coarse()
    assert coarse.num_classes == 7 and coarse.group_train.tolist() == d.y_train.tolist()
    assert d.prepare(d.x_train[:4]).dtype == torch.int64  # token ids pass through unchanged


def test_latin1_and_stripping(bydate):
    texts = read_bydate(bydate)[0]["train"][0]
    raw = texts[0]
    assert "Jos\xe9" in raw and "caf\xe9" in raw  # decoded as latin-1, not dropped
    bare = strip_text(raw, ("headers", "footers", "quotes"))
    assert "HEADERWORD" not in bare and "quotedword" not in bare and "writes:" not in bare
    assert "signatureword" not in bare and "caf\xe9 number 0" in bare
    assert strip_text(raw, ()) == raw
    full, stripped = load(bydate), load(bydate, remove=["headers"])
    assert ((stripped.x_train != 0).sum(1) < (full.x_train != 0).sum(1)).all()


def test_stripping_matches_scikit_learn(bydate):
    sk = pytest.importorskip("sklearn.datasets._twenty_newsgroups")  # private helpers, the reference
    for raw in read_bydate(bydate)[0]["train"][0][::7]:
        expect = sk.strip_newsgroup_quoting(sk.strip_newsgroup_footer(sk.strip_newsgroup_header(raw)))
        assert strip_text(raw, ("headers", "footers", "quotes")) == expect


def test_subsample_per_class(bydate):
    d = load(bydate, per_class=2, test_per_class=1)
    assert torch.bincount(d.y_train).tolist() == [2] * 20 and torch.bincount(d.y_test).tolist() == [1] * 20
    assert torch.equal(d.x_train, load(bydate, per_class=2, test_per_class=1).x_train)  # seeded


def test_token_cache_hit(bydate, tmp_path, monkeypatch):
    first = load(bydate, cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("newsgroups20-tokens-*.pt"))) == 1

    def no_tokenizer(name):
        raise AssertionError("tokenizer loaded although the tokens are cached")

    monkeypatch.setattr(newsgroups, "load_tokenizer", no_tokenizer)
    again = load(bydate, cache_dir=str(tmp_path))
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.x_test, again.x_test)
    with pytest.raises(AssertionError):  # another key (here: stripped text) is a miss
        load(bydate, cache_dir=str(tmp_path), remove=["headers"])


def test_missing_or_incomplete_root(bydate, tmp_path):
    with pytest.raises(ValueError, match=r"does not exist.*20news-bydate-train.*qwone"):
        load(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    (partial / "20news-bydate-train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"20news-bydate-train lacks 20 group"):
        load(partial)
    with pytest.raises(ValueError, match="dataset.source"):
        load(bydate, source="usenet")


def test_a_dry_runs_data_check_fetches_no_tokenizer(bydate, tmp_path, monkeypatch):
    """The table runner's data check before a dry run asks the Hugging Face cache only (local_files_only): a hub
    tokenizer that is not cached counts as present online (the run fetches it) and is named offline; the real
    run's check may fetch it. Nothing here reaches the network: from_pretrained is replaced."""
    from transformers import AutoTokenizer

    from unlearn.tables.plan import missing_data
    asked = []

    def not_cached(path, **kw):
        asked.append(kw.get("local_files_only"))
        raise OSError(f"{path} is not in the cache")
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", not_cached)
    cfg = compose_cfg(["dataset=newsgroups20", f"dataset.root={bydate}", "dataset.tokenizer=bert-base-uncased",
                       "dataset.max_length=16"], tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "tokenizer='bert-base-uncased'" in missing_data(cfg, download=False) and asked == [True]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert missing_data(cfg, download=False) is None and asked == [True, True]
    assert "could not be loaded" in missing_data(cfg) and asked == [True, True, False]


def test_hf_source_offline_error_and_saved_dataset(tmp_path):
    with pytest.raises(ValueError, match="could not be loaded"):
        load_newsgroups20(source="hf", hf_name="SetFit/20_newsgroups")
    datasets = pytest.importorskip("datasets")
    rows = lambda n: {"text": [f"post about {g}" for g in GROUPS[:3] for _ in range(n)],  # noqa: E731
                      "label": [i for i in range(3) for _ in range(n)],
                      "label_text": [g for g in GROUPS[:3] for _ in range(n)]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(4)),
                          "test": datasets.Dataset.from_dict(rows(2))}).save_to_disk(str(tmp_path / "hf"))
    d = load_newsgroups20(source="hf", hf_name=str(tmp_path / "hf"), max_length=16)
    assert d.classes == list(GROUPS[:3]) and d.x_train.shape == (12, 16) and d.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    assert d.coarse_classes == ["alt", "comp"]


def text_model(kind, num_classes=5, length=16, **kw):
    torch.manual_seed(kw.pop("seed", 0))
    if kind == "bow":
        return yaml_model("bow", num_classes, [length], tokenizer="minilm", dim=8)
    if kind == "bert":
        return yaml_model("bert", num_classes, [length], pretrained="minilm", tokenizer="minilm", random_init=True,
                          config_overrides=TINY_BERT)
    return yaml_model("minilm", num_classes, [384], embedded_by="minilm", hidden=kw.get("hidden", 0))


def tokens(n=4, length=16):
    x = torch.randint(1000, 2000, (n, length))
    x[:, 0], x[1, 5:] = 101, 0  # [CLS] first; row 1 padded after 5 tokens
    return x


@pytest.mark.parametrize("kind,feat", [("bow", 8), ("bert", 32), ("minilm", 384)])
def test_text_models_shapes_and_contract(kind, feat, tmp_path):
    model = text_model(kind)
    x = torch.randn(4, 384) if kind == "minilm" else tokens()
    out = model(x)
    assert out.shape == (4, 5) and model.features(x).shape == (4, feat)
    assert isinstance(model.fc, torch.nn.Linear) and model.fc.in_features == feat
    out.sum().backward()
    assert model.fc.weight.grad is not None and torch.isfinite(model.fc.weight.grad).all()
    model.eval()
    other = state_round_trip(model, text_model(kind, seed=1), tmp_path).eval()
    assert torch.allclose(model(x), other(x))


def test_bert_masks_padding():
    model = text_model("bert").eval()
    x = tokens()
    longer = torch.cat([x, torch.zeros(4, 8, dtype=torch.long)], 1)  # more right padding: same output
    assert torch.allclose(model(x), model(longer), atol=1e-5)


def test_text_models_reject_bad_inputs():
    with pytest.raises(ValueError, match="tokenised text"):
        yaml_model("bow", 3, [16], tokenizer=None)
    with pytest.raises(ValueError, match="embeddings"):
        yaml_model("bow", 3, [384], tokenizer="minilm", embedded_by="minilm")
    with pytest.raises(ValueError, match="frozen=false"):
        yaml_model("minilm", 3, [384], embedded_by="minilm", frozen=False)


def test_minilm_frozen_embeddings_match_encoder(bydate, tmp_path):
    """The cached embeddings are exactly what the frozen token-input model computes."""
    d = load(bydate, per_class=1, test_per_class=1, encoder="minilm", cache_dir=str(tmp_path))
    assert d.x_train.shape == (20, 384) and d.x_train.dtype == torch.float32
    assert torch.allclose(d.x_train.norm(dim=1), torch.ones(20), atol=1e-4)
    ids = load(bydate, per_class=1, test_per_class=1)
    model = yaml_model("minilm", 20, [96], tokenizer="minilm", frozen=True).train()
    assert not model.encoder.training and not any(p.requires_grad for p in model.encoder.parameters())
    assert torch.allclose(model.features(ids.x_train[:4]), d.x_train[:4], atol=1e-4)
    model(ids.x_train[:4]).sum().backward()
    assert model.fc.weight.grad is not None


def test_model_configs_follow_the_dataset(tmp_path):
    cfg = compose_cfg(["dataset=newsgroups20", "model=minilm"], tmp_path)  # dataset_model: cached embeddings
    assert cfg.dataset.encoder == "minilm" and cfg.model.embedded_by == "minilm"
    cfg = compose_cfg(["dataset=newsgroups20", "model=bow"], tmp_path)
    assert cfg.model.tokenizer == "minilm" and cfg.model.embedded_by is None
    cfg = compose_cfg(["dataset=digits", "model=bow"], tmp_path)
    with pytest.raises(ValueError, match="tokenised text"):
        build(cfg.model, num_classes=10, input_shape=[1, 8, 8])


BERT_OVERRIDES = ["model.pretrained=minilm", "model.random_init=true",
                  "model.config_overrides={" + ",".join(f"{k}:{v}" for k, v in TINY_BERT.items()) + "}"]


@pytest.mark.parametrize("model,paradigm", [("bow", "classwise"), ("bow", "group"), ("bert", "classwise"),
                                           ("minilm", "classwise")])
def test_run_experiment_on_fixture(bydate, tmp_path, model, paradigm):
    cfg = compose_cfg(["dataset=newsgroups20", f"dataset.root={bydate}", "dataset.max_length=96", f"model={model}",
                       f"paradigm={paradigm}", "device=cpu", "wandb.mode=disabled", "train.epochs=1",
                       "train.batch_size=16", "method.epochs=1", *(BERT_OVERRIDES if model == "bert" else [])],
                      tmp_path)
    m = run_experiment(cfg)
    assert all(math.isfinite(m[k]) for k in ("UA", "MIA", "RA", "TA", "original/TA"))


@pytest.mark.shared_data
@pytest.mark.slow  # 7 s on 2 idle cores, minutes when they are shared
def test_real_newsgroups_subset_end_to_end(tmp_path):
    """The experiment config on 30 real posts per group learns well above chance (5%)."""
    cfg = compose_cfg(["experiment=newsgroups20_classwise", f"dataset.root={SHARED_DATA / '20news-bydate'}",
                       "dataset.per_class=30", "dataset.test_per_class=10", "device=cpu", "wandb.mode=disabled",
                       "train.epochs=6", "train.batch_size=32", "train.lr=0.03", "method.epochs=1"], tmp_path)
    m = run_experiment(cfg)
    assert m["original/TA"] > 15 and m["forget/size"] == 30
