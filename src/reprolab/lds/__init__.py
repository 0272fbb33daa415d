"""LDS: Learning Discrete Structures for Graph Neural Networks (Franceschi et al., ICML 2019).

Public API::

    from reprolab.lds import EdgeDistribution, train_lds, LDSSettings, load_uci, read_planetoid, knn_graph
"""

from reprolab.lds.data import GraphData, knn_graph, load_uci, read_planetoid, remove_edges
from reprolab.lds.model import (
    DifferentiableAdam,
    EdgeDistribution,
    GCNParams,
    LearnedRate,
    gcn_forward,
    init_gcn,
    normalize_adjacency,
)
from reprolab.lds.train import (
    GCNSettings,
    LDSModel,
    LDSResult,
    LDSSettings,
    hypergradient,
    logistic_regression,
    mean_prediction,
    train_gcn,
    train_lds,
    train_mlp,
)

__all__ = [
    "DifferentiableAdam",
    "LearnedRate",
    "EdgeDistribution",
    "GCNParams",
    "GCNSettings",
    "GraphData",
    "LDSModel",
    "LDSResult",
    "LDSSettings",
    "gcn_forward",
    "hypergradient",
    "init_gcn",
    "knn_graph",
    "load_uci",
    "logistic_regression",
    "mean_prediction",
    "normalize_adjacency",
    "read_planetoid",
    "remove_edges",
    "train_gcn",
    "train_lds",
    "train_mlp",
]
