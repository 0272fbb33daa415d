"""Shared test fixtures: quiet, single-threaded, offline, and a skip-when-absent real-data fixture."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Must be set before matplotlib / HF / pykeen are imported anywhere in the test session.
_TMP = Path(tempfile.mkdtemp(prefix="reprolab-tests-"))
os.environ.setdefault("MPLCONFIGDIR", str(_TMP / "mpl"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYSTOW_HOME", str(_TMP / "pystow"))
os.environ["REPROLAB_CACHE"] = str(_TMP / "cache")
os.environ["REPROLAB_PROGRESS"] = "0"

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def real_data():
    """Return a function ``real_data("TUDataset/ENZYMES")`` -> Path, skipping when the folder is absent."""

    def locate(relative: str) -> Path:
        home = os.environ.get("REPROLAB_DATA")
        if not home:
            pytest.skip("REPROLAB_DATA is not set; real-data test skipped")
        path = Path(home) / relative
        if not path.exists():
            pytest.skip(f"{path} not present; real-data test skipped")
        return path

    return locate


@pytest.fixture
def run_context(tmp_path):
    """Return a function ``run_context(method="demo")`` -> a CPU :class:`RunContext` writing under ``tmp_path``,
    for tests that drive a ``Sweep`` without going through the runner."""
    from reprolab.core.runs import RunContext

    def make(method: str = "demo") -> RunContext:
        ctx = RunContext(tmp_path / "run", method, "quick", 0, torch.device("cpu"), tmp_path, "test")
        ctx.metrics_path.write_text("")
        return ctx

    return make


@pytest.fixture
def saved_demi_estimate():
    """Return ``estimate(run, name, unit, true_mi)``: the saved DEMI estimator ``name`` of a finished demi run,
    rebuilt by ``load_run`` and evaluated on the run's own evaluation batches (``eval_batches``, the seed of
    ``unit``), to be compared with the run's metric."""
    from reprolab.core.seeding import derive_seed, torch_generator
    from reprolab.demi.data import CorrelatedGaussian
    from reprolab.demi.train import evaluate_estimator

    def estimate(run, name: str, unit: str, true_mi: float) -> float:
        config = run.config
        return evaluate_estimator(
            run.model(name),
            CorrelatedGaussian(config["dim"], true_mi),
            batch_size=config["batch_size"],
            batches=config["eval_batches"],
            generator=torch_generator(derive_seed(run.results["seed"], unit, "eval")),
            device=torch.device("cpu"),
        ).mean

    return estimate

