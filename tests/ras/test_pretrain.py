from __future__ import annotations

import torch

from reprolab.core.checkpoint import load_checkpoint, save_checkpoint
from reprolab.ras.model import RAS
from reprolab.ras.pipeline import initial_model
from reprolab.ras.pretrain import (
    N_PROXY_LABELS,
    ProxyClassifier,
    ProxySpec,
    generate_proxy_scenes,
    pretrained_backbone,
)

TINY = ProxySpec(width=0.0625, size=32, n_images=8, steps=2, batch_size=4, lr=1e-3, seed=3)


def _tiny(cache_dirs, notes=None):
    return pretrained_backbone(TINY, cache_dirs, n_eval=8, note=(notes.append if notes is not None else print))


def test_proxy_scenes_have_hue_and_shape_labels_and_are_deterministic():
    images, labels = generate_proxy_scenes(12, 32, seed=5)
    assert images.shape == (12, 3, 32, 32) and labels.shape == (12, N_PROXY_LABELS)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    assert (labels[:, :6].sum(1) >= 1).all() and (labels[:, 6:9].sum(1) >= 1).all()  # >= 1 hue and shape each
    again, labels_again = generate_proxy_scenes(12, 32, seed=5)
    assert torch.equal(images, again) and torch.equal(labels, labels_again)


def test_proxy_classifier_heads_and_gradients_reach_the_first_convolution():
    model = ProxyClassifier(0.0625)
    logits = model(torch.randn(2, 3, 32, 32))
    assert len(logits) == 5 and all(z.shape == (2, N_PROXY_LABELS) for z in logits)
    torch.stack(logits).sum().backward()
    assert model.backbone.features[0].weight.grad.abs().sum() > 0


def test_pretrained_backbone_is_cached_and_reused(tmp_path):
    first = _tiny([tmp_path])
    assert first.source.startswith("trained, cached at")
    assert {"mean_ap", "label_accuracy", "majority_accuracy", "final_loss"} <= set(first.scores)
    files = list(tmp_path.glob("vgg16-proxy-*.pt"))
    assert len(files) == 1
    second = _tiny([tmp_path])
    assert second.source == str(files[0])
    assert second.scores == first.scores
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)
    other = pretrained_backbone(ProxySpec(**{**TINY.__dict__, "steps": 3}), [tmp_path], n_eval=8)
    assert other.source.startswith("trained")  # another spec, another fingerprint: not the cached file
    assert len(list(tmp_path.glob("vgg16-proxy-*.pt"))) == 2


def test_corrupt_or_foreign_cache_file_is_a_miss(tmp_path):
    reference = _tiny([tmp_path / "clean"])
    path = next((tmp_path / "clean").glob("vgg16-proxy-*.pt"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / path.name).write_bytes(b"not a checkpoint at all")
    notes: list[str] = []
    again = _tiny([broken], notes)
    assert again.source.startswith("trained") and any("Ignored" in n for n in notes)
    assert all(torch.equal(reference.state[k], again.state[k]) for k in reference.state)  # deterministic retrain
    load_checkpoint(broken / path.name, fingerprint=TINY.fingerprint())  # rewritten with a valid file
    # right fingerprint, wrong contents (a backbone of another width): also a miss
    save_checkpoint(
        broken / path.name, {"backbone": {"features.0.weight": torch.zeros(1)}}, fingerprint=TINY.fingerprint()
    )
    notes.clear()
    assert _tiny([broken], notes).source.startswith("trained") and notes


def test_pretrained_backbone_loads_identically_into_ras_and_the_ablation(tmp_path):
    proxy = _tiny([tmp_path])
    with_ra = initial_model(0.0625, True, 11, proxy.state)
    without = initial_model(0.0625, False, 11, proxy.state)
    assert with_ra.use_reverse_attention and not without.use_reverse_attention
    a, b = with_ra.state_dict(), without.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key, value in proxy.state.items():
        assert torch.equal(with_ra.backbone.state_dict()[key], value)
    scratch = initial_model(0.0625, True, 11, None)
    assert not torch.equal(scratch.backbone.features[0].weight, with_ra.backbone.features[0].weight)
    torch.manual_seed(11)
    assert torch.equal(RAS(width=0.0625).backbone.features[0].weight, scratch.backbone.features[0].weight)
