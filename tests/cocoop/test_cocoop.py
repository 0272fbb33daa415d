"""Unit tests of the CoOp/CoCoOp prompt learners on a tiny random CLIP."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional as F

from reprolab.cocoop.data import BACKGROUNDS, ShapesWorld, WordTokenizer, base_new_split, read_split_json
from reprolab.cocoop.experiment import harmonic_mean
from reprolab.cocoop.model import (
    CoCoOpPromptLearner,
    CoOpPromptLearner,
    PromptClassifier,
    build_mini_clip,
    encode_token_ids,
    freeze,
    image_features,
    supports_shared_prefix,
)
from reprolab.cocoop.train import contrastive_loss, contrastive_targets, pretrain_clip, train_prompts
from reprolab.core.config import ConfigError
from reprolab.core.errors import DataError

NAMES = ["red circle", "blue square", "green cross"]


@pytest.fixture
def setup():
    torch.manual_seed(0)
    tok = WordTokenizer.for_shapes()
    clip = freeze(build_mini_clip(len(tok.vocab), image_size=8, width=32, layers=1))
    return clip, tok


def test_text_encoding_matches_transformers(setup):
    clip, tok = setup
    ids = tok.batch(["a photo of a red circle", "blue square"])
    ours = encode_token_ids(clip, ids, tok.eos_id)
    ref = clip.get_text_features(input_ids=ids)
    ref = getattr(ref, "pooler_output", ref)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_context_reaches_right_positions(setup):
    """Context set to "a photo of a" embeddings gives the hand-written prompt's features exactly."""
    clip, tok = setup
    learner = CoOpPromptLearner(clip, tok, NAMES, init="a photo of a")
    assert learner.n_ctx == 4
    hand = tok.batch([f"a photo of a {n}" for n in NAMES])
    ref = F.normalize(encode_token_ids(clip, hand, tok.eos_id), dim=-1)
    assert torch.allclose(learner.text_features(clip), ref, atol=1e-5)
    emb = clip.text_model.embeddings.token_embedding(hand)
    assert torch.allclose(learner.prompts(), emb, atol=1e-6)
    assert learner.eos_pos.tolist() == (hand == tok.eos_id).int().argmax(1).tolist()


def test_zero_metanet_equals_coop(setup):
    clip, tok = setup
    coop = CoOpPromptLearner(clip, tok, NAMES, init="a photo of a")
    cocoop = CoCoOpPromptLearner(clip, tok, NAMES, init="a photo of a")
    with torch.no_grad():
        cocoop.meta_net[2].weight.zero_()
        cocoop.meta_net[2].bias.zero_()
    img = F.normalize(torch.randn(5, 32), dim=-1)
    cond = cocoop.conditional_text_features(clip, img)
    assert cond.shape == (5, 3, 32)
    assert torch.allclose(cond, coop.text_features(clip)[None].expand(5, -1, -1), atol=1e-5)


def test_metanet_shape_and_chunking(setup):
    clip, tok = setup
    cocoop = CoCoOpPromptLearner(clip, tok, NAMES, n_ctx=4, generator=torch.Generator().manual_seed(0))
    assert [m.weight.shape for m in (cocoop.meta_net[0], cocoop.meta_net[2])] == [(2, 32), (32, 2)]
    img = F.normalize(torch.randn(7, 32), dim=-1)
    whole = cocoop.conditional_text_features(clip, img, chunk=0)
    for chunk in (1, 3):
        assert torch.allclose(cocoop.conditional_text_features(clip, img, chunk=chunk), whole, atol=1e-5)
    assert not torch.allclose(whole[0], whole[1])  # one prompt set per image


