from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from reprolab.core.config import apply_overrides, config_to_dict, parse_set_options, resolve_config
from reprolab.core.errors import ConfigError


@dataclass
class ToyConfig:
    steps: int = 10
    lr: float = 1e-3
    name: str = "a"
    flag: bool = False
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    pair: tuple[float, float] = (0.5, 1.5)
    limit: int | None = None

    def validate(self) -> None:
        if self.steps < 0:
            raise ConfigError("steps must be >= 0")


PRESETS = {"quick": {}, "paper": {"steps": 1000, "lr": 1e-4}}


def test_set_options_parse_with_yaml_scalars():
    assert parse_set_options(["steps=5", "lr=1e-4", "sizes=[3,4]", "flag=true", "name=xyz"]) == {
        "steps": 5,
        "lr": 1e-4,
        "sizes": [3, 4],
        "flag": True,
        "name": "xyz",
    }


def test_set_option_without_equals_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_options(["steps"])


def test_preset_then_overrides_apply_in_order():
    config = resolve_config(ToyConfig, PRESETS, "paper", {"lr": 0.5})
    assert config.steps == 1000 and config.lr == 0.5


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) stepz; valid keys: flag, limit, lr, name, pair"):
        apply_overrides(ToyConfig(), {"stepz": 3})


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="valid presets: paper, quick"):
        resolve_config(ToyConfig, PRESETS, "huge")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("steps", "ten", "steps: expected an integer"),
        ("steps", 1.5, "steps: expected an integer"),
        ("flag", 3, "flag: expected true/false"),
        ("sizes", ["a"], r"sizes\[0\]: expected an integer"),
        ("pair", [1.0], "pair: expected 2 items"),
        ("lr", "fast", "lr: expected a number"),
    ],
)
def test_wrong_types_are_refused_with_field_name(key, value, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(ToyConfig(), {key: value})


def test_coercions_int_to_float_scalar_to_list_and_optional():
    config = apply_overrides(ToyConfig(), {"lr": 1, "sizes": 7, "pair": [1, 2], "limit": None})
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.sizes == [7]
    assert config.pair == (1.0, 2.0)
    assert apply_overrides(ToyConfig(), {"limit": 4}).limit == 4


def test_validate_hook_runs_after_overrides():
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        apply_overrides(ToyConfig(), {"steps": -1})


def test_config_to_dict_is_plain():
    assert config_to_dict(ToyConfig())["pair"] == [0.5, 1.5]
