"""reprolab: faithful, tested, CPU-reproducible implementations of eleven ML papers.

Importing :mod:`reprolab` is cheap: it loads no method and none of the heavy field libraries.
The public entry points are re-exported lazily::

    import reprolab
    results = reprolab.run_experiment("demi", preset="quick", seed=0, out="runs/x")
    run = reprolab.load_run("runs/x")          # config, metrics, claims, verdicts
    estimator = run.model("demi_k2-mi20")      # a saved trained model, weights loaded
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "combine_runs", "list_experiments", "load_run", "reproduce", "run_experiment"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import reprolab` stays light (no torch import until needed).
    if name in {"run_experiment", "reproduce"}:
        from reprolab.core import runner

        return getattr(runner, name)
    if name == "combine_runs":
        from reprolab.core.combine import combine_runs

        return combine_runs
    if name == "load_run":
        from reprolab.core.results import load_run

        return load_run
    if name == "list_experiments":
        from reprolab.core.registry import list_experiments

        return list_experiments
    raise AttributeError(f"module 'reprolab' has no attribute {name!r}")
