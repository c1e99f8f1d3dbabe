"""Configs: YAML in one place, unknown keys named with a suggestion, base files and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdx.config import load_config
from mmdx.errors import ConfigError
from mmdx.models.factory import check_model_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_is_valid(path: Path) -> None:
    config = load_config(path)
    check_model_config(config.model)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.fusion.hiden_dim=3"], "model.fusion.hiden_dim: unknown key; did you mean 'dim'?"),
        (["model.image.name=smal_cnn"], "did you mean 'small_cnn'?"),
        (["model.image.name=ft_transformer"], "reads tabular input"),
        (["model.fusion.name=gated_atention"], "did you mean 'gated_attention'?"),
        (["model.text.vocab_size=10"], "set from the data"),
    ],
)
def test_component_typos_fail_with_their_path(overrides: list[str], message: str) -> None:
    demo = CONFIGS[[p.name for p in CONFIGS].index("demo.yaml")]
    with pytest.raises(ConfigError) as info:
        check_model_config(load_config(demo, overrides).model)
    assert message in str(info.value)


def test_switching_a_component_drops_the_base_arguments(tmp_path: Path) -> None:
    (tmp_path / "gpu.yaml").write_text(
        f"base: {CONFIGS[[p.name for p in CONFIGS].index('demo.yaml')]}\nmodel: {{image: {{name: resnet18}}}}\n"
    )
    config = load_config(tmp_path / "gpu.yaml")
    assert config.model.image.params == {}


def test_an_override_that_switches_a_component_drops_its_arguments_but_keeps_later_ones() -> None:
    demo = CONFIGS[[p.name for p in CONFIGS].index("demo.yaml")]
    assert load_config(demo).model.tabular.params == {"group_lasso": 0.03}  # the linear encoder's argument
    switched = load_config(demo, ["model.tabular.name=ft_transformer"]).model.tabular
    assert switched.name == "ft_transformer" and switched.params == {}
    check_model_config(load_config(demo, ["model.tabular.name=ft_transformer"]).model)
    given = load_config(demo, ["model.tabular.dim=32", "model.tabular.name=mlp", "model.tabular.depth=1"])
    assert given.model.tabular.params == {"dim": 32, "depth": 1}  # set in this call: kept
    same = load_config(demo, ["model.tabular.name=linear"]).model.tabular
    assert same.params == {"group_lasso": 0.03}  # the same name: nothing dropped
    assert load_config(demo, ["name=renamed"]).model.tabular.params == {"group_lasso": 0.03}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epoch=3"], "train.epoch: unknown key; did you mean 'epochs'?"),
        (["data.imge.dims=3"], "data.imge: unknown key; did you mean 'image'?"),
        (["train.lr=-1"], "train.lr"),
        (["data.image.dims=3", "data.image.shape=[32, 32]"], "shape [32, 32] has 2 axes but dims is 3"),
        (["data.image.dims=4"], "data.image.dims"),
        (["data.image.spacing=[1.0, -2.0]"], "spacing [1.0, -2.0]"),
        (["data.image.intensity=hu"], "data.image.intensity"),
        (
            ["model.image=null", "model.tabular=null", "model.text=null"],
            "at least one of image, tabular, text",
        ),
        (["train"], "must look like key.path=value"),
        (["train.epochs=[1"], "not valid YAML"),
    ],
)
def test_bad_configs_are_explained(overrides: list[str], message: str | None) -> None:
    demo = CONFIGS[[p.name for p in CONFIGS].index("demo.yaml")]
    with pytest.raises(ConfigError) as info:
        load_config(demo, overrides)
    assert message in str(info.value)


def test_base_files_merge_recursively(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "name: a\nmodel: {image: {name: small_cnn, out_dim: 8}}\ntrain: {epochs: 4}\n"
    )
    (tmp_path / "child.yaml").write_text("base: base.yaml\nname: b\nmodel: {image: {out_dim: 16}}\n")
    config = load_config(tmp_path / "child.yaml", ["train.lr=0.01"])
    assert (config.name, config.train.epochs, config.train.lr) == ("b", 4, 0.01)
    assert config.model.image.name == "small_cnn" and config.model.image.params == {"out_dim": 16}
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "loop.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
