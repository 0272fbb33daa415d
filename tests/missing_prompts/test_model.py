"""Unit tests of the missing-aware prompts model: prompt selection, masks, freezing, gradients, equivalences."""

from __future__ import annotations

import pytest
import torch

from reprolab.core.config import ConfigError
from reprolab.missing_prompts.model import (
    COMPLETE,
    IMAGE_MISSING,
    TEXT_MISSING,
    MissingAwarePrompts,
    PromptedVilt,
    build_mini_vilt,
    count_parameters,
    vilt_b32_trainable_fraction,
)


@pytest.fixture(scope="module")
def vilt():
    torch.manual_seed(0)
    return build_mini_vilt(20, image_size=8, patch_size=4, hidden=16, layers=3, heads=2, max_text_len=6).eval()


def _inputs(batch: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 20, (batch, 6), generator=g)
    ids[:, 0] = 1
    mask = torch.ones(batch, 6, dtype=torch.long)
    mask[0, 4:] = 0
    ids[0, 4:] = 0
    pixels = torch.randn(batch, 3, 8, 8, generator=g)
    return ids, mask, pixels


def test_prompt_selection_follows_per_sample_missing_type():
    prompts = MissingAwarePrompts(2, 4, 8, generator=torch.Generator().manual_seed(0))
    missing = torch.tensor([TEXT_MISSING, COMPLETE, IMAGE_MISSING, TEXT_MISSING])
    chosen = prompts(missing)
    assert chosen.shape == (4, 2, 4, 8)
    for i, m in enumerate(missing.tolist()):
        assert torch.equal(chosen[i], prompts.prompts[m])
    assert not torch.equal(prompts.prompts[0], prompts.prompts[1])


def test_prompt_selection_rejects_bad_codes():
    prompts = MissingAwarePrompts(1, 2, 4)
    with pytest.raises(ValueError, match="0..2"):
        prompts(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="long"):
        prompts(torch.tensor([0.0]))


def test_no_prompt_forward_matches_transformers_vilt(vilt):
    ids, mask, pixels = _inputs()
    model = PromptedVilt(vilt, 3, prompt_type="none")
    hidden, cls_pos = model.encode(ids, mask, pixels, torch.zeros(3, dtype=torch.long))
    reference = vilt(input_ids=ids, attention_mask=mask, pixel_values=pixels).pooler_output
    assert cls_pos == 0
    torch.testing.assert_close(vilt.pooler(hidden), reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prompt_type", ["input", "attention"])
def test_output_of_sample_depends_only_on_its_own_missing_case(vilt, prompt_type):
    ids, mask, pixels = _inputs()
    model = PromptedVilt(vilt, 3, prompt_type=prompt_type, prompt_layers=[0, 1], prompt_length=4,
                         generator=torch.Generator().manual_seed(1)).eval()  # fmt: skip
    a = model(ids, mask, pixels, torch.tensor([0, 1, 2]))
    b = model(ids, mask, pixels, torch.tensor([0, 2, 2]))
    torch.testing.assert_close(a[[0, 2]], b[[0, 2]])
    assert not torch.allclose(a[1], b[1])
    single = model(ids[1:2], mask[1:2], pixels[1:2], torch.tensor([1]))
    torch.testing.assert_close(single[0], a[1], atol=1e-5, rtol=1e-5)


def test_input_prompts_lengthen_sequence_and_mask_covers_them(vilt):
    ids, mask, pixels = _inputs()
    seen = []

    def hook(_module, args):
        seen.append((args[0].shape[1], args[1]))

    handles = [layer.register_forward_pre_hook(hook) for layer in vilt.encoder.layer]
    try:
        for mode, lengths in (("replace", [4 + 11, 4 + 11, 4 + 11]), ("accumulate", [4 + 11, 8 + 11, 8 + 11])):
            seen.clear()
            model = PromptedVilt(vilt, 3, prompt_type="input", prompt_layers=[0, 1], prompt_length=4, input_mode=mode)
            model(ids, mask, pixels, torch.zeros(3, dtype=torch.long))
            assert [s for s, _ in seen] == lengths
            for length, additive in seen:
                n_prompt = length - 11
                assert additive.shape == (3, 1, 1, length)
                assert torch.all(additive[..., :n_prompt] == 0)  # prompt tokens are attended to by every query
                assert torch.all(additive[0, ..., n_prompt + 4 : n_prompt + 6] < -1e30)  # padded text stays masked
    finally:
        for h in handles:
            h.remove()


def test_attention_prompts_are_prefix_keys_and_values(vilt):
    """Eq. 5 on one layer against attention written out by hand: softmax over [prompt keys; token keys], the
    value prompts weighted by their attention, padded keys masked, prompt keys never masked."""
    from reprolab.missing_prompts.model import _prefix_attention

    ids, mask, pixels = _inputs()
    model = PromptedVilt(vilt, 3, prompt_type="none")
    layer = vilt.encoder.layer[1]
    hidden, key_mask = model.embed(ids, mask, pixels)
    prompt = torch.randn(3, 4, 16, generator=torch.Generator().manual_seed(3))
    out = _prefix_attention(layer, hidden, key_mask.float(), prompt)
    att = layer.attention.attention
    x = layer.layernorm_before(hidden)
    q, k, v = att.query(x), torch.cat([prompt[:, :2], att.key(x)], 1), torch.cat([prompt[:, 2:], att.value(x)], 1)
    allowed = torch.cat([torch.ones(3, 2), key_mask.float()], 1).bool()
    heads = []
    for h in range(2):
        sl = slice(8 * h, 8 * (h + 1))
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / 8**0.5
        scores = scores.masked_fill(~allowed[:, None, :], float("-inf"))
        heads.append(scores.softmax(-1) @ v[..., sl])
    mid = layer.attention.output.dense(torch.cat(heads, -1)) + hidden
    expected = layer.output(layer.intermediate(layer.layernorm_after(mid)), mid)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert out.shape == hidden.shape  # the sequence length is unchanged


def test_freezing_keeps_backbone_unchanged_and_trains_prompts_pooler_head(vilt):
    import copy

    backbone = copy.deepcopy(vilt)
    model = PromptedVilt(backbone, 3, prompt_type="input", prompt_layers=[0], prompt_length=4).freeze_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids, mask, pixels = _inputs()
    for _ in range(2):
        loss = model(ids, mask, pixels, torch.tensor([0, 1, 2])).logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = backbone.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("pooler.") for k in changed)
    assert model.prompts.prompts.grad is not None and model.prompts.prompts.grad.abs().sum() > 0
    trainable = count_parameters(model, trainable_only=True)
    expected = model.prompts.prompts.numel() + count_parameters(backbone.pooler) + count_parameters(model.head)
    assert trainable == expected