def test_checkpointed_chunks_give_the_loops_values_and_gradients(setup):
    clip, tok = setup
    cocoop = CoCoOpPromptLearner(clip, tok, NAMES, n_ctx=4, generator=torch.Generator().manual_seed(0))
    img = F.normalize(torch.randn(7, 32), dim=-1)
    grads = []
    for chunk, checkpoint in ((1, False), (3, True)):
        cocoop.zero_grad()
        out = cocoop.conditional_text_features(clip, img, chunk=chunk, checkpoint=checkpoint)
        (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
        grads.append((out.detach(), cocoop.ctx.grad.clone(), cocoop.meta_net[0].weight.grad.clone()))
    for ref, got in zip(*grads):
        assert torch.allclose(ref, got, atol=1e-5)


# class names of 1, 2 and 4 tokens: the shorter prompts are padded after EOS
UNEVEN = ["circle", "red circle", "large dark striped cross", "blue square"]


def _logits_and_grads(model: PromptClassifier, img: torch.Tensor) -> list[torch.Tensor]:
    """Logits and the gradients of a fixed function of them w.r.t. the context and every Meta-Net parameter."""
    model.learner.zero_grad()
    logits = model.logits(img)
    (logits * torch.arange(logits.numel()).view_as(logits).sin()).sum().backward()
    grads = [model.learner.ctx.grad.clone(), *(p.grad.clone() for p in model.learner.meta_net.parameters())]
    return [logits.detach(), *grads]


@pytest.mark.parametrize(("width", "layers"), [(32, 1), (48, 3)])
def test_shared_prefix_gives_the_full_sequences_values_and_gradients(width, layers):
    """Prefix sharing (default) = the per-image loop over full sequences, in logits and gradients, for any chunk
    size, with and without checkpointing, with class names of different token lengths, on two CLIP shapes."""
    torch.manual_seed(0)
    tok = WordTokenizer.for_shapes()
    clip = freeze(build_mini_clip(len(tok.vocab), image_size=8, width=width, layers=layers))
    assert supports_shared_prefix(clip)
    learner = CoCoOpPromptLearner(clip, tok, UNEVEN, init="a photo of a")
    with torch.no_grad():  # a Meta-Net output of the context's size, so that the shift matters
        learner.meta_net[2].weight.normal_(0, 0.5)
    img = F.normalize(torch.randn(7, width), dim=-1)
    ref = _logits_and_grads(PromptClassifier(clip, learner, chunk=1, shared_prefix=False), img)
    for chunk, checkpoint in ((0, False), (1, False), (3, False), (0, True), (3, True), (4, True)):
        got = _logits_and_grads(PromptClassifier(clip, learner, chunk=chunk, checkpoint=checkpoint), img)
        for a, b in zip(ref, got, strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (chunk, checkpoint, float((a - b).abs().max()))
    assert not torch.allclose(ref[0][0], ref[0][1])  # the images' prompts differ


def test_shared_prefix_falls_back_where_the_structure_differs(setup, monkeypatch):
    """A text model this does not know (a subclassed layer, another attention function, attention dropout in
    training) keeps the full-sequence path: the shared-prefix encoder is never called and the values stay."""
    import reprolab.cocoop.model as model_module

    clip, tok = setup
    learner = CoCoOpPromptLearner(clip, tok, UNEVEN, init="a photo of a")
    img = F.normalize(torch.randn(3, 32), dim=-1)
    ref = learner.conditional_text_features(clip, img, shared_prefix=False)
    layer = clip.text_model.encoder.layers[0]
    cls = type(layer)

    def refuse(*args, **kwargs):
        raise AssertionError("shared-prefix path taken for an unknown structure")

    monkeypatch.setattr(model_module, "_normalised_shared_text", refuse)
    layer.__class__ = type("OtherLayer", (cls,), {})
    assert not supports_shared_prefix(clip)
    assert torch.allclose(learner.conditional_text_features(clip, img), ref, atol=1e-6)
    layer.__class__ = cls
    monkeypatch.setattr(layer.self_attn.config, "_attn_implementation", "some_kernel")
    assert not supports_shared_prefix(clip)
    monkeypatch.setattr(layer.self_attn.config, "_attn_implementation", "eager")
    monkeypatch.setattr(layer.self_attn, "dropout", 0.1)
    layer.self_attn.train()
    assert not supports_shared_prefix(clip)
    layer.self_attn.eval()
    assert supports_shared_prefix(clip)


def test_class_specific_context(setup):
    clip, tok = setup
    learner = CoOpPromptLearner(clip, tok, NAMES, n_ctx=2, class_specific=True)
    assert learner.ctx.shape == (3, 2, 32)
    assert learner.prompts().shape[:2] == (3, 1 + 2 + 2 + 1)


@pytest.mark.parametrize("method", ["coop", "cocoop"])
def test_frozen_clip_and_gradients(setup, method):
    clip, tok = setup
    cls = CoCoOpPromptLearner if method == "cocoop" else CoOpPromptLearner
    learner = cls(clip, tok, NAMES, init="a photo of a")
    model = PromptClassifier(clip, learner)
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    world = ShapesWorld(size=8, n_colours=3, n_shapes=3)
    x, _ = world.render(torch.tensor([0, 4, 8] * 4), torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2] * 4)
    ctx0 = learner.ctx.detach().clone()
    train_prompts(model, x, y, epochs=2, batch_size=4, lr=0.5, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(before[k], v) for k, v in clip.state_dict().items())
    assert not torch.equal(learner.ctx, ctx0)
    expected = 4 * 32 + (0 if method == "coop" else 32 * 2 + 2 + 2 * 32 + 32)
    assert model.trainable_parameters() == expected


def test_shapes_world_and_split():
    world = ShapesWorld(size=16, n_colours=4, n_shapes=4)
    x, big = world.render(torch.arange(16), torch.Generator().manual_seed(0), "striped")
    assert x.shape == (16, 3, 16, 16) and big.shape == (16,)
    base, new = base_new_split(world)
    assert len(base) == len(new) == 8 and not set(base) & set(new)
    colours = {world.class_attributes(i)[0] for i in new}
    assert colours == set(range(4))  # every colour occurs among the new classes too
    with pytest.raises(DataError, match="background"):
        world.render(torch.arange(2), torch.Generator(), "plaid")


def test_harmonic_mean_hand_computed():
    assert harmonic_mean(80.47, 71.69) == pytest.approx(75.83, abs=0.01)
    assert harmonic_mean(82.69, 63.22) == pytest.approx(71.66, abs=0.01)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_split_json(tmp_path):
    good = tmp_path / "split.json"
    good.write_text(json.dumps({"train": [["a/1.jpg", 0, "cat"]], "val": [], "test": [["b/2.jpg", 1, "dog"]]}))
    assert read_split_json(good)["test"] == [("b/2.jpg", 1, "dog")]
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [\n  ["a.jpg", 0, "cat"],\n  oops]}')
    with pytest.raises(DataError, match=r"bad\.json:3"):
        read_split_json(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"train": [["a.jpg", "zero", "cat"]], "test": []}))
    with pytest.raises(DataError, match=r"wrong\.json: train\[0\]"):
        read_split_json(wrong)


