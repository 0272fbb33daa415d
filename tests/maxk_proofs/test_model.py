from __future__ import annotations

import pytest
import torch

from reprolab.core.errors import DataError
from reprolab.maxk_proofs import MaxKConfig, MaxKTransformer, load_state_dict_file, save_state_dict_file


def _model(seed: int = 0, **kwargs: int) -> MaxKTransformer:
    model = MaxKTransformer(MaxKConfig(**kwargs))
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


def test_default_shapes_match_the_paper():
    model = _model()
    assert model.W_E.shape == (64, 32) and model.W_pos.shape == (4, 32)
    assert model.W_Q.shape == (1, 32, 32) and model.W_O.shape == (1, 32, 32) and model.W_U.shape == (32, 64)
    assert model(torch.randint(0, 64, (5, 4))).shape == (5, 64)


def test_forward_equals_path_decomposition():
    model = _model(d_vocab=7, n_ctx=3, d_model=8, d_head=6, d_vocab_out=9).double()
    tokens = torch.randint(0, 7, (50, 3))
    paths = model.path_products()
    q = tokens[:, -1]
    scores = paths.EQKE[q[:, None], tokens] + paths.EQKP[q][:, :3]
    attn = scores.softmax(dim=1)
    logits = paths.EU[q] + (attn[:, :, None] * (paths.EVOU[tokens] + paths.PVOU[None])).sum(1)
    torch.testing.assert_close(model(tokens), logits)


def test_gradients_reach_every_weight():
    model = _model(d_vocab=6, n_ctx=3, d_model=8, d_head=8)
    model(torch.randint(0, 6, (16, 3))).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bad_token_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        _model(d_vocab=6, n_ctx=3, d_model=8, d_head=8)(torch.zeros(2, 4, dtype=torch.long))


def test_transformer_lens_state_dict_round_trip(tmp_path):
    model = _model(d_vocab=10, n_ctx=5, d_model=12, d_head=4)
    path = save_state_dict_file(model, tmp_path / "m.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["blocks.0.attn.W_Q"].shape == (1, 12, 4) and state["unembed.W_U"].shape == (12, 10)
    assert state["embed.W_E"].shape == (10, 12) and state["pos_embed.W_pos"].shape == (5, 12)
    loaded = load_state_dict_file(path)
    tokens = torch.randint(0, 10, (8, 5))
    torch.testing.assert_close(loaded(tokens), model(tokens))


# The state_dict keys of TransformerLens's HookedTransformer for a 1-layer attention-only model without
# LayerNorm (attn_only=True, normalization_type=None): parameters, then the attention buffers.
TRANSFORMER_LENS_KEYS = {
    "embed.W_E", "pos_embed.W_pos", "blocks.0.attn.W_Q", "blocks.0.attn.W_K", "blocks.0.attn.W_V",
    "blocks.0.attn.W_O", "blocks.0.attn.b_Q", "blocks.0.attn.b_K", "blocks.0.attn.b_V", "blocks.0.attn.b_O",
    "blocks.0.attn.mask", "blocks.0.attn.IGNORE", "unembed.W_U", "unembed.b_U",
}  # fmt: skip


def test_export_has_every_key_a_strict_transformer_lens_load_expects():
    state = _model(d_vocab=6, n_ctx=3, d_model=8, d_head=8).to_transformer_lens_state_dict()
    assert set(state) == TRANSFORMER_LENS_KEYS
    assert state["blocks.0.attn.mask"].dtype == torch.bool and state["blocks.0.attn.mask"].shape == (3, 3)
    assert torch.equal(state["blocks.0.attn.mask"], torch.tril(torch.ones(3, 3, dtype=torch.bool)))


def test_a_non_causal_mask_is_refused(tmp_path):
    state = _model(d_vocab=6, n_ctx=3, d_model=8, d_head=8).to_transformer_lens_state_dict()
    state["blocks.0.attn.mask"] = torch.ones(3, 3, dtype=torch.bool)
    torch.save(state, tmp_path / "bidirectional.pt")
    with pytest.raises(DataError, match=r"bidirectional\.pt.*causal"):
        load_state_dict_file(tmp_path / "bidirectional.pt")


def test_loading_refuses_nonzero_bias_missing_key_and_garbage(tmp_path):
    state = _model(d_vocab=6, n_ctx=3, d_model=8, d_head=8).to_transformer_lens_state_dict()
    state["blocks.0.attn.b_Q"] += 1.0
    torch.save(state, tmp_path / "bias.pt")
    with pytest.raises(DataError, match=r"bias\.pt.*b_Q"):
        load_state_dict_file(tmp_path / "bias.pt")
    del state["unembed.W_U"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(DataError, match=r"missing\.pt.*unembed\.W_U"):
        load_state_dict_file(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint\n")
    with pytest.raises(DataError, match=r"junk\.pt"):
        load_state_dict_file(tmp_path / "junk.pt")