def test_unused_missing_case_prompts_get_no_gradient(vilt):
    model = PromptedVilt(vilt, 3, prompt_type="attention", prompt_layers=[0, 2], prompt_length=4).freeze_backbone()
    ids, mask, pixels = _inputs()
    model(ids, mask, pixels, torch.tensor([1, 1, 1])).sum().backward()
    grad = model.prompts.prompts.grad
    assert grad[TEXT_MISSING].abs().sum() > 0
    assert grad[COMPLETE].abs().sum() == 0 and grad[IMAGE_MISSING].abs().sum() == 0
    for p in vilt.parameters():
        p.grad = None


def test_bad_model_settings_are_refused(vilt):
    with pytest.raises(ConfigError, match="prompt_type"):
        PromptedVilt(vilt, 2, prompt_type="deep")
    with pytest.raises(ConfigError, match="prompt_layers"):
        PromptedVilt(vilt, 2, prompt_layers=[5])
    with pytest.raises(ConfigError, match="input_mode"):
        PromptedVilt(vilt, 2, input_mode="stack")
    with pytest.raises(ConfigError, match="divisible"):
        build_mini_vilt(10, hidden=10, heads=4)


def test_vilt_b32_parameter_counts():
    counts = vilt_b32_trainable_fraction(23)
    assert counts["vilt_b32_params"] == 111_595_008  # ViltModel(ViltConfig()) incl. its pooler
    assert counts["vilt_b32_prompt_params"] == 3 * 6 * 16 * 768
    assert 0.0019 < counts["vilt_b32_prompt_fraction"] < 0.0020
    head = 768 * 1536 + 1536 + 2 * 1536 + 1536 * 23 + 23
    pooler = 768 * 768 + 768
    total = 111_595_008 + 3 * 6 * 16 * 768 + head
    assert counts["vilt_b32_trainable_fraction"] == pytest.approx((3 * 6 * 16 * 768 + pooler + head) / total)
    assert counts["vilt_b32_head_params"] == head == 1_219_607 and counts["vilt_b32_pooler_params"] == pooler
    assert counts["vilt_b32_prompt_pooler_fraction"] == pytest.approx((3 * 6 * 16 * 768 + pooler) / total)
    assert 0.0071 < counts["vilt_b32_prompt_pooler_fraction"] < 0.0072 < 0.0179 < counts["vilt_b32_trainable_fraction"]
    assert counts["vilt_b32_trainable_params"] == 3 * 6 * 16 * 768 + pooler + head == 2_031_383
    assert counts["vilt_b32_prompt_backbone_fraction"] == pytest.approx(3 * 6 * 16 * 768 / 111_595_008)


