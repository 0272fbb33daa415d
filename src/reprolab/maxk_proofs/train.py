"""Data and training for Max-of-K (paper Section 2 and Appendix B).

Inputs are uniformly random sequences of ``n_ctx`` tokens; the label is the largest token. Training uses
AdamW (lr 1e-3, betas 0.9/0.999), batch 128, 3000 steps and cross-entropy at the last position. The official
``MAX_OF_4_CONFIG`` sets ``use_log1p=True``: the log-softmax is computed as ``x - max - log1p(sum of the other
exponentials)``, which keeps the loss of a confident model precise (torch's log_softmax bottoms out near 1e-7 in
float32), so training keeps sharpening the margins once accuracy is near 1. :func:`log_softmax_log1p` is our
implementation of that formula.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from reprolab.core.sweep import Sweep
from reprolab.maxk_proofs.model import MaxKConfig, MaxKTransformer

__all__ = ["log_softmax_log1p", "random_sequences", "sample_accuracy", "train_model"]


def log_softmax_log1p(x: Tensor, dim: int = -1) -> Tensor:
    """``log_softmax(x)`` as ``(x - max) - log1p(sum_{j != argmax} exp(x_j - max))`` (the official use_log1p).

    The argmax term ``exp(0) = 1`` is taken out of the sum and added back through ``log1p``, so a sum of tiny
    exponentials is not lost against 1. Rows whose maximum is infinite fall back to torch's log_softmax.
    """
    top = x.argmax(dim=dim, keepdim=True)
    peak = x.gather(dim, top)
    finite = peak.isfinite()
    shifted = x - torch.where(finite, peak, torch.zeros_like(peak))
    others = shifted.exp().scatter(dim, top, 0.0)
    out = shifted - torch.log1p(others.sum(dim=dim, keepdim=True))
    return torch.where(finite, out, F.log_softmax(x, dim=dim))


def random_sequences(batch: int, config: MaxKConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Uniform sequences [batch, n_ctx] and their labels (the maximum token)."""
    tokens = torch.randint(0, config.d_vocab, (batch, config.n_ctx), generator=generator)
    return tokens, tokens.max(dim=1).values


def train_model(
    model: MaxKTransformer,
    *,
    steps: int,
    generator: torch.Generator,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    sweep: Sweep | None = None,
    unit: str = "train",
    log_every: int = 0,
    checkpoint_every: int = 0,
    use_log1p: bool = False,
) -> MaxKTransformer:
    """Train ``model`` in place; resumable through ``sweep`` when given (same data stream after a resume).

    ``use_log1p``: the loss uses :func:`log_softmax_log1p` (the official configs) instead of torch's."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay, foreach=True
    )

    def step_fn(step: int) -> dict[str, float]:
        tokens, labels = random_sequences(batch_size, model.config, generator)
        device = model.W_E.device
        logits = model(tokens.to(device))
        if use_log1p:
            loss = -log_softmax_log1p(logits).gather(1, labels.to(device)[:, None]).mean()
        else:
            loss = F.cross_entropy(logits, labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}

    if sweep is not None:
        sweep.train(
            unit,
            steps=steps,
            step_fn=step_fn,
            model=model,
            optimizer=optimizer,
            generator=generator,
            log_every=log_every,
            checkpoint_every=checkpoint_every,
        )
    else:
        for step in range(steps):
            step_fn(step)
    return model


@torch.no_grad()
def sample_accuracy(model: MaxKTransformer, n: int, generator: torch.Generator) -> float:
    """Accuracy on ``n`` uniformly random sequences (float64 forward; a tie counts as wrong)."""
    tokens, labels = random_sequences(n, model.config, generator)
    logits = model.double()(tokens)
    model.float()
    top = logits.max(dim=1).values
    correct = (logits.gather(1, labels[:, None])[:, 0] == top) & ((logits == top[:, None]).sum(1) == 1)
    return float(correct.double().mean())
