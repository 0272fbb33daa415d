from __future__ import annotations

import pytest
import torch

from reprolab.core.errors import DataError
from reprolab.ras.model import (
    RAS,
    VGG16_CONV_INDICES,
    deep_supervision_loss,
    load_vgg16_backbone,
    oracle_coarse_logits,
    reverse_attention,
)
from reprolab.ras.pipeline import parameter_count


def _torchvision_vgg16_state(width: float = 1.0) -> dict[str, torch.Tensor]:
    """A state dict laid out like torchvision's ``vgg16().state_dict()`` (features + classifier)."""
    channels = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    state: dict[str, torch.Tensor] = {}
    in_c = 3
    for index, out in zip(VGG16_CONV_INDICES, channels):
        out = max(1, round(out * width))
        state[f"features.{index}.weight"] = torch.full((out, in_c, 3, 3), index / 100)
        state[f"features.{index}.bias"] = torch.full((out,), -index / 100)
        in_c = out
    state["classifier.0.weight"] = torch.zeros(2, 2)  # classifier keys exist and are ignored
    state["classifier.0.bias"] = torch.zeros(2)
    return state


def test_full_width_torchvision_vgg16_state_dict_maps_every_key():
    model = RAS(width=1.0)
    state = _torchvision_vgg16_state()
    torchvision_feature_keys = {k for k in state if k.startswith("features.")}
    assert set(model.backbone.state_dict()) == torchvision_feature_keys
    assert len(torchvision_feature_keys) == 26
    loaded = load_vgg16_backbone(model, state)
    assert set(loaded) == torchvision_feature_keys
    own = model.backbone.state_dict()
    assert all(torch.equal(own[key], state[key]) for key in loaded)


def test_loading_a_torchvision_state_dict_maps_every_key(tmp_path):
    model = RAS(width=0.125)
    state = _torchvision_vgg16_state(width=0.125)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    loaded = load_vgg16_backbone(model, path)
    assert len(loaded) == 26
    own = model.backbone.state_dict()
    for key in loaded:
        assert torch.equal(own[key], state[key]), key


def test_loading_refuses_wrong_shapes_and_missing_keys(tmp_path):
    model = RAS(width=0.125)
    with pytest.raises(DataError, match="width=1"):
        load_vgg16_backbone(model, _torchvision_vgg16_state(width=0.25))
    state = _torchvision_vgg16_state(width=0.125)
    del state["features.28.bias"]
    with pytest.raises(DataError, match="features.28.bias"):
        load_vgg16_backbone(model, state)
    bad = tmp_path / "broken.pth"
    for junk in (b"not a checkpoint", b"junk\n", b"x", b"PK\x03\x04garbage"):
        bad.write_bytes(junk)
        with pytest.raises(DataError, match="broken.pth"):
            load_vgg16_backbone(model, bad)
    state = _torchvision_vgg16_state(width=0.125)
    state["features.0.weight"] = [[1.0]]
    with pytest.raises(DataError, match=r"features\.0\.weight is a list, not a tensor"):
        load_vgg16_backbone(model, state)