def test_input_prompts_start_as_vocabulary_embeddings(vilt):
    model = PromptedVilt(vilt, 3, prompt_type="input", prompt_layers=[0, 1], prompt_length=4,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    words = vilt.embeddings.text_embeddings.word_embeddings.weight[4:]
    rows = model.prompts.prompts.detach().reshape(-1, words.shape[1])
    assert all(torch.isclose(words, row).all(1).any() for row in rows)
    chosen = PromptedVilt(vilt, 3, prompt_type="input", prompt_layers=[0], prompt_length=4,
                          generator=torch.Generator().manual_seed(0), init_token_ids=[5, 6])  # fmt: skip
    words = vilt.embeddings.text_embeddings.word_embeddings.weight[5:7]
    rows = chosen.prompts.prompts.detach().reshape(-1, words.shape[1])
    assert all(torch.isclose(words, row).all(1).any() for row in rows)
    with pytest.raises(ConfigError, match="init_token_ids"):
        PromptedVilt(vilt, 3, prompt_type="input", prompt_layers=[0], init_token_ids=[10_000])


def test_importing_the_experiment_does_not_import_transformers():
    import subprocess
    import sys

    code = "import sys, reprolab.missing_prompts.experiment; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_probe_fits_separable_features_and_probes_every_case(vilt):
    from reprolab.missing_prompts.data import GlyphWordWorld
    from reprolab.missing_prompts.model import MISSING_CASES
    from reprolab.missing_prompts.probe import cls_features, fit_probe, probe_backbone

    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    assert (fit_probe(x, y, kind="linear", steps=400, lr=0.05)(x).argmax(-1) == y).float().mean() > 0.95
    with pytest.raises(ValueError, match="kind"):
        fit_probe(x, y, kind="forest")
    world = GlyphWordWorld(n_codes=8)
    tiny = build_mini_vilt(world.vocab_size, hidden=16, layers=1, heads=2, max_text_len=world.max_text_len)
    train = world.single_label(12, 4, 0.0, torch.Generator().manual_seed(1))
    test = world.single_label(6, 4, 0.0, torch.Generator().manual_seed(2))
    assert cls_features(tiny, train, torch.zeros(12, dtype=torch.long)).shape == (12, 16)
    out = probe_backbone(tiny, train, test, torch.arange(12) % 3, steps=3)
    assert set(out) == {f"{k}_{c}" for k in ("per_case", "mixture") for c in MISSING_CASES}
    assert all(0.0 <= v <= 100.0 for v in out.values())


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro"])
def test_per_case_logits_give_the_metric_of_any_missing_table(vilt, metric):
    """Evaluating once per missing case and picking each sample's case equals evaluating under the table."""
    from reprolab.missing_prompts.data import PairData, apply_missing, draw_missing_table
    from reprolab.missing_prompts.train import evaluate, predict_per_case, table_logits, table_metric

    ids, mask, pixels = _inputs(batch=6, seed=3)
    g = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 3, (6,), generator=g) if metric == "accuracy" else (torch.rand(6, 3, generator=g) < 0.5)
    data = PairData(ids, mask, pixels, labels.float() if metric == "f1_macro" else labels)
    model = PromptedVilt(vilt, 3, prompt_type="input", prompt_layers=[0, 1], prompt_length=2).eval()
    case_logits = predict_per_case(model, data, batch_size=4)
    assert case_logits.shape == (3, 6, 3)
    table = draw_missing_table(6, 0.7, "both", torch.Generator().manual_seed(2))
    assert table_metric(case_logits, table, data.labels, metric) == pytest.approx(
        evaluate(model, apply_missing(data, table), table, metric)
    )
    for case in (COMPLETE, TEXT_MISSING, IMAGE_MISSING):
        assert torch.equal(table_logits(case_logits, torch.full((6,), case)), case_logits[case])
    with pytest.raises(ValueError, match="does not fit"):
        table_logits(case_logits, torch.zeros(5, dtype=torch.long))


