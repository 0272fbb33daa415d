"""Data and training for Max-of-K (paper Section 2 and Appendix B).

Inputs are uniformly random sequences of ``n_ctx`` tokens; the label is the largest token. Training uses
AdamW (lr 1e-3, betas 0.9/0.999), batch 128, 3000 steps and cross-entropy at the last position.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from reprolab.core.sweep import Sweep
from reprolab.maxk_proofs.model import MaxKConfig, MaxKTransformer

__all__ = ["random_sequences", "sample_accuracy", "train_model"]


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
) -> MaxKTransformer:
    """Train ``model`` in place; resumable through ``sweep`` when given (same data stream after a resume)."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay, foreach=True
    )

    def step_fn(step: int) -> dict[str, float]:
        tokens, labels = random_sequences(batch_size, model.config, generator)
        device = model.W_E.device
        loss = F.cross_entropy(model(tokens.to(device)), labels.to(device))
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
