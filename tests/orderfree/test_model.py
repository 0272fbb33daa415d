"""Backbone, decoder, order-free targets, and decoding invariants."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reprolab.core.errors import CheckpointError
from reprolab.orderfree.decode import (
    beam_search,
    beam_search_per_image,
    choose_order_free_target,
    frequent_first_sequences,
    greedy_decode,
    sequence_loss,
)
from reprolab.orderfree.model import AttentionLSTMDecoder, ResNetBackbone, load_torchvision_resnet

K = 6


def _decoder(seed: int = 0) -> AttentionLSTMDecoder:
    torch.manual_seed(seed)
    return AttentionLSTMDecoder(8, K, hidden=16, embed=4, attention_dim=8).eval()


def _features(n: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 8, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_backbone_shapes():
    assert ResNetBackbone((8, 16, 32), (1, 1, 1))(torch.rand(2, 1, 28, 28)).shape == (2, 32, 7, 7)
    big = ResNetBackbone((64, 128, 256, 512), (2, 2, 2, 2), in_channels=3, stem="imagenet")
    assert big(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_torchvision_resnet18_names_load(tmp_path):
    model = ResNetBackbone((64, 128, 256, 512), (2, 2, 2, 2), in_channels=3, stem="imagenet")
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias"):
        assert key in state  # torchvision's resnet18 key names
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    fresh = ResNetBackbone((64, 128, 256, 512), (2, 2, 2, 2), in_channels=3, stem="imagenet")
    assert load_torchvision_resnet(fresh, path) == ["fc.bias", "fc.weight"]
    assert torch.equal(fresh.state_dict()["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    del state["layer4.1.bn2.bias"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="layer4.1.bn2.bias"):
        load_torchvision_resnet(fresh, path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_torchvision_resnet(fresh, tmp_path / "junk.pth")


def test_gradients_reach_every_decoder_parameter():
    decoder = _decoder().train()
    targets = torch.zeros(5, K)
    targets[0, [1, 3]] = 1
    targets[1:, 0] = 1
    targets[2, 5] = 1
    loss, values = sequence_loss(decoder, _features(), targets)
    loss.backward()
    assert torch.isfinite(loss) and values["seq_loss"] > 0
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=K, max_size=K), min_size=1, max_size=6), st.integers(0, 2**16))
def test_candidate_pool_choice_is_a_remaining_label(rows, seed):
    remaining = torch.tensor(rows)
    probs = torch.rand(len(rows), K + 1, generator=torch.Generator().manual_seed(seed)).softmax(dim=1)
    chosen = choose_order_free_target(probs, remaining, K)
    for row in range(len(rows)):
        if not remaining[row].any():
            assert chosen[row] == K
        else:
            assert remaining[row, chosen[row]]
            assert probs[row, chosen[row]] == probs[row, :K][remaining[row]].max()


def test_order_free_targets_never_repeat_and_cover_the_ground_truth():
    decoder = _decoder()
    targets = (torch.rand(8, K, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    targets[0] = 0
    targets[0, 2] = 1
    record: list[torch.Tensor] = []
    sequence_loss(decoder, _features(8), targets, record=record)
    steps = torch.stack(record, dim=1)
    for row in range(8):
        emitted = [int(v) for v in steps[row] if v < K]
        assert len(emitted) == len(set(emitted))  # never emitted twice
        assert set(emitted) == set(torch.nonzero(targets[row]).squeeze(1).tolist())
        assert int(steps[row, len(emitted)]) == K  # then the end token


def test_order_free_target_is_most_confident_label():
    decoder = _decoder()
    features = _features(1)
    targets = torch.zeros(1, K)
    targets[0, [0, 4]] = 1
    record: list[torch.Tensor] = []
    sequence_loss(decoder, features, targets, record=record)
    encoded = decoder.encode(features)
    logits, _, _ = decoder.step(encoded, decoder.initial_state(encoded))
    expected = 0 if logits[0, 0] > logits[0, 4] else 4
    assert int(record[0][0]) == expected


def test_frequent_first_sequences_hand_case():
    targets = torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float)
    frequency = torch.tensor([5.0, 1.0, 9.0, 5.0])  # order: 2, 0, 3, 1
    assert frequent_first_sequences(targets, frequency, 4).tolist() == [[2, 0, 3, 4], [1, 4, 4, 4], [4, 4, 4, 4]]


def test_fixed_order_loss_needs_sequences():
    with pytest.raises(ValueError, match="sequences"):
        sequence_loss(_decoder(), _features(), torch.zeros(5, K), order="fixed")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_one_equals_greedy(seed):
    decoder, features = _decoder(seed), _features(12, seed)
    greedy = greedy_decode(decoder, features)
    beam = beam_search(decoder, features, width=1)
    assert torch.equal(greedy.labels, beam.labels) and greedy.sequences == beam.sequences


def test_batched_beam_search_equals_per_image():
    decoder, features = _decoder(3), _features(6, 3)
    batched = beam_search(decoder, features, width=4)
    single = beam_search_per_image(decoder, features, width=4)
    assert torch.equal(batched.labels, single.labels) and batched.sequences == single.sequences


@pytest.mark.parametrize("width", [1, 3, 7])
def test_decoding_never_repeats_and_respects_the_cap(width):
    decoder, features = _decoder(4), _features(10, 4)
    for result in (beam_search(decoder, features, width=width, max_labels=2), greedy_decode(decoder, features,
                                                                                              max_labels=2)):
        for row, sequence in enumerate(result.sequences):
            assert len(sequence) == len(set(sequence)) <= 2
            assert set(sequence) == set(torch.nonzero(result.labels[row]).squeeze(1).tolist())


def test_beam_search_finds_at_least_the_greedy_score():
    decoder, features = _decoder(5), _features(10, 5)

    def score(sequence: list[int], row: int) -> float:
        encoded = decoder.encode(features[row : row + 1])
        state = decoder.initial_state(encoded)
        total = 0.0
        for label in [*sequence, K]:
            logits, _, hc = decoder.step(encoded, state)
            total += float(torch.log_softmax(logits, dim=1)[0, label])
            state = decoder.advance(state, logits, hc, torch.tensor([label]))
        return total

    with torch.no_grad():
        greedy = greedy_decode(decoder, features)
        beam = beam_search(decoder, features, width=5)
        for row in range(10):
            assert score(beam.sequences[row], row) >= score(greedy.sequences[row], row) - 1e-5


def test_bad_beam_width_is_refused():
    with pytest.raises(ValueError, match="beam width"):
        beam_search(_decoder(), _features(), width=K + 2)


def test_label_embedding_is_an_option_off_in_the_paper_preset():
    from reprolab.core.config import resolve_config
    from reprolab.orderfree.experiment import PRESETS, OrderFreeConfig

    plain = AttentionLSTMDecoder(8, K, hidden=16, embed=4, attention_dim=8)
    assert plain.embed is None and plain.cell.input_size == K + 16  # [p_{t-1}, z_t]
    embedded = AttentionLSTMDecoder(8, K, hidden=16, embed=4, attention_dim=8, label_embedding=True)
    assert embedded.cell.input_size == K + 4 + 16
    for preset in ("quick", "paper"):
        assert resolve_config(OrderFreeConfig, PRESETS, preset).label_embedding is False


def test_backbone_runs_channels_last_and_returns_the_default_layouts_features(monkeypatch):
    """The CNN's convolutions run channels-last for speed; its output is contiguous and equals the default
    layout's up to float rounding (eval mode: BatchNorm uses its running statistics)."""
    import reprolab.orderfree.model as model

    torch.manual_seed(0)
    fast = ResNetBackbone([8, 16], [1, 1]).eval()
    images = torch.randn(4, 1, 20, 20)
    out = fast(images)
    assert out.is_contiguous()
    monkeypatch.setattr(model, "CONV_LAYOUT", torch.contiguous_format)
    plain = ResNetBackbone([8, 16], [1, 1]).eval()
    plain.load_state_dict(fast.state_dict())
    plain = plain.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(out, plain(images), rtol=1e-5, atol=1e-5)