def test_per_case_logits_of_some_cases_and_from_stored_encoder_outputs(vilt):
    """Only the asked cases are computed (the others NaN), with the same numbers; a second model with the same
    frozen encoder reads the stored encoder outputs and gets exactly the logits of its own full forward pass."""
    from reprolab.missing_prompts.data import PairData
    from reprolab.missing_prompts.train import predict_per_case

    ids, mask, pixels = _inputs(batch=6, seed=5)
    data = PairData(ids, mask, pixels, torch.zeros(6, dtype=torch.long))
    models = [
        PromptedVilt(vilt, 3, prompt_type="fixed", prompt_length=3, generator=torch.Generator().manual_seed(s)).eval()
        for s in (0, 1)
    ]
    full = predict_per_case(models[0], data, batch_size=4)
    some = predict_per_case(models[0], data, batch_size=4, cases=(COMPLETE, TEXT_MISSING))
    assert torch.equal(some[:2], full[:2]) and some[IMAGE_MISSING].isnan().all()
    store: dict = {}
    assert torch.equal(predict_per_case(models[0], data, batch_size=4, encoded=store), full)
    assert set(store) == {COMPLETE, TEXT_MISSING, IMAGE_MISSING} and set(store[COMPLETE]) == {0, 4}
    other = predict_per_case(models[1], data, batch_size=4)
    assert not torch.equal(other, full)
    assert torch.equal(predict_per_case(models[1], data, batch_size=4, encoded=store), other)


def test_shared_prompts_ignore_the_missing_case():
    """The ablation: one prompt set for every missing case (not missing-aware), a third of the parameters."""
    shared = MissingAwarePrompts(2, 4, 8, generator=torch.Generator().manual_seed(0), shared=True)
    chosen = shared(torch.tensor([COMPLETE, TEXT_MISSING, IMAGE_MISSING]))
    assert torch.equal(chosen[0], chosen[1]) and torch.equal(chosen[1], chosen[2])
    assert shared.prompts.numel() == 2 * 4 * 8


def test_fixed_baseline_prompts_are_the_official_non_learned_ones(vilt):
    """learnt_p=False: one all-ones row per case (complete 0, image missing 1, text missing 2), not trained. The
    cases differ only in the row order of a key/value prefix, to which attention is invariant: the official
    baseline's prompts change the layers (an attention sink) but tell them nothing about the missing case."""
    from reprolab.missing_prompts.model import fixed_prompts

    fixed = fixed_prompts(2, 4, 8)
    assert fixed[COMPLETE, :, 0].eq(1).all() and fixed[IMAGE_MISSING, :, 1].eq(1).all()
    assert fixed[TEXT_MISSING, :, 2].eq(1).all() and fixed.sum() == 3 * 2 * 8
    ids, mask, pixels = _inputs()
    model = PromptedVilt(vilt, 3, prompt_type="fixed", prompt_layers=[0, 1], prompt_length=4,
                         generator=torch.Generator().manual_seed(1)).freeze_backbone().eval()  # fmt: skip
    none = PromptedVilt(vilt, 3, prompt_type="none", generator=torch.Generator().manual_seed(1)).freeze_backbone()
    assert model.trainable_parameters() == none.trainable_parameters()  # pooler + head only
    a = model.encode(ids, mask, pixels, torch.tensor([0, 1, 2]))[0]
    b = model.encode(ids, mask, pixels, torch.tensor([1, 1, 1]))[0]
    torch.testing.assert_close(a, b)
    plain = none.encode(ids, mask, pixels, torch.tensor([0, 1, 2]))[0]
    assert (a - plain).abs().max() > 1e-3


def test_optimizer_is_the_official_adamw():
    from reprolab.missing_prompts.train import make_optimizer

    vilt = build_mini_vilt(20, image_size=8, patch_size=4, hidden=16, layers=2, heads=2, max_text_len=6)
    model = PromptedVilt(vilt, 3, prompt_type="input", prompt_layers=[0], prompt_length=4).freeze_backbone()
    opt = make_optimizer(model, 1e-2, 2e-2)
    assert all(g["betas"] == (0.9, 0.98) and g["eps"] == 1e-8 for g in opt.param_groups)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 2e-2 for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert {"prompts.prompts", "head.1.weight", "vilt.pooler.dense.weight"} <= names  # as the official names fall
    assert not any(n.endswith("bias") for n in names)
