from __future__ import annotations

import subprocess
import sys

import pytest

from reprolab.core.config import resolve_config
from reprolab.core.data import dataset_info
from reprolab.core.errors import ConfigError
from reprolab.core.registry import Experiment, Paper, get_experiment, list_experiments


def test_import_reprolab_is_light():
    code = "import sys, reprolab; print('torch' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"


def test_listing_methods_does_not_import_field_libraries():
    code = (
        "import sys; from reprolab.core.registry import list_experiments; list_experiments(); "
        "print(sorted(m for m in ('torch_geometric', 'pykeen', 'transformers', 'skimage') if m in sys.modules))"
    )
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "[]"


def test_every_method_has_quick_and_paper_presets_and_claims():
    experiments = list_experiments()
    assert "demi" in {e.name for e in experiments}
    for experiment in experiments:
        assert {"quick", "paper"} <= set(experiment.presets)
        assert experiment.claims, f"{experiment.name} states no claims"
        experiment.describe()  # JSON-friendly


@pytest.mark.parametrize("experiment", list_experiments(), ids=lambda e: e.name)
def test_every_preset_resolves_to_a_valid_config(experiment: Experiment):
    # A preset that fails its own validation would only surface when a user starts a long run.
    for preset in experiment.presets:
        resolve_config(experiment.config_cls, experiment.presets, preset)


def test_experiment_datasets_join_the_dataset_registry():
    get_experiment("demi")
    assert dataset_info("sklearn-digits").embedded


def test_unknown_method_lists_registered_ones():
    with pytest.raises(ConfigError, match="registered methods: .*demi"):
        get_experiment("nope")


def test_an_experiment_without_paper_preset_is_refused():
    with pytest.raises(ValueError, match="'paper' preset"):
        Experiment(
            name="x",
            paper=Paper("t", "a", "v", 2020),
            description="",
            config_cls=dict,
            presets={"quick": {}},
            run=lambda config, ctx: {},
        )


def test_paper_metrics_may_depend_on_the_config():
    """A function of the resolved config gives each setting only the paper numbers stated for it."""
    common = {"paper": Paper("t", "a", "v", 2020), "description": "", "config_cls": dict,
              "presets": {"quick": {}, "paper": {}}, "run": lambda config, ctx: {}}  # fmt: skip
    fixed = Experiment(name="x", paper_metrics={"acc": 0.9}, **common)
    assert fixed.paper_metrics_for({"k": 5}) == {"acc": 0.9} and fixed.paper_sources_for({"acc": 0.9}) == {}
    by_k = Experiment(
        name="y",
        paper_metrics=lambda config: {"acc": 0.9} if config["k"] == 4 else {},
        paper_sources={"acc": "recalled"},
        **common,
    )
    assert by_k.paper_metrics_for({"k": 4}) == {"acc": 0.9} and by_k.paper_metrics_for({"k": 5}) == {}
    assert by_k.paper_sources_for({"acc": 0.9}) == {"acc": "recalled"}
    with pytest.raises(ValueError, match="paper_sources"):
        Experiment(name="z", paper_sources={"acc": "guessed"}, **common)
