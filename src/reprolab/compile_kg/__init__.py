"""CoMPILE: Communicative Message Passing for Inductive Relation Reasoning (Mai et al., AAAI 2021),
with GraIL (Teru, Denis, Hamilton; ICML 2020) as its baseline.

Public API::

    from reprolab.compile_kg import CoMPILE, GraIL, SubgraphExtractor, load_grail_split, family_inductive_split
"""

from reprolab.compile_kg.data import (
    InductiveSplit,
    KnowledgeGraph,
    family_inductive_split,
    load_grail_split,
    read_triples,
    write_grail_split,
)
from reprolab.compile_kg.evaluate import full_ranking, realistic_rank, reversal_auc, sample_protocol, sampled_metrics
from reprolab.compile_kg.model import CoMPILE, GraIL, build_model, label_features
from reprolab.compile_kg.subgraph import PerTripleExtractor, SubgraphBatch, SubgraphExtractor
from reprolab.compile_kg.train import corrupt, margin_ranking_loss, score_triples, train_model

__all__ = [
    "CoMPILE",
    "GraIL",
    "InductiveSplit",
    "KnowledgeGraph",
    "PerTripleExtractor",
    "SubgraphBatch",
    "SubgraphExtractor",
    "build_model",
    "corrupt",
    "family_inductive_split",
    "full_ranking",
    "label_features",
    "load_grail_split",
    "margin_ranking_loss",
    "read_triples",
    "realistic_rank",
    "reversal_auc",
    "sample_protocol",
    "sampled_metrics",
    "score_triples",
    "train_model",
    "write_grail_split",
]
