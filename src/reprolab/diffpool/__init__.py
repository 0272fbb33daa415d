"""DiffPool (Ying et al., NeurIPS 2018): hierarchical graph classification with differentiable pooling.

Public API (importing it loads PyTorch Geometric)::

    from reprolab.diffpool import DiffPoolNet, GraphSAGEPool, read_tu_dataset, to_dense

The experiment registration lives in :mod:`reprolab.diffpool.experiment` and stays light to import.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DenseGraphs",
    "DiffPoolNet",
    "GraphSAGEPool",
    "GraphSet",
    "SAGEStack",
    "make_hierarchical_communities",
    "read_tu_dataset",
    "stratified_folds",
    "to_dense",
    "write_tu_dataset",
]

_MODULES = {
    "DenseGraphs": "data",
    "GraphSet": "data",
    "make_hierarchical_communities": "data",
    "read_tu_dataset": "data",
    "stratified_folds": "data",
    "to_dense": "data",
    "write_tu_dataset": "data",
    "DiffPoolNet": "model",
    "GraphSAGEPool": "model",
    "SAGEStack": "model",
}


def __getattr__(name: str) -> Any:
    """Load the public names lazily, so ``reprolab list`` never imports torch_geometric."""
    if name in _MODULES:
        import importlib

        return getattr(importlib.import_module(f"reprolab.diffpool.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'reprolab.diffpool' has no attribute {name!r}")
