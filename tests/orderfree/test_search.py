"""Exact search (the argmax that beam search approximates), sequence scores, and Wang et al.'s CNN-RNN."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from reprolab.orderfree.decode import (
    beam_search,
    exact_search,
    frequent_first_sequences,
    greedy_decode,
    sequence_log_prob,
    sequence_loss,
    set_map_decode,
)
from reprolab.orderfree.model import AttentionLSTMDecoder, CNNRNNDecoder

K = 4


def _decoder(seed: int, sharpness: float = 3.0) -> AttentionLSTMDecoder:
    torch.manual_seed(seed)
    decoder = AttentionLSTMDecoder(8, K, hidden=16, embed=4, attention_dim=8).eval()
    with torch.no_grad():
        decoder.pred.weight.mul_(sharpness)
        decoder.pred.bias[K] -= 2.0  # the end token less likely: the best sequences are not empty
    return decoder


def _features(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 8, 3, 3, generator=torch.Generator().manual_seed(seed))


def _brute_force(decoder: AttentionLSTMDecoder, features: torch.Tensor, max_labels: int) -> list[tuple[float, list]]:
    """Score every repetition-free sequence of at most ``max_labels`` labels; return each image's best."""
    candidates = [list(p) for k in range(max_labels + 1) for p in itertools.permutations(range(K), k)]
    best = []
    for row in range(features.shape[0]):
        repeated = features[row : row + 1].expand(len(candidates), -1, -1, -1)
        scores = sequence_log_prob(decoder, repeated, candidates, max_labels=max_labels)
        index = int(scores.argmax())
        best.append((float(scores[index]), candidates[index]))
    return best


@pytest.mark.parametrize(("seed", "max_labels"), [(0, K), (1, K), (2, 2)])
def test_exact_search_equals_brute_force_enumeration(seed, max_labels):
    decoder, features = _decoder(seed), _features(6, seed)
    result = exact_search(decoder, features, max_labels=max_labels, expand=3)
    assert result.scores is not None
    for row, (score, sequence) in enumerate(_brute_force(decoder, features, max_labels)):
        assert result.sequences[row] == sequence
        assert result.scores[row].item() == pytest.approx(score, abs=1e-5)
        assert set(sequence) == set(torch.nonzero(result.labels[row]).squeeze(1).tolist())
    assert any(result.sequences)  # the hand-made decoder emits labels: the test is not trivial


@pytest.mark.parametrize("seed", [3, 4])
def test_exact_score_bounds_beam_and_greedy_and_incumbent_changes_nothing(seed):
    decoder, features = _decoder(seed, sharpness=1.0), _features(10, seed)
    exact = exact_search(decoder, features)
    greedy, beam = greedy_decode(decoder, features), beam_search(decoder, features, width=2)
    assert exact.scores is not None and greedy.scores is not None and beam.scores is not None
    assert bool((exact.scores >= beam.scores - 1e-5).all()) and bool((exact.scores >= greedy.scores - 1e-5).all())
    seeded = exact_search(decoder, features, incumbent=beam)
    assert seeded.sequences == exact.sequences


def test_decoders_report_the_log_probability_of_their_sequences():
    decoder, features = _decoder(5, sharpness=1.0), _features(7, 5)
    for result in (greedy_decode(decoder, features), beam_search(decoder, features, width=3),
                   greedy_decode(decoder, features, max_labels=1)):
        assert result.scores is not None
        cap = max(len(s) for s in result.sequences)
        again = sequence_log_prob(decoder, features, result.sequences, max_labels=max(cap, 1) if cap < K else None)
        assert torch.allclose(result.scores, again, atol=1e-5)


def test_a_greedy_sequence_with_probability_over_half_is_the_argmax():
    decoder, features = _decoder(6, sharpness=30.0), _features(20, 6)
    greedy, exact = greedy_decode(decoder, features), exact_search(decoder, features)
    assert greedy.scores is not None
    confident = [row for row in range(20) if greedy.scores[row] > math.log(0.5)]
    assert confident  # the sharp decoder has such images
    for row in confident:
        assert greedy.sequences[row] == exact.sequences[row]


def test_exact_search_errors():
    decoder, features = _decoder(7, sharpness=0.0), _features(2, 7)  # uniform: every prefix ties
    with pytest.raises(RuntimeError, match="expanded more than 3"):
        exact_search(decoder, features, max_expansions=3, expand=1)
    with pytest.raises(ValueError, match="sequences for"):
        sequence_log_prob(decoder, features, [[0]])
    with pytest.raises(ValueError, match="cap"):
        sequence_log_prob(decoder, features, [[0, 1], []], max_labels=1)


def test_set_map_decode_sums_the_orderings_of_each_set():
    decoder, features = _decoder(8, sharpness=1.0), _features(5, 8)
    result, certified = set_map_decode(decoder, features, eps=1e-12)
    assert bool(certified.all()) and result.scores is not None
    sets = [s for k in range(K + 1) for s in itertools.combinations(range(K), k)]
    for row in range(5):
        totals = []
        for chosen in sets:
            orderings = [list(p) for p in itertools.permutations(chosen)]
            repeated = features[row : row + 1].expand(len(orderings), -1, -1, -1)
            totals.append(float(sequence_log_prob(decoder, repeated, orderings).exp().sum()))
        best = max(range(len(sets)), key=totals.__getitem__)
        assert result.sequences[row] == list(sets[best])
        assert math.exp(result.scores[row].item()) == pytest.approx(totals[best], rel=1e-4)
    _, rough = set_map_decode(decoder, features, eps=0.2)  # little explored: not every choice is certified
    assert not bool(rough.all())
    with pytest.raises(ValueError, match="eps"):
        set_map_decode(decoder, features, eps=0.0)


def _cnnrnn(seed: int = 0) -> CNNRNNDecoder:
    torch.manual_seed(seed)
    return CNNRNNDecoder(8, K, hidden=12, embed=6)


def test_cnnrnn_scores_labels_with_the_shared_label_embeddings():
    decoder = _cnnrnn().eval()
    features = _features(3, 0)
    encoded = decoder.encode(features)
    state = decoder.initial_state(encoded)
    logits, _, (h, _) = decoder.step(encoded, state)
    image = decoder.project_image(features.flatten(2).mean(dim=2))
    joint = torch.relu(decoder.project_rnn(h) + image)  # x_t = ReLU(U_o o(t) + U_I I)
    assert torch.allclose(logits, joint @ decoder.label_embed.weight[: K + 1].T, atol=1e-6)  # s(t) = U_l^T x_t


def test_cnnrnn_trains_with_a_fixed_order_and_decodes_without_repeats():
    decoder = _cnnrnn(1).train()
    targets = torch.zeros(5, K)
    targets[0, [1, 3]] = 1
    targets[1:, 0] = 1
    targets[2, 2] = 1
    sequences = frequent_first_sequences(targets, targets.sum(dim=0), decoder.end)
    loss, _ = sequence_loss(decoder, _features(5, 1), targets, order="fixed", sequences=sequences, prob_weight=0.0)
    loss.backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    decoder.eval()
    features = _features(8, 2)
    greedy, beam1 = greedy_decode(decoder, features), beam_search(decoder, features, width=1)
    assert greedy.sequences == beam1.sequences
    for sequence in beam_search(decoder, features, width=3).sequences:
        assert len(sequence) == len(set(sequence))
