"""Objectives, training loops and metrics for missing-aware prompting.

* Backbone pretraining on complete pairs (stand-in for ViLT's MLM+ITM pretraining, no task labels): image-text
  matching on the pooled [CLS] (random or hard negatives) and masked language modelling of a code word.
* Prompt learning / baselines (paper Sec. 4.1): cross-entropy (single-label) or binary cross-entropy (multi-label)
  on the task head; AdamW with 10% linear warm-up then linear decay (official ``set_schedule``).
* Metrics: accuracy (Food-101), F1-Macro at threshold 0.5 (MM-IMDb), AUROC (Hateful Memes), all in percent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from reprolab.missing_prompts.data import MASK, GlyphWordWorld, PairData, apply_missing
from reprolab.missing_prompts.model import COMPLETE, IMAGE_MISSING, TEXT_MISSING, PromptedVilt

__all__ = [
    "accuracy",
    "auroc",
    "evaluate",
    "f1_macro",
    "make_optimizer",
    "predict",
    "predict_per_case",
    "pretrain_backbone",
    "table_logits",
    "table_metric",
    "task_loss",
    "warmup_linear_schedule",
]


def warmup_linear_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: float = 0.1) -> Any:
    """Linear warm-up for ``warmup * steps`` steps, then linear decay to 0 (ViLT's polynomial decay, power 1)."""
    warm = max(1, int(round(warmup * steps)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW as the official ``vilt_utils.set_schedule``: betas (0.9, 0.98), eps 1e-8, weight decay on every
    trainable parameter except biases and the backbone's LayerNorm weights. The official exclusion list matches
    parameter *names* (``bias``, ``LayerNorm.weight``, ``norm1.weight``, ...), so the prompts
    (``complete_prompt``, ...) and the head's LayerNorm (``<task>_classifier.1.weight``) are decayed; so they are
    here (``prompts.prompts``, ``head.1.weight``)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        backbone_norm = name.startswith("vilt.") and ("layernorm" in name.lower())
        (no_decay if name.endswith("bias") or backbone_norm else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.98), eps=1e-8, foreach=True)


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for (N,) class labels, binary cross-entropy for (N, C) multi-hot labels."""
    if labels.dim() == 2:
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.cross_entropy(logits, labels)


def pretrain_backbone(
    vilt: Any,
    world: GlyphWordWorld,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    pool_size: int,
    generator: torch.Generator,
    negatives: str = "random",
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Pretrain ``vilt`` on complete pairs with ViLT's two objectives (Kim et al. 2021, Sec. 3.2):

    * image-text matching (ITM): with probability 1/2 the text is replaced by a non-matching one; a linear head
      on the pooled [CLS] output predicts whether image and text show the same code set. ``negatives="random"``:
      another pair's text (ViLT's sampling); ``"hard"``: the same text with one code word replaced by a code
      that is not in the image, so that ITM must be decided word by word (does every word have its glyph?).
      Hard negatives with 24 codes gave a backbone that sees both modalities far better than random negatives
      (probes in docs/notes/missing_prompts.md#the-embedded-data-and-backbone); no task label is used;
    * masked language modelling (MLM): one code word of every matched text is replaced by ``[MASK]`` and predicted
      from its output token (it can only be recovered from the image, since the glyph shows it).
    """
    device = next(vilt.parameters()).device
    data, codes = world.pretraining_pool(pool_size, generator)
    hidden = vilt.config.hidden_size
    heads = nn.ModuleDict({"itm": nn.Linear(hidden, 2), "mlm": nn.Linear(hidden, world.vocab_size)}).to(device)
    model = PromptedVilt(vilt, 1, prompt_type="none")
    params = list(vilt.parameters()) + list(heads.parameters())
    # foreach: the same per-tensor update in one call per step (on CPU the default loops tensor by tensor in Python)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, foreach=True)
    schedule = warmup_linear_schedule(optimizer, steps)
    no_missing = torch.full((batch_size,), COMPLETE, dtype=torch.long, device=device)
    rows = torch.arange(batch_size)
    losses = []
    vilt.train()
    if negatives not in ("random", "hard"):
        raise ValueError(f"negatives must be 'random' or 'hard', got {negatives!r}")
    for step in range(steps):
        idx = torch.randint(0, pool_size, (batch_size,), generator=generator)
        swap = torch.rand(batch_size, generator=generator) < 0.5
        if negatives == "hard":
            ids, text_mask = _hard_negatives(world, data, codes, idx, swap, generator)
            matched = ~swap
        else:
            text_idx = torch.where(swap, torch.randint(0, pool_size, (batch_size,), generator=generator), idx)
            matched = (codes[idx] == codes[text_idx]).all(1)
            ids, text_mask = data.input_ids[text_idx].clone(), data.text_mask[text_idx]
        candidates = world.is_code_word(ids).float() + 1e-6 * text_mask
        position = torch.multinomial(candidates, 1, generator=generator).squeeze(1)
        target = ids[rows, position].clone()
        ids[rows, position] = MASK
        h, cls_pos = model.encode(ids.to(device), text_mask.to(device), data.pixel_values[idx].to(device), no_missing)
        itm = F.cross_entropy(heads["itm"](vilt.pooler(h[:, cls_pos:])), matched.long().to(device))
        token_out = h[rows.to(device), cls_pos + position.to(device)]
        mlm = F.cross_entropy(heads["mlm"](token_out)[matched], target[matched].to(device)) if matched.any() else 0.0
        loss = itm + mlm
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if log is not None and (step + 1) % 100 == 0:
            log(step + 1, sum(losses[-100:]) / 100)
    vilt.eval()
    return losses


def _hard_negatives(
    world: GlyphWordWorld,
    data: PairData,
    codes: torch.Tensor,
    idx: torch.Tensor,
    swap: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts of the pairs ``idx``; where ``swap``, one code word is replaced by a code absent from the pair."""
    ids, text_mask = data.input_ids[idx].clone(), data.text_mask[idx]
    rows = torch.arange(len(idx))
    position = torch.multinomial(world.is_code_word(ids).float() + 1e-6 * text_mask, 1, generator=generator)
    absent = torch.multinomial(1.0 - codes[idx] + 1e-9, 1, generator=generator).squeeze(1)
    new_ids = torch.tensor([world.code_word(int(j)) for j in absent], dtype=ids.dtype)
    ids[rows[swap], position.squeeze(1)[swap]] = new_ids[swap]
    return ids, text_mask


@torch.no_grad()
def predict(
    model: PromptedVilt,
    data: PairData,
    missing_type: torch.Tensor,
    batch_size: int = 256,
    encoded: dict[int, tuple[torch.Tensor, int]] | None = None,
) -> torch.Tensor:
    """Logits (N, C) for ``data`` (dummy inputs already applied) with per-sample ``missing_type``.

    ``encoded``: a store of :meth:`PromptedVilt.encode` outputs per batch, filled on the first call and read on
    later ones, for models whose encoder (backbone and prompts) is the same and untrained, as the frozen backbone
    with the fixed prompts of the head-only baseline: their logits then cost the pooler and head only, and are
    the same numbers as a full forward pass (same batches, same operations)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        if encoded is not None and start in encoded:
            out.append(model.classify(*encoded[start]).cpu())
            continue
        args = (data.input_ids[sl], data.text_mask[sl], data.pixel_values[sl], missing_type[sl])
        hidden, cls_pos = model.encode(*(t.to(device) for t in args))
        if encoded is not None:
            encoded[start] = (hidden, cls_pos)
        out.append(model.classify(hidden, cls_pos).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * float((logits.argmax(-1) == labels).float().mean())


def f1_macro(logits: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> float:
    """F1-Macro in percent: per-label F1 of ``sigmoid(logits) > threshold``, averaged over labels (a label with
    no positives and no predictions counts F1 = 0, as sklearn's ``zero_division=0``)."""
    pred = (torch.sigmoid(logits) > threshold).float()
    tp = (pred * labels).sum(0)
    fp = (pred * (1 - labels)).sum(0)
    fn = ((1 - pred) * labels).sum(0)
    denom = 2 * tp + fp + fn
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1e-12), torch.zeros_like(tp))
    return 100.0 * float(f1.mean())


def auroc(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """AUROC in percent of the positive-class score (binary task; Mann-Whitney U with tied ranks averaged)."""
    score = logits[:, 1] - logits[:, 0] if logits.dim() == 2 and logits.shape[1] == 2 else logits.flatten()
    pos, neg = score[labels == 1], score[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    diff = pos[:, None] - neg[None, :]
    return 100.0 * float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def predict_per_case(
    model: PromptedVilt,
    data: PairData,
    batch_size: int = 256,
    cases: Sequence[int] = (COMPLETE, TEXT_MISSING, IMAGE_MISSING),
    encoded: dict[int, dict[int, tuple[torch.Tensor, int]]] | None = None,
) -> torch.Tensor:
    """Logits (3, N, C) of every sample under each missing case (complete, text missing, image missing), with
    the case's dummy inputs applied; any missing table's predictions are then ``table_logits(...)``.

    Only the ``cases`` are computed (the logits of the others are NaN): tables of one missing type never pick
    the other type's case. ``encoded``: per case, the store of encoder outputs of :func:`predict`."""
    n = len(data)
    out = []
    for case in (COMPLETE, TEXT_MISSING, IMAGE_MISSING):
        if case not in cases:
            out.append(None)
            continue
        table = torch.full((n,), case, dtype=torch.long)
        store = None if encoded is None else encoded.setdefault(case, {})
        out.append(predict(model, apply_missing(data, table), table, batch_size, store))
    shape = next(t for t in out if t is not None).shape
    return torch.stack([torch.full(shape, math.nan) if t is None else t for t in out])


def table_logits(case_logits: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Pick each sample's logits for its missing case: ``case_logits[table[i], i]``."""
    if case_logits.dim() < 2 or table.shape != case_logits.shape[1:2]:
        raise ValueError(f"table of shape {tuple(table.shape)} does not fit logits {tuple(case_logits.shape)}")
    return case_logits[table, torch.arange(len(table))]


def table_metric(case_logits: torch.Tensor, table: torch.Tensor, labels: torch.Tensor, metric: str) -> float:
    """The ``metric`` of the test set under one missing ``table``, from per-case logits."""
    return METRICS[metric](table_logits(case_logits, table), labels)


def evaluate(model: PromptedVilt, data: PairData, missing_type: torch.Tensor, metric: str) -> float:
    """The ``metric`` of ``model`` on ``data`` (dummy inputs already applied) with per-sample ``missing_type``."""
    return METRICS[metric](predict(model, data, missing_type), data.labels)


METRICS: Mapping[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": accuracy,
    "f1_macro": f1_macro,
    "auroc": auroc,
}