def test_side_outputs_have_the_resolution_of_their_vgg_stage():
    model = RAS(width=0.0625)
    out = model(torch.randn(2, 3, 64, 80))
    expected = [(64, 80), (32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    assert [tuple(s.shape[-2:]) for s in out.side_logits] == expected
    assert all(s.shape[:2] == (2, 1) for s in out.side_logits)
    assert all(tuple(u.shape) == (2, 1, 64, 80) for u in out.upsampled)
    assert [tuple(a.shape[-2:]) for a in out.attention] == expected[:5]
    assert out.logits is out.side_logits[0]


def test_reverse_attention_weights_lie_in_unit_interval_and_reverse_the_prediction():
    logits = torch.tensor([-1e4, -3.0, 0.0, 3.0, 1e4])
    weight = reverse_attention(logits)
    assert torch.all((weight >= 0) & (weight <= 1))
    assert weight[2] == 0.5 and weight[0] == 1.0 and weight[-1] == 0.0
    assert torch.all(weight[:-1] >= weight[1:])  # more salient -> less attention
    out = RAS(width=0.0625)(torch.randn(1, 3, 64, 64) * 10)
    for a in out.attention:
        assert a.min() >= 0 and a.max() <= 1


def test_reverse_attention_weights_are_computed_from_the_deeper_prediction():
    model = RAS(width=0.0625)
    out = model(torch.randn(1, 3, 64, 64))
    for level in range(5):
        deeper = torch.nn.functional.interpolate(
            out.side_logits[level + 1], size=out.side_logits[level].shape[-2:], mode="bilinear", align_corners=False
        )
        assert torch.allclose(out.attention[level], 1 - torch.sigmoid(deeper), atol=1e-6)


def test_oracle_coarse_map_replaces_s6_and_drives_the_first_attention():
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:48, 16:48] = 1
    coarse = oracle_coarse_logits(mask, 4.0)  # default blur: 64 // 7 = 9 px, odd
    assert coarse.shape == mask.shape
    assert coarse[0, 0, 32, 32] == pytest.approx(4.0) and coarse[0, 0, 2, 2] == pytest.approx(-4.0)
    assert coarse[0, 0, 32, 16] == pytest.approx(4.0 * (2 * 5 / 9 - 1), abs=1e-5)  # 5 of 9 columns inside
    model = RAS(width=0.0625)
    out = model(torch.randn(2, 3, 64, 64), coarse)
    assert torch.equal(out.side_logits[-1], coarse)
    up = torch.nn.functional.interpolate(coarse, size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(out.attention[4], 1 - torch.sigmoid(up), atol=1e-6)
    with pytest.raises(ValueError, match="coarse_logits"):
        model(torch.randn(2, 3, 64, 64), coarse[:1])
    with pytest.raises(ValueError, match="magnitude"):
        oracle_coarse_logits(mask, 0.0)


def test_ablation_has_the_same_parameters_and_unit_attention():
    torch.manual_seed(0)
    ras = RAS(width=0.0625)
    torch.manual_seed(0)
    ablation = RAS(width=0.0625, reverse_attention=False)
    assert ras.state_dict().keys() == ablation.state_dict().keys()
    x = torch.randn(1, 3, 64, 64)
    out_a, out_b = ras(x), ablation(x)
    assert all(torch.all(a == 1) for a in out_b.attention)
    assert torch.allclose(out_a.side_logits[-1], out_b.side_logits[-1])  # S_6 does not depend on RA
    assert not torch.allclose(out_a.logits, out_b.logits)


def test_deep_supervision_reaches_every_head_and_the_backbone():
    model = RAS(width=0.0625)
    x = torch.randn(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.5).float()
    out = model(x)
    loss = deep_supervision_loss(out, mask)
    manual = sum(torch.nn.functional.binary_cross_entropy_with_logits(u, mask) for u in out.upsampled)
    assert torch.allclose(loss, manual)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert model.global_saliency.predict.weight.grad.abs().sum() > 0
    assert model.backbone.features[0].weight.grad.abs().sum() > 0


def test_full_width_model_is_about_81_megabytes():
    count = parameter_count(1.0)
    assert count == 20_228_934  # VGG-16 convolutions 14,714,688 + heads
    assert abs(count * 4 / 1e6 - 81.0) < 0.5
    assert parameter_count(0.125) < count / 50


def test_wrong_input_shape_is_refused():
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        RAS(width=0.0625)(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="width"):
        RAS(width=0)


def test_region_errors_split_interior_boundary_and_background():
    from reprolab.ras.pipeline import region_errors

    mask = torch.zeros(1, 1, 12, 12)
    mask[..., 2:10, 2:10] = 1
    perfect = region_errors(mask.clone(), mask)
    assert perfect == {"interior": 0.0, "boundary": 0.0, "background": 0.0}
    hollow = mask.clone()
    hollow[..., 4:8, 4:8] = 0  # the eroded interior (rows/cols 4..7) predicted empty
    errors = region_errors(hollow, mask)
    assert errors["interior"] == 1.0 and errors["boundary"] == 0.0 and errors["background"] == 0.0


def test_map_confidence_is_the_mean_probability_inside_and_outside_the_mask():
    from reprolab.ras.pipeline import map_confidence

    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1  # 8 object pixels, 8 background pixels
    probs = torch.full((1, 1, 4, 4), 0.1)
    probs[..., 0, :] = 0.9  # half the object confident, half at 0.1
    confidence = map_confidence(probs, mask)
    assert confidence["p_in"] == pytest.approx(0.5) and confidence["p_out"] == pytest.approx(0.1)


def test_best_coarse_confidence_of_a_1x1_grid_is_the_object_fraction():
    from reprolab.ras.pipeline import best_coarse_confidence

    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :2] = 1  # 8 of 64 pixels: the best constant map is p = 1/8 everywhere (BCE optimum)
    single = best_coarse_confidence(mask, 1)
    assert single["p_in"] == pytest.approx(0.125, abs=1e-3) and single["p_out"] == pytest.approx(0.125, abs=1e-3)
    full = best_coarse_confidence(torch.ones(1, 1, 8, 8), 2)
    assert full["p_in"] > 0.99


def test_channels_last_layout_computes_the_default_layouts_function(monkeypatch):
    """The convolutions run channels-last for speed; the map and every gradient equal the default layout's up to
    float rounding, and the state dict (names, shapes) is the same."""
    torch.manual_seed(0)
    fast = RAS(width=0.125)
    assert fast.backbone.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    image = torch.randn(2, 3, 64, 64)
    fast(image).logits.sum().backward()
    import reprolab.ras.model as ras_model

    monkeypatch.setattr(ras_model, "CONV_LAYOUT", torch.contiguous_format)
    plain = RAS(width=0.125)
    plain.load_state_dict(fast.state_dict())
    plain = plain.to(memory_format=torch.contiguous_format)
    plain(image).logits.sum().backward()
    assert fast.state_dict().keys() == plain.state_dict().keys()
    torch.testing.assert_close(fast(image).logits, plain(image).logits, rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
