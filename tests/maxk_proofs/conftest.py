from __future__ import annotations

import pytest
import torch

from reprolab.maxk_proofs import MaxKConfig, MaxKTransformer, train_model

SMALL = MaxKConfig(d_vocab=8, n_ctx=4, d_model=16, d_head=16)


@pytest.fixture(scope="session")
def trained_small() -> MaxKTransformer:
    """A Max-of-4 model over 8 tokens, trained briefly (about 1 s)."""
    model = MaxKTransformer(SMALL)
    model.reset_parameters(torch.Generator().manual_seed(0))
    train_model(model, steps=400, generator=torch.Generator().manual_seed(1))
    return model