def test_bad_config():
    with pytest.raises(ConfigError, match="n_ctx"):
        CoOpPromptLearner(build_mini_clip(30, 8, 4, 32, 1), WordTokenizer.for_shapes(), NAMES, n_ctx=0)


def test_contrastive_targets_hand_computed():
    """Positives: the same class and size, or an identical caption of the same class (pretraining soft
    targets); an identical caption of another class (a mis-captioned image) is not a positive."""
    ids = torch.tensor([[1, 5, 3], [1, 6, 3], [1, 5, 3], [1, 5, 3]])
    labels = torch.tensor([0, 0, 1, 0])
    big = torch.tensor([1, 1, 0, 0])
    target = contrastive_targets(ids, labels, big)
    expected = torch.tensor([[1 / 3, 1 / 3, 0, 1 / 3], [1 / 2, 1 / 2, 0, 0], [0, 0, 1, 0], [1 / 2, 0, 0, 1 / 2]])
    assert torch.allclose(target, expected)
    assert torch.allclose(target.sum(1), torch.ones(4))


def test_pretraining_loss_and_gradient_equal_the_plain_computation():
    """Encoding each distinct caption once (gathered back to its rows) under SDPA attention gives the loss and
    gradients of the plain computation (eager attention, every caption encoded) up to float rounding; pretraining
    leaves the model with the eager attention that prompt learning uses."""
    tok, world = WordTokenizer.for_shapes(), ShapesWorld(size=8)
    torch.manual_seed(0)
    clip = build_mini_clip(len(tok.vocab), image_size=8, width=32, layers=1)
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, len(world.classnames), (64,), generator=gen)
    pixels, big = world.render(labels, gen, BACKGROUNDS[0])
    ids = tok.batch(world.captions(labels, big, BACKGROUNDS[0], gen))
    assert len(torch.unique(ids, dim=0)) < len(ids)  # duplicates exist, so the gather is exercised

    def plain() -> torch.Tensor:
        img = image_features(clip, pixels)
        txt = F.normalize(encode_token_ids(clip, ids, tok.eos_id), dim=-1)
        logits = clip.logit_scale.exp() * img @ txt.t()
        target = contrastive_targets(ids, labels, big)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))

    def loss_and_grads(compute) -> tuple[torch.Tensor, list[torch.Tensor]]:
        clip.zero_grad()
        loss = compute()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in clip.parameters() if p.grad is not None]

    ref_loss, ref_grads = loss_and_grads(plain)
    clip.set_attn_implementation("sdpa")
    loss, grads = loss_and_grads(lambda: contrastive_loss(clip, pixels, ids, labels, big, tok.eos_id))
    clip.set_attn_implementation("eager")
    assert torch.allclose(loss, ref_loss, atol=1e-6)
    assert len(grads) == len(ref_grads)
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-7)
    pretrain_clip(clip, world, tok, steps=1, batch_size=16, lr=1e-3, generator=gen)
    assert clip.config._attn_implementation == "eager" and not clip.training


