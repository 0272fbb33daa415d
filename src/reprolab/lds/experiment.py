"""Registration of the LDS experiment: kNN-LDS on scikit-learn tables and LDS on Cora with edges removed.

Kept light to import: torch and the training code load inside :func:`run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reprolab.core.claims import Claim
from reprolab.core.config import ConfigError, bounded
from reprolab.core.data import DatasetInfo
from reprolab.core.registry import Experiment, Paper, register

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["CORA", "EXPERIMENT", "LDSConfig", "PAPER_TABLE_ACCURACY"]

PAPER = Paper(
    title="Learning Discrete Structures for Graph Neural Networks",
    authors="Franceschi, Niepert, Pontil, He",
    venue="ICML 2019 (PMLR 97)",
    year=2019,
    url="https://arxiv.org/abs/1903.11960",
)

TABLES = ("wine", "cancer", "digits")
# kNN-LDS test accuracy (%) in the paper's Table 1 (recalled; see docs/lds.md).
PAPER_TABLE_ACCURACY = {"wine": 97.3, "cancer": 94.4, "digits": 92.5}
PAPER_CORA_LDS = 84.1

CORA = DatasetInfo(
    name="planetoid-cora",
    description="Cora citation graph, Planetoid split (2708 nodes, 5278 edges, 1433 features, 7 classes)",
    source="kimiyoung/planetoid data/ind.cora.* (same files as tkipf/gcn gcn/data/)",
    subdir="planetoid",
    required_files=tuple(f"ind.cora.{s}" for s in ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")),
    layout="planetoid/ind.cora.{x,y,tx,ty,allx,ally,graph,test.index} (Python-2 pickles + text index)",
    license="MIT (kimiyoung/planetoid); cite Yang et al. 2016",
)


@dataclass
class LDSConfig:
    """Settings of the LDS experiment (defaults = the quick preset)."""

    tables: list[str] = field(default_factory=lambda: list(TABLES))  # any of wine, cancer, digits
    seeds: int = bounded(2, ge=1)  # data splits / initialisations per table
    large_table_seeds: int = bounded(1, ge=1)  # seeds for tables with more than 1000 rows (digits): n^2 theta is costly
    knn_ks: list[int] = bounded(factory=lambda: [10], ge=1)  # paper grid: 10, 20
    knn_metrics: list[str] = field(default_factory=lambda: ["cosine"])  # paper grid: cosine, minkowski
    taus: list[int] = bounded(factory=lambda: [5], ge=1)  # kNN-LDS paper grid: 5, 16; LDS: 1, 5, 20
    outer_lrs: list[float] = bounded(factory=lambda: [0.1], gt=0)  # paper grid: 1.0, 0.1
    # Adam's starting rate; learned in [1e-4, 0.05] like theta (official code) ...
    inner_lr: float = bounded(0.02, gt=0)
    learn_inner_lr: bool = True  # ... unless this is false
    hidden: int = bounded(16, ge=1)
    dropout: float = bounded(0.5, ge=0, lt=1)
    l2_reg: float = bounded(5e-4, ge=0)
    n_sample: int = bounded(16, ge=1)
    patience: int = bounded(5, ge=1)  # paper: 20 outer iterations
    max_outer: int = bounded(12, ge=1)
    inner_max_steps: int = bounded(100, ge=1)  # paper: 400 per outer iteration
    inner_patience: int = bounded(20, ge=1)
    es_tiebreak_loss: bool = True  # official code: accuracy only (ties never accepted)
    gcn_epochs: int = bounded(200, ge=1)
    # tables on which to also run the control "LDS protocol with theta frozen at the kNN graph"
    frozen_control: list[str] = field(default_factory=lambda: ["wine", "cancer"])
    cora: bool = False  # needs $REPROLAB_DATA/planetoid
    cora_removal: list[float] = bounded(factory=lambda: [0.0, 0.5, 1.0], ge=0, le=1)  # fraction of edges removed
    cora_seeds: int = bounded(1, ge=1)

    def validate(self) -> None:
        for name in self.tables:
            if name not in TABLES:
                raise ConfigError(f"tables: unknown table {name!r}; valid: {', '.join(TABLES)}")
        for name in self.frozen_control:
            if name not in TABLES:
                raise ConfigError(f"frozen_control: unknown table {name!r}; valid: {', '.join(TABLES)}")
        if not self.tables and not self.cora:
            raise ConfigError("tables is empty and cora is false: nothing to run")
        if self.seeds < 1 or self.large_table_seeds < 0 or self.cora_seeds < 1:
            raise ConfigError("seeds and cora_seeds must be >= 1, large_table_seeds >= 0")
        for metric in self.knn_metrics:
            if metric not in ("cosine", "minkowski"):
                raise ConfigError(f"knn_metrics: {metric!r} is not cosine or minkowski")
        if not self.knn_ks or min(self.knn_ks) < 1:
            raise ConfigError("knn_ks: need at least one k >= 1")
        if not self.taus or min(self.taus) < 1:
            raise ConfigError("taus: need at least one truncation length >= 1")
        if not self.outer_lrs or min(self.outer_lrs) <= 0:
            raise ConfigError("outer_lrs: need at least one learning rate > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.n_sample < 1 or self.patience < 1 or self.max_outer < 1 or self.inner_max_steps < 1:
            raise ConfigError("n_sample, patience, max_outer and inner_max_steps must be >= 1")
        for fraction in self.cora_removal:
            if not 0.0 <= fraction <= 1.0:
                raise ConfigError(f"cora_removal: {fraction} is not a fraction in [0, 1]")


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    # The paper's protocol for the tables: 10 seeds, the full kNN-LDS grid, its stopping rules.
    "paper": {
        "seeds": 10,
        "large_table_seeds": 10,
        "knn_ks": [10, 20],
        "knn_metrics": ["cosine", "minkowski"],
        "taus": [5, 16],
        "outer_lrs": [1.0, 0.1],
        "patience": 20,
        "max_outer": 1000,
        "inner_max_steps": 400,
        "frozen_control": list(TABLES),
    },
    # Cora with 0/25/50/75/100% of the edges removed: LDS (initialised from the remaining graph) vs GCN.
    "cora": {
        "tables": [],
        "cora": True,
        "cora_removal": [0.0, 0.25, 0.5, 0.75, 1.0],
        "taus": [5],
        "outer_lrs": [1.0],
        "patience": 3,
        "max_outer": 6,
        "inner_max_steps": 100,
    },
}


def run(config: LDSConfig, ctx: RunContext) -> Mapping[str, float]:
    from reprolab.lds.pipeline import run_lds

    return run_lds(config, ctx)


def _table_claims() -> list[Claim]:
    claims = []
    for name in TABLES:
        claims.append(Claim.compare(
            f"knn_lds_beats_knn_gcn_{name}",
            f"{name}: kNN-LDS is more accurate than a GCN on the same kNN graph (mean test accuracy, %)",
            f"{name}_acc_lds", ">", f"{name}_acc_knn_gcn", paper=PAPER_TABLE_ACCURACY[name],
        ))
        claims.append(Claim.compare(
            f"knn_lds_beats_graph_free_{name}",
            f"{name}: kNN-LDS is more accurate than the best graph-free baseline (logistic regression, MLP)",
            f"{name}_acc_lds", ">", f"{name}_acc_graph_free_best", paper=PAPER_TABLE_ACCURACY[name],
        ))
    return claims


CLAIMS = (
    *_table_claims(),
    Claim.compare(
        "cora_lds_degrades_less_than_gcn",
        "Cora: removing edges costs LDS less accuracy than GCN (drop from 0% to the largest removal level)",
        "cora_drop_gcn_minus_drop_lds", ">", 0.0,
    ),
    Claim.compare(
        "cora_lds_beats_gcn_full_graph",
        "Cora, full graph: LDS is more accurate than GCN (paper: LDS 84.1%)",
        "cora_acc_lds_e0", ">", "cora_acc_gcn_e0", paper=PAPER_CORA_LDS,
    ),
)

EXPERIMENT = register(
    Experiment(
        name="lds",
        paper=PAPER,
        description="Learning discrete graph structure for GCNs by bilevel optimisation (kNN-LDS, LDS)",
        config_cls=LDSConfig,
        presets=PRESETS,
        run=run,
        claims=CLAIMS,
        paper_metrics={
            **{f"{name}_acc_lds": value for name, value in PAPER_TABLE_ACCURACY.items()},
            "cora_acc_lds_e0": PAPER_CORA_LDS,
        },
        datasets=(
            DatasetInfo(
                name="sklearn-wine-cancer-digits",
                description="Wine (178), Breast Cancer (569), Digits (1797) tables shipped with scikit-learn",
                source="sklearn.datasets.load_wine / load_breast_cancer / load_digits",
                subdir="",
                embedded=True,
            ),
            CORA,
        ),
        summary_metrics=(
            "wine_acc_lds", "wine_acc_knn_gcn", "wine_acc_graph_free_best",
            "cancer_acc_lds", "cancer_acc_knn_gcn", "cancer_acc_graph_free_best",
            "digits_acc_lds", "digits_acc_knn_gcn", "digits_acc_graph_free_best",
            "cora_acc_lds_e0", "cora_acc_gcn_e0", "cora_drop_gcn_minus_drop_lds",
        ),
    )
)
