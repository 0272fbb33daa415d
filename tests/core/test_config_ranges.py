"""Numeric config fields declare their ranges; NaN, infinities, huge integers and out-of-range values are refused
by name before a run starts (issue: `--set lr=nan`, `hidden=-1`, `embed=0`, `true_mis=[.inf]`, `--seed 2**70`)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import bounded, parse_set_options, resolve_config
from reprolab.core.errors import ConfigError
from reprolab.core.registry import list_experiments


@dataclasses.dataclass
class _Config:
    lr: float = bounded(0.1, gt=0)
    rate: float = bounded(0.5, ge=0, le=1)
    sizes: list[int] = bounded(factory=lambda: [2, 3], ge=1)
    free: float = 1.0
    count: int = 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=nan", "lr: must be a finite number, got nan"),
        ("lr=.inf", "lr: must be a finite number, got inf"),
        ("lr=-1", "lr: must be > 0, got -1.0"),
        ("lr=0", "lr: must be > 0"),
        ("rate=1.5", "rate: must be <= 1, got 1.5"),
        ("sizes=[2,0]", r"sizes\[1\]: must be >= 1, got 0"),
        ("free=-.inf", "free: must be a finite number"),
        ("count=1e30", "count: .* is beyond the 64-bit integer range"),
    ],
)
def test_out_of_range_values_are_refused_by_name(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(_Config, {"quick": {}}, "quick", parse_set_options([override]))


def test_in_range_values_pass():
    config = resolve_config(_Config, {"quick": {}}, "quick", parse_set_options(["lr=1e-4", "rate=1", "free=-3"]))
    assert (config.lr, config.rate, config.free) == (1e-4, 1.0, -3.0)


def test_every_preset_of_every_method_is_in_range():
    for experiment in list_experiments():
        for preset in experiment.presets:
            resolve_config(experiment.config_cls, experiment.presets, preset)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "lr=nan"], "lr: must be a finite number"),
        (["--set", "lr=-1"], "lr: must be > 0"),
        (["--set", "hidden=-1"], "hidden: must be >= 1"),
        (["--set", "checkpoint_every=-5"], "checkpoint_every: must be >= 0"),
        (["--set", "embed=0"], "embed: must be >= 1"),
        (["--set", "true_mis=[.inf]"], r"true_mis\[0\]: must be a finite number"),
        (["--seed", str(2**70)], "--seed: must be an integer in"),
    ],
)
def test_cli_refuses_the_issue_examples_in_one_line(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "demi", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0])
    assert not out.exists()


def test_maxk_sizes_beyond_the_work_limit_are_refused_unless_raised():
    from reprolab.core.registry import get_experiment

    experiment = get_experiment("maxk_proofs")
    with pytest.raises(ConfigError, match="d_vocab\\^2\\*d_vocab_out = 27000000000 entries, beyond max_inputs"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"d_vocab": 3000, "n_ctx": 2})
    with pytest.raises(ConfigError, match="brute force over d_vocab\\*\\*n_ctx = 16\\*\\*12"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"d_vocab": 16, "n_ctx": 12})
    raised = {"d_vocab": 16, "n_ctx": 12, "max_inputs": 2**50}
    assert resolve_config(experiment.config_cls, experiment.presets, "quick", raised).n_ctx == 12
