"""Every registered loss, dataset and backbone meets its contract.

The contracts are in docs/plugins.md.

Runs over the built-ins, every installed plugin (entry points) and this process's registrations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rcl_study import registry
from rcl_study.config import ConfigError
from rcl_study.data.types import Split


@pytest.mark.parametrize("name", registry.names("losses"))
def test_every_loss_meets_the_contract(name):
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 0, 1])
    counts = torch.tensor([30.0, 10.0, 3.0])
    loss = registry.create("losses", name, logits, labels, counts)
    assert isinstance(loss, torch.Tensor) and loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", registry.names("backbones"))
def test_every_backbone_meets_the_contract(name):
    net = registry.create("backbones", name, in_channels=3, image_size=32, width=8, norm="batch")
    assert isinstance(net, torch.nn.Module) and isinstance(net.out_dim, int)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, net.out_dim)


@pytest.mark.parametrize("name", registry.names("datasets"))
def test_every_dataset_meets_the_contract(name, tiny_study, tmp_path):
    from rcl_study.data import DataError
    from rcl_study.data.load import check_data_present

    data = {"dataset": name, "path": str(tmp_path / "x.npz"), "root": str(tmp_path)}
    cfg = tiny_study.parse(data=data).data
    if name != "digits_lt" and registry.source("datasets", name) == "builtin":
        with pytest.raises(DataError):  # their files are not here: a DataError, not a crash
            check_data_present(cfg)
            registry.get("datasets", name)(cfg)
        return
    split = registry.get("datasets", name)(cfg)
    assert isinstance(split, Split)
    for x, y in ((split.train_x, split.train_y), (split.test_x, split.test_y)):
        assert isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 4
        assert x.shape[3] in (1, 3) and min(x.shape[1:3]) >= 8
        assert y.dtype == np.int64 and y.shape == (len(x),) and y.min() >= 0


def test_names_are_checked_with_a_suggestion(tiny_study):
    with pytest.raises(ConfigError, match=r"data.dataset: unknown dataset 'digit_lt'.*digits_lt"):
        tiny_study.parse(data={"dataset": "digit_lt"})
    with pytest.raises(ConfigError, match=r"model.arch: unknown backbone.*resnet32"):
        tiny_study.parse(model={"arch": "resnet33"})
    with pytest.raises(ConfigError, match=r"loss.classification: unknown loss"):
        tiny_study.parse(loss={"classification": "rcl_study.losses:cross_entropy"})


def test_a_study_file_cannot_name_an_import_path(tiny_study):
    with pytest.raises(ConfigError, match="unknown backbone"):
        tiny_study.parse(model={"arch": "os:system"})


def test_a_name_registers_once():
    with pytest.raises(registry.RegistryError, match="twice"):
        registry.register("backbones", "resnet32")(lambda **kw: None)


def test_parts_registered_in_this_process_train_a_trial(tiny_study):
    from rcl_study.trainer.loop import train_trial

    @registry.register("losses", "test_half_ce")
    def half_ce(logits, labels, class_counts, weight=0.5):
        return weight * torch.nn.functional.cross_entropy(logits.float(), labels)

    @registry.register("backbones", "test_linear")
    def linear(in_channels, image_size, width=8, norm="batch"):
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(width))
        net.out_dim = width
        return net

    try:
        cfg = tiny_study.parse(
            model={"arch": "test_linear"},
            loss={"classification": "test_half_ce", "classification_params": {"weight": 0.7}},
            train={"device": "cpu"},
        )
        result = train_trial(cfg)
        assert result.ok, result.reason
        assert result.loss_spec["classification"] == "test_half_ce"
    finally:
        registry.unregister("losses", "test_half_ce")
        registry.unregister("backbones", "test_linear")


def test_a_plugin_that_does_not_import_is_one_data_error(tiny_study, monkeypatch):
    from importlib.metadata import EntryPoint

    from rcl_study.data import DataError, load_data

    broken = EntryPoint("test_broken", "no_such_module_xyz:read", "rcl_study.datasets")
    plugins = registry._plugins()
    monkeypatch.setitem(plugins["datasets"], "test_broken", broken)
    cfg = tiny_study.parse(data={"dataset": "test_broken"}).data
    with pytest.raises(DataError, match=r"test_broken.*does not load.*no_such_module_xyz"):
        load_data(cfg)


@pytest.mark.parametrize("name", registry.names("contrastive"))
@pytest.mark.parametrize("with_prototypes", [False, True])
def test_every_contrastive_loss_meets_the_contract(name, with_prototypes):
    torch.manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(8, 4), dim=1).requires_grad_()
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0])
    counts = torch.tensor([30.0, 10.0, 3.0])
    protos = torch.nn.functional.normalize(torch.randn(3, 4), dim=1) if with_prototypes else None
    loss = registry.create(
        "contrastive",
        name,
        features,
        labels,
        counts,
        protos,
        temperature=0.1,
        scale=1.2,
        balance=1.0,
        margin=0.5,
        class_averaging=with_prototypes,
        scale_on="all",
    )
    assert isinstance(loss, torch.Tensor) and loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_a_registered_contrastive_loss_replaces_the_built_in_with_the_knobs(tiny_study):
    """The plugin gets the views, labels, counts, prototypes, every knob and its own params."""
    from rcl_study.losses import resolve_loss, total_loss

    seen: dict = {}

    @registry.register("contrastive", "test_constant")
    def constant(features, labels, class_counts, prototypes=None, **knobs):
        seen.update(knobs, prototypes=prototypes, n=len(features))
        return features.sum() * 0 + 2.5

    try:
        cfg = tiny_study.parse(
            loss={
                "preset": "bcl",
                "contrastive": "test_constant",
                "margin": 2.0,
                "contrastive_params": {"hardness": 0.3},
            },
        )
        spec = resolve_loss(cfg.loss, alpha=2.0, beta=0.6)
        torch.manual_seed(0)
        logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
        feats = torch.nn.functional.normalize(torch.randn(8, 5), dim=1)
        protos = torch.nn.functional.normalize(torch.randn(3, 5), dim=1)
        out = total_loss(spec, logits, labels, feats, labels.repeat(2), torch.ones(3), protos)
    finally:
        registry.unregister("contrastive", "test_constant")
    assert out["loss_con"].item() == 2.5
    assert out["loss"].item() == pytest.approx(2.0 * out["loss_cls"].item() + 0.6 * 2.5)
    assert seen["n"] == 8 and seen["prototypes"] is protos  # bcl: class-complement on
    assert (seen["temperature"], seen["balance"], seen["scale"], seen["margin"]) == (
        0.1,
        1.0,  # the tiny study's balance and scale, the margin set here
        1.5,
        2.0,
    )
    assert seen["class_averaging"] is True and seen["scale_on"] == "all"
    assert seen["hardness"] == 0.3


def test_the_built_in_contrastive_loss_by_name_equals_the_preset(tiny_study):
    from rcl_study.losses import resolve_loss, total_loss

    torch.manual_seed(1)
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    feats = torch.nn.functional.normalize(torch.randn(8, 5), dim=1)
    counts = torch.tensor([30.0, 10.0, 3.0])
    by_name = tiny_study.parse(loss={"contrastive": "rebalanced"}).loss
    plain = tiny_study.parse().loss
    a = total_loss(resolve_loss(by_name, 2.0, 0.6), logits, labels, feats, labels.repeat(2), counts)
    b = total_loss(resolve_loss(plain, 2.0, 0.6), logits, labels, feats, labels.repeat(2), counts)
    assert a["loss_con"].item() == b["loss_con"].item() > 0


@pytest.mark.parametrize(
    "loss, message",
    [
        (
            {"preset": "la", "contrastive": "rebalanced"},
            r"loss.contrastive: only read with a preset with a contrastive term",
        ),
        ({"preset": "ce", "contrastive": "rebalanced"}, r"loss.contrastive: only read with"),
        ({"contrastive_params": {"a": 1.0}}, r"loss.contrastive_params: only read with loss.con"),
        (
            {"contrastive": "rebalanced", "contrastive_params": {"a": float("nan")}},
            r"loss.contrastive_params",
        ),
        ({"contrastive": "rebalancd"}, r"unknown contrastive loss 'rebalancd'.*'rebalanced'"),
        ({"classification": "nope"}, r"loss.classification: unknown loss 'nope'"),
    ],
)
def test_contrastive_keys_are_honoured_or_refused(tiny_study, loss, message):
    with pytest.raises(ConfigError, match=message):
        tiny_study.parse(loss=loss)


def test_a_config_without_a_contrastive_plugin_hashes_as_before(tiny_study):
    from rcl_study.trials.records import config_hash

    raw = tiny_study.parse().model_dump(mode="json")
    without = {**raw, "loss": {k: v for k, v in raw["loss"].items() if "contrastive" not in k}}
    assert config_hash(raw) == config_hash(without)
    named = {**raw, "loss": {**raw["loss"], "contrastive": "rebalanced"}}
    assert config_hash(named) != config_hash(raw)