def test_miscaption_partners_are_class_specific_and_in_both_halves():
    world = ShapesWorld(miscaption=1.0)  # 6 colours x 4 shapes
    partners = world.miscaption_partners()
    base, new = base_new_split(world)
    assert ShapesWorld().miscaption_partners() == {}
    assert all(partners[partners[a]] == a and partners[a] != a for a in partners)  # symmetric swaps
    for a, b in partners.items():
        assert world.class_attributes(a)[0] == world.class_attributes(b)[0]  # same colour
        assert (a in base) == (b in base)  # within one half
    base_colours = {world.class_attributes(a)[0] for a in partners if a in base}
    new_colours = {world.class_attributes(a)[0] for a in partners if a in new}
    assert base_colours == {0, 1, 2} and new_colours == {3, 4, 5}
    assert len(partners) == 12
    names = world.classnames
    assert names[partners[names.index("red square")]] == "red triangle"
    # with probability 1 every caption of a swapped class names its partner; other classes keep their names
    labels = torch.tensor([names.index("red square"), names.index("red circle")] * 20)
    caps = world.captions(labels, torch.zeros(40, dtype=torch.long), "dark", torch.Generator().manual_seed(0))
    assert all("red triangle" in c for c in caps[0::2]) and all("red circle" in c for c in caps[1::2])


def test_miscaption_refused_outside_unit_interval():
    from reprolab.cocoop.experiment import CoCoOpConfig

    with pytest.raises(ConfigError, match="miscaption"):
        CoCoOpConfig(miscaption=1.5).validate()


def test_sixteen_context_vectors(setup):
    """M = 16 random context vectors: the class name and [EOS] follow the 16 vectors."""
    clip, tok = setup
    learner = CoOpPromptLearner(clip, tok, NAMES, n_ctx=16, generator=torch.Generator().manual_seed(0))
    assert learner.ctx.shape == (16, 32)
    prompts = learner.prompts()
    emb = clip.text_model.embeddings.token_embedding
    assert torch.allclose(prompts[:, 1:17], learner.ctx[None].expand(3, -1, -1))
    names = tok.batch(NAMES)  # [bos] name [eos]
    assert torch.allclose(prompts[:, 17:20], emb(names[:, 1:4]), atol=1e-6)
    assert learner.eos_pos.tolist() == [19, 19, 19]


def test_epoch_lr_is_dassl_constant_warmup_then_cosine_per_epoch():
    from reprolab.cocoop.train import epoch_lr

    lrs = [epoch_lr(e, 10, 0.002, 1, 1e-5) for e in range(10)]
    assert lrs[0] == 1e-5 and lrs[1] == 0.002  # warm-up epoch, then the full rate (WARMUP_RECOUNT)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
    assert abs(lrs[9] - 0.002 * 0.5 * (1 + math.cos(math.pi * 8 / 10))) < 1e-12
    assert epoch_lr(0, 5, 0.1) == 0.1  # no warm-up: plain per-epoch cosine
