"""Probes of a frozen (mini) ViLT: how much label information its final text [CLS] state carries per missing case.

Used to check that the miniature can test the paper's mechanism
(docs/notes/missing_prompts.md#the-previous-increment-issue-8-audit-and-why): a classifier fitted to the frozen
[CLS] of *one* missing case shows whether the information is there at all; one classifier fitted to the
eta-mixture the methods train on shows whether a single readout (the head-only baseline) can serve all cases, i.e.
whether the dummy inputs (Sec. 3.1) move the representation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from reprolab.missing_prompts.data import PairData, apply_missing
from reprolab.missing_prompts.model import MISSING_CASES, PromptedVilt, classifier_head

__all__ = ["cls_features", "fit_probe", "probe_backbone"]


@torch.no_grad()
def cls_features(vilt: Any, data: PairData, missing_type: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Final normed text-[CLS] states (N, d) of the frozen ``vilt`` with the dummy inputs of ``missing_type``."""
    model = PromptedVilt(vilt, 1, prompt_type="none").eval()
    data = apply_missing(data, missing_type)
    out = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        hidden, _ = model.encode(data.input_ids[sl], data.text_mask[sl], data.pixel_values[sl], missing_type[sl])
        out.append(hidden[:, 0])
    return torch.cat(out)


def fit_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    kind: str = "mlp",
    steps: int = 300,
    lr: float = 3e-3,
    seed: int = 0,
) -> nn.Module:
    """A linear layer or the official head shape (``kind="mlp"``) fitted by full-batch Adam with cross-entropy."""
    if kind not in ("linear", "mlp"):
        raise ValueError(f"kind must be 'linear' or 'mlp', got {kind!r}")
    if features.dim() != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"need features (N, d) and labels (N,), got {tuple(features.shape)}, {tuple(labels.shape)}")
    n_classes = int(labels.max()) + 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = (
            nn.Linear(features.shape[1], n_classes)
            if kind == "linear"
            else classifier_head(features.shape[1], n_classes)
        )
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(head(features), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return head.eval()


@torch.no_grad()
def _accuracy(head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((head(features).argmax(-1) == labels).float().mean())


def probe_backbone(
    vilt: Any, train: PairData, test: PairData, train_mixture: torch.Tensor, *, kind: str = "mlp", steps: int = 300
) -> dict[str, float]:
    """Test accuracy (%) of probes on the frozen [CLS] of a single-label task, per missing case of the test set:
    ``per_case_<case>`` (probe fitted to that case only) and ``mixture_<case>`` (one probe fitted to the training
    pairs with the per-sample cases ``train_mixture``, as the methods are trained)."""
    if train.multi_label:
        raise ValueError("probe_backbone needs a single-label task")
    result = {}
    mixture_head = fit_probe(cls_features(vilt, train, train_mixture), train.labels, kind=kind, steps=steps)
    for code, case in enumerate(MISSING_CASES):
        case_train = torch.full((len(train),), code, dtype=torch.long)
        case_test = torch.full((len(test),), code, dtype=torch.long)
        test_features = cls_features(vilt, test, case_test)
        head = fit_probe(cls_features(vilt, train, case_train), train.labels, kind=kind, steps=steps)
        result[f"per_case_{case}"] = _accuracy(head, test_features, test.labels)
        result[f"mixture_{case}"] = _accuracy(mixture_head, test_features, test.labels)
    return result
