"""The order-free RNN experiment body: data, the shared CNN + BR baseline, the two RNNs, metrics, figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.core.errors import DataError
from reprolab.core.plots import new_figure, save_figure
from reprolab.core.sweep import Sweep
from reprolab.orderfree.data import CanvasSplit, make_digit_canvases, read_coco_dataset, read_yolo_dataset
from reprolab.orderfree.decode import (
    DecodeResult,
    beam_search,
    exact_search,
    frequent_first_sequences,
    greedy_decode,
    sequence_loss,
    set_map_decode,
)
from reprolab.orderfree.experiment import OrderFreeConfig
from reprolab.orderfree.metrics import mean_average_precision, multilabel_scores, per_class_f1
from reprolab.orderfree.model import (
    AttentionLSTMDecoder,
    BinaryRelevanceHead,
    CNNRNNDecoder,
    ImageLabeller,
    ResNetBackbone,
    SequenceDecoder,
    build_image_labeller,
    load_torchvision_resnet,
)

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["build_backbone", "build_decoder", "run_orderfree"]

SCORE_KEYS = ("cp", "cr", "cf1", "op", "or", "of1")
# the sequence models: attention LSTM with a fixed frequent-first order, Wang et al.'s CNN-RNN (same order),
# and the order-free attention LSTM; "noatt" (attention_ablation): the order-free RNN without attention
RNN_MODELS = ("fixed", "cnnrnn", "orderfree")
ORDER_FREE = ("orderfree", "noatt")


def build_backbone(config: OrderFreeConfig) -> ResNetBackbone:
    in_channels = 3 if config.pretrained_path or config.data != "digits" else 1
    return ResNetBackbone(config.widths, config.blocks, in_channels=in_channels, stem=config.stem)


def build_decoder(config: OrderFreeConfig, channels: int, num_classes: int, name: str = "orderfree") -> SequenceDecoder:
    """The attention LSTM of Fig. 2 (``fixed``, ``orderfree``) or Wang et al.'s CNN-RNN (``cnnrnn``)."""
    if name == "cnnrnn":
        return CNNRNNDecoder(channels, num_classes, hidden=config.hidden, embed=config.hidden)
    return AttentionLSTMDecoder(
        channels, num_classes, hidden=config.hidden, embed=config.embed, attention_dim=config.attention_dim,
        attention=name != "noatt", label_embedding=config.label_embedding,
    )


def _prepare(images: Tensor, backbone: ResNetBackbone) -> Tensor:
    channels = backbone.conv1.in_channels
    return images.expand(-1, channels, -1, -1) if images.shape[1] != channels else images


@torch.no_grad()
def _features(backbone: ResNetBackbone, images: Tensor, device: torch.device, batch: int = 256) -> Tensor:
    backbone.eval()
    parts = [backbone(_prepare(images[i : i + batch].to(device), backbone)) for i in range(0, len(images), batch)]
    return torch.cat(parts)


# the frozen CNN's feature maps, by split: every consumer (BR, its refitted layer, the RNNs trained on frozen
# features) runs the same weights on the same images, so each split goes through the CNN once per run
FrozenFeatures = dict[str, Tensor]


def _frozen(
    cache: FrozenFeatures, split: str, backbone: ResNetBackbone, data: CanvasSplit, device: torch.device
) -> Tensor:
    """``split``'s feature maps under the trained, frozen shared CNN, computed on first use (same batches as
    :func:`_features`, so the values are those of a fresh pass). Callers must not modify the tensor in place."""
    if split not in cache:
        cache[split] = _features(backbone, data.images, device)
    return cache[split]


def load_data(config: OrderFreeConfig, ctx: RunContext) -> tuple[CanvasSplit, CanvasSplit]:
    """The digit canvases, or a user's COCO-format data (YOLO folders or instances JSON + images)."""
    if config.data == "digits":
        train, test = make_digit_canvases(
            config.n_train, config.n_test, canvas=config.canvas, max_digits=config.max_digits,
            partner_prob=config.partner_prob, scale_range=(config.scale_min, config.scale_max), seed=ctx.seed,
        )
        ctx.note(
            f"Data: {len(train)} train / {len(test)} test canvases ({config.canvas}x{config.canvas}) of 1-"
            f"{config.max_digits} sklearn digits; mean {float(train.targets.sum(1).mean()):.2f} labels per image."
        )
        return train, test
    size = config.image_size
    if config.data == "yolo":
        root = Path(config.data_root).expanduser()
        parts = [read_yolo_dataset(root, split, size=size, num_classes=config.num_classes)
                 for split in (config.train_split, config.test_split)]
        where = f"YOLO folders {root}/{{images,labels}}/{{{config.train_split},{config.test_split}}}"
    else:
        parts = []
        for annotations, images in ((config.train_annotations, config.train_images),
                                    (config.test_annotations, config.test_images)):
            x, y, _ = read_coco_dataset(Path(annotations).expanduser(), Path(images).expanduser(), size=size)
            parts.append((x, y))
        if parts[0][1].shape[1] != parts[1][1].shape[1]:
            raise DataError(
                f"{config.test_annotations}: {parts[1][1].shape[1]} categories, but the training JSON has "
                f"{parts[0][1].shape[1]}"
            )
        where = f"COCO instances {config.train_annotations} / {config.test_annotations}"
    (train_x, train_y), (test_x, test_y) = parts
    ctx.note(
        f"Data: {len(train_x)} train / {len(test_x)} test images from {where}, resized to {size}x{size} RGB; "
        f"{train_y.shape[1]} classes, mean {float(train_y.sum(1).mean()):.2f} labels per training image."
    )
    return CanvasSplit(train_x, train_y, []), CanvasSplit(test_x, test_y, [])


def run_orderfree(config: OrderFreeConfig, ctx: RunContext) -> dict[str, float]:
    train, test = load_data(config, ctx)
    sweep = Sweep(ctx)
    metrics: dict[str, float] = {}
    frozen: FrozenFeatures = {}
    br = _train_cnn(config, ctx, sweep, train, test, frozen)
    metrics.update(br["metrics"])
    backbone = build_backbone(config).to(ctx.device)
    backbone.load_state_dict(br["backbone"])
    class_f1 = {"BR": torch.tensor(br["class_f1"])}
    num_classes = train.targets.shape[1]
    if "head" in br:  # (absent from a checkpoint written before heads were kept)
        head = BinaryRelevanceHead(backbone.out_channels, num_classes).to(ctx.device)
        head.load_state_dict(br["head"])
        _save_model(config, ctx, "br", backbone, head, num_classes)
    decoders: dict[str, SequenceDecoder] = {}
    shared = backbone
    for name in RNN_MODELS + (("noatt",) if config.attention_ablation else ()):
        result = _train_rnn(config, ctx, sweep, name, shared, train, test, frozen)
        metrics.update(result["metrics"])
        if name != "noatt":
            class_f1[name] = torch.tensor(result["class_f1"])
        decoder = build_decoder(config, backbone.out_channels, train.targets.shape[1], name).to(ctx.device)
        decoder.load_state_dict(result["decoder"])
        decoders[name] = decoder
        used = shared
        if "backbone" in result:
            tuned = build_backbone(config).to(ctx.device)
            tuned.load_state_dict(result["backbone"])
            used = tuned
            if name == "orderfree":
                backbone = tuned
        _save_model(config, ctx, name, used, decoder, num_classes)
    _report(config, ctx, metrics, class_f1, train.targets.sum(dim=0))
    orderfree = decoders["orderfree"]
    assert isinstance(orderfree, AttentionLSTMDecoder)
    _plot_attention(config, ctx, backbone, orderfree, test)
    return metrics


# -- the shared CNN and the binary-relevance baseline ---------------------------------------------
def _train_cnn(
    config: OrderFreeConfig, ctx: RunContext, sweep: Sweep, train: CanvasSplit, test: CanvasSplit,
    frozen: FrozenFeatures,
) -> Any:
    unit = "cnn_br"
    if sweep.is_done(unit):
        return sweep.result(unit)
    torch.manual_seed(ctx.seed_for(unit, "init"))
    backbone = build_backbone(config)
    if config.pretrained_path:
        ignored = load_torchvision_resnet(backbone, config.pretrained_path)
        ctx.note(f"CNN initialised from {config.pretrained_path} (ignored keys: {', '.join(ignored) or 'none'}).")
    head = BinaryRelevanceHead(backbone.out_channels, train.targets.shape[1])
    model = nn.ModuleDict({"backbone": backbone, "head": head}).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.cnn_lr, foreach=True)
    generator = ctx.generator(unit, "train", device="cpu")

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        index = torch.randint(len(train), (config.cnn_batch_size,), generator=generator)
        images, targets = train.images[index].to(ctx.device), train.targets[index].to(ctx.device)
        logits = model["head"](model["backbone"](_prepare(images, backbone)))
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}

    sweep.train(unit, steps=config.cnn_steps, step_fn=step_fn, model=model, optimizer=optimizer, generator=generator,
                checkpoint_every=config.checkpoint_every, log_every=100)
    features = _frozen(frozen, "test", backbone, test, ctx.device)
    with torch.no_grad():
        probs = torch.sigmoid(model["head"](features)).cpu()
    predictions = (probs > config.threshold).float()
    scores = multilabel_scores(predictions, test.targets)
    metrics = {f"br_{key}": value for key, value in scores.items()}
    metrics["br_map"] = mean_average_precision(probs, test.targets)
    metrics.update(_refit_br_head(config, ctx, model["head"], train, features, test.targets,
                                  _frozen(frozen, "train", backbone, train, ctx.device)))
    ctx.log(unit=unit, **metrics)
    result = {
        "metrics": metrics,
        "class_f1": per_class_f1(predictions, test.targets).tolist(),
        "backbone": {key: value.cpu() for key, value in backbone.state_dict().items()},
        "head": {key: value.cpu() for key, value in model["head"].state_dict().items()},
    }
    return sweep.complete(unit, result)


def _save_model(
    config: OrderFreeConfig, ctx: RunContext, name: str, backbone: ResNetBackbone, head: nn.Module, num_classes: int
) -> None:
    """``models/<name>``: ``orderfree``, ``fixed``, ``cnnrnn``, ``noatt`` (CNN + sequence decoder) and ``br`` (CNN +
    binary-relevance head), each the CNN it predicts with and its head, rebuilt by ``build_image_labeller``."""
    backbone_kwargs = {"widths": list(config.widths), "blocks": list(config.blocks),
                       "in_channels": backbone.conv1.in_channels, "stem": config.stem}
    decoder_kwargs: dict[str, Any] = {}
    if name == "br":
        kind = "br"
    elif name == "cnnrnn":
        kind, decoder_kwargs = "cnnrnn", {"hidden": config.hidden, "embed": config.hidden}
    else:
        kind = "attention"
        decoder_kwargs = {"hidden": config.hidden, "embed": config.embed, "attention_dim": config.attention_dim,
                          "attention": name != "noatt", "label_embedding": config.label_embedding}
    kwargs = {"backbone": backbone_kwargs, "decoder": kind, "num_classes": num_classes,
              "decoder_kwargs": decoder_kwargs}
    meta = {"beam_width": config.beam_width, "max_labels": config.max_labels or None, "threshold": config.threshold,
            "input": "images B x C x H x W as the run's data (digit canvases: 1 channel, values in [0, 1])"}
    ctx.save_model(name, ImageLabeller(backbone, head), build=build_image_labeller, kwargs=kwargs, meta=meta)


def _refit_br_head(
    config: OrderFreeConfig, ctx: RunContext, head: nn.Module, train: CanvasSplit, test_features: Tensor,
    test_targets: Tensor, train_features: Tensor,
) -> dict[str, float]:
    """BR with as much head training as the RNNs get: the BR layer trained ``rnn_steps`` more steps on the
    frozen CNN features (``br_tuned_*``), so the BR comparison does not favour the RNNs' longer training."""
    pooled = train_features.mean(dim=(2, 3))
    tuned = BinaryRelevanceHead(train_features.shape[1], train.targets.shape[1]).to(ctx.device)
    tuned.load_state_dict(head.state_dict())
    optimizer = torch.optim.Adam(tuned.parameters(), lr=config.rnn_lr, foreach=True)
    generator = ctx.generator("cnn_br", "refit", device="cpu")
    for _ in range(config.rnn_steps):
        index = torch.randint(len(train), (config.rnn_batch_size,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(tuned.fc(pooled[index]), train.targets[index].to(ctx.device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        probs = torch.sigmoid(tuned(test_features)).cpu()
    scores = multilabel_scores((probs > config.threshold).float(), test_targets)
    metrics = {f"br_tuned_{key}": value for key, value in scores.items()}
    metrics["br_tuned_map"] = mean_average_precision(probs, test_targets)
    return metrics


# -- the attention LSTMs: order-free and fixed frequent-first order --------------------------------
def _train_rnn(
    config: OrderFreeConfig,
    ctx: RunContext,
    sweep: Sweep,
    name: str,
    shared: ResNetBackbone,
    train: CanvasSplit,
    test: CanvasSplit,
    frozen: FrozenFeatures,
) -> Any:
    unit = f"rnn_{name}"
    if sweep.is_done(unit):
        return sweep.result(unit)
    num_classes = train.targets.shape[1]
    torch.manual_seed(ctx.seed_for(unit, "init"))
    decoder = build_decoder(config, shared.out_channels, num_classes, name).to(ctx.device)
    backbone = build_backbone(config).to(ctx.device)
    backbone.load_state_dict(shared.state_dict())
    parts: dict[str, nn.Module] = {"decoder": decoder}
    if config.finetune_backbone:
        parts["backbone"] = backbone
        cached = None
    else:
        cached = _frozen(frozen, "train", shared, train, ctx.device)
    model = nn.ModuleDict(parts)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.rnn_lr, foreach=True)
    frequency = train.targets.sum(dim=0)
    order = "free" if name in ORDER_FREE else "fixed"
    sequences = frequent_first_sequences(train.targets, frequency, decoder.end) if order == "fixed" else None
    prob_weight = 0.0 if name == "cnnrnn" else config.prob_weight  # Wang et al.'s CNN-RNN has no v_prob
    generator = ctx.generator(unit, "train", device="cpu")

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        index = torch.randint(len(train), (config.rnn_batch_size,), generator=generator)
        targets = train.targets[index].to(ctx.device)
        # frozen CNN: the cached features; the batch's images are gathered only for a fine-tuned one
        features = cached[index] if cached is not None else backbone(_prepare(train.images[index].to(ctx.device),
                                                                                backbone))
        batch_sequences = None if sequences is None else sequences[index].to(ctx.device)
        loss, values = sequence_loss(decoder, features, targets, order=order, sequences=batch_sequences,
                                     prob_weight=prob_weight)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0, foreach=True)
        optimizer.step()
        return values

    sweep.train(unit, steps=config.rnn_steps, step_fn=step_fn, model=model, optimizer=optimizer, generator=generator,
                checkpoint_every=config.checkpoint_every, log_every=100)
    decoder.eval()
    if config.finetune_backbone:
        features = _features(backbone, test.images, ctx.device)
    else:
        features = _frozen(frozen, "test", shared, test, ctx.device)
    max_labels = config.max_labels or None
    beam_result = beam_search(decoder, features, width=config.beam_width, max_labels=max_labels)
    greedy_result = greedy_decode(decoder, features, max_labels=max_labels)
    beam, greedy = beam_result.labels.cpu(), greedy_result.labels.cpu()
    metrics: dict[str, float] = {}
    for decoding, predictions in (("beam", beam), ("greedy", greedy)):
        metrics.update({f"{name}_{decoding}_{k}": v for k, v in multilabel_scores(predictions, test.targets).items()})
    metrics[f"{name}_beam_greedy_disagree"] = 100.0 * float((beam != greedy).any(dim=1).float().mean())
    if name != "noatt":  # the search diagnostics concern the models of the beam-vs-greedy analysis
        metrics.update(
            _search_diagnostics(name, decoder, features, beam_result, greedy_result, test.targets, max_labels)
        )
    if config.set_map_eps > 0:
        set_map, certified = set_map_decode(decoder, features, eps=config.set_map_eps, max_labels=max_labels)
        scores = multilabel_scores(set_map.labels.cpu(), test.targets)
        metrics.update({f"{name}_setmap_{key}": scores[key] for key in ("cf1", "of1")})
        metrics[f"{name}_setmap_certified"] = 100.0 * float(certified.float().mean())
    if name != "cnnrnn":
        with torch.no_grad():
            v_prob = torch.sigmoid(decoder.encode(features).prob_logits).cpu()
        metrics[f"{name}_vprob_map"] = mean_average_precision(v_prob, test.targets)
    ctx.log(unit=unit, **metrics)
    result: dict[str, Any] = {
        "metrics": metrics,
        "class_f1": per_class_f1(beam, test.targets).tolist(),
        "decoder": {key: value.cpu() for key, value in decoder.state_dict().items()},
    }
    if config.finetune_backbone:
        result["backbone"] = {key: value.cpu() for key, value in backbone.state_dict().items()}
    return sweep.complete(unit, result)


def _search_diagnostics(
    name: str, decoder: SequenceDecoder, features: Tensor, beam: DecodeResult, greedy: DecodeResult, targets: Tensor,
    max_labels: int | None,
) -> dict[str, float]:
    """How far greedy decoding and beam search are from the exact most probable sequence.

    ``{name}_beam_is_map`` / ``{name}_greedy_is_map``: % of test images on which the decoding returns the
    exact argmax sequence (:func:`exact_search`, seeded with beam search's answer); ``{name}_map_*``: the
    scores of exact MAP decoding, an upper bound on what any search over the paper's sequence objective
    can give; ``{name}_greedy_p_over_half``: % of images whose greedy sequence has probability > 0.5, for
    which greedy's answer is provably the argmax.
    """
    try:
        exact = exact_search(decoder, features, max_labels=max_labels, incumbent=beam)
    except RuntimeError:  # too flat a model to search exhaustively: report nothing rather than fail
        return {}
    total = max(len(exact.sequences), 1)
    metrics = {
        f"{name}_beam_is_map": 100.0 * sum(a == b for a, b in zip(beam.sequences, exact.sequences)) / total,
        f"{name}_greedy_is_map": 100.0 * sum(a == b for a, b in zip(greedy.sequences, exact.sequences)) / total,
    }
    if greedy.scores is not None:
        metrics[f"{name}_greedy_p_over_half"] = 100.0 * float((greedy.scores.exp() > 0.5).float().mean())
    scores = multilabel_scores(exact.labels.cpu(), targets)
    metrics.update({f"{name}_map_{key}": scores[key] for key in ("cf1", "of1")})
    return metrics


# -- report -----------------------------------------------------------------------------------------
def _report(
    config: OrderFreeConfig, ctx: RunContext, metrics: dict[str, float], class_f1: dict[str, Tensor],
    frequency: Tensor,
) -> None:
    rows = [
        ["BR (same CNN, sigmoid > threshold)", *[metrics[f"br_{k}"] for k in SCORE_KEYS], metrics["br_map"]],
    ]
    for name, label in (("cnnrnn", "CNN-RNN of Wang et al., frequent-first"),
                        ("fixed", "attention LSTM, frequent-first order"), ("orderfree", "order-free RNN"),
                        ("noatt", "order-free RNN without attention")):
        if f"{name}_beam_cf1" not in metrics:
            continue
        for decoding in ("greedy", "beam"):
            width = f" (width {config.beam_width})" if decoding == "beam" else ""
            rows.append([f"{label}, {decoding}{width}", *[metrics[f"{name}_{decoding}_{k}"] for k in SCORE_KEYS],
                         metrics.get(f"{name}_vprob_map", float("nan"))])
    rows.append(["BR, layer trained rnn_steps more on the frozen CNN", *[metrics[f"br_tuned_{k}"] for k in SCORE_KEYS],
                 metrics["br_tuned_map"]])
    rows = [[row[0], *[round(float(v), 2) for v in row[1:]]] for row in rows]
    ctx.add_table("Test metrics (%) on the digit canvases; mAP of the RNNs is that of v_prob",
                  ["model", "C-P", "C-R", "C-F1", "O-P", "O-R", "O-F1", "mAP"], rows)
    for key in ("cf1", "of1"):
        metrics[f"orderfree_minus_br_{key}"] = metrics[f"orderfree_beam_{key}"] - metrics[f"br_{key}"]
        metrics[f"orderfree_minus_br_tuned_{key}"] = metrics[f"orderfree_beam_{key}"] - metrics[f"br_tuned_{key}"]
    ctx.note(
        "Order-free RNN vs binary relevance (reported whichever way it falls): C-F1 "
        f"{metrics['orderfree_minus_br_cf1']:+.2f}, O-F1 {metrics['orderfree_minus_br_of1']:+.2f} points; against BR "
        f"with its layer trained as long as the RNNs: C-F1 {metrics['orderfree_minus_br_tuned_cf1']:+.2f}, "
        f"O-F1 {metrics['orderfree_minus_br_tuned_of1']:+.2f}."
    )
    ctx.note(
        f"Beam search (width {config.beam_width}) and greedy decoding give different label sets on "
        f"{metrics['orderfree_beam_greedy_disagree']:.1f}% of test images for the order-free RNN, "
        f"{metrics['fixed_beam_greedy_disagree']:.1f}% for the fixed-order attention LSTM and "
        f"{metrics['cnnrnn_beam_greedy_disagree']:.1f}% for Wang et al.'s CNN-RNN."
    )
    if "orderfree_beam_is_map" in metrics:
        ctx.note(
            "Search diagnostics (order-free RNN): beam search returns the exact most probable label sequence on "
            f"{metrics['orderfree_beam_is_map']:.1f}% of test images, greedy decoding on "
            f"{metrics['orderfree_greedy_is_map']:.1f}% ({metrics['orderfree_greedy_p_over_half']:.1f}% of greedy "
            "sequences have probability > 0.5 and are therefore the argmax); exact MAP decoding gives C-F1 "
            f"{metrics['orderfree_map_cf1']:.2f} / O-F1 {metrics['orderfree_map_of1']:.2f} vs greedy "
            f"{metrics['orderfree_greedy_cf1']:.2f} / {metrics['orderfree_greedy_of1']:.2f}: no search over the "
            "sequence probability can do better than exact MAP."
        )
    if "orderfree_setmap_cf1" in metrics:
        ctx.note(
            "Most probable label set (orderings summed; certified exact on "
            f"{metrics['orderfree_setmap_certified']:.1f}% of images): C-F1 {metrics['orderfree_setmap_cf1']:.2f} / "
            f"O-F1 {metrics['orderfree_setmap_of1']:.2f} for the order-free RNN."
        )
    fig, ax = new_figure(size=(7.0, 3.6))
    width = 0.8 / len(class_f1)
    labels = {"BR": "BR", "fixed": "attention, fixed order (beam)", "cnnrnn": "CNN-RNN, Wang et al. (beam)",
              "orderfree": "order-free (beam)"}
    order = torch.argsort(-frequency, stable=True)  # bars from the most to the least frequent training label
    for offset, (name, values) in enumerate(class_f1.items()):
        positions = [k + (offset - (len(class_f1) - 1) / 2) * width for k in range(len(values))]
        ax.bar(positions, values[order].tolist(), width=width, label=labels[name])
    ax.set_xticks(range(len(order)), [str(int(k)) for k in order])
    ax.set_xlabel("label (the digit, for canvases), from the most to the least frequent in training")
    ax.set_ylabel("test F1 (%)")
    ax.set_ylim(0, 128)  # headroom above 100 % for the legend, so it hides no bar
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    ax.set_title("Per-class F1")
    save_figure(fig, ctx.figure_path("per_class_f1"))


def _plot_attention(
    config: OrderFreeConfig, ctx: RunContext, backbone: ResNetBackbone, decoder: AttentionLSTMDecoder, test: CanvasSplit
) -> None:
    count = min(config.attention_images, len(test))
    if count == 0:
        return
    images = test.images[:count]
    features = _features(backbone, images, ctx.device)
    result = greedy_decode(decoder, features, max_labels=config.max_labels or None, keep_attention=True)
    assert result.attention is not None
    height, width = features.shape[2:]
    steps = max(1, max(len(s) for s in result.sequences))
    fig, axes = new_figure(ncols=steps + 1, nrows=count, size=(1.8, 1.8))
    axes = axes.reshape(count, steps + 1) if hasattr(axes, "reshape") else [[axes]]
    for row in range(count):
        truth = sorted(int(k) for k in torch.nonzero(test.targets[row]).squeeze(1).tolist())
        picture = images[row].permute(1, 2, 0).numpy() if images.shape[1] == 3 else images[row, 0].numpy()
        axes[row][0].imshow(picture, cmap="gray")
        axes[row][0].set_title(f"truth {truth}", fontsize=7)
        for step in range(steps):
            ax = axes[row][step + 1]
            ax.imshow(picture, cmap="gray")
            if step < len(result.sequences[row]):
                weights = result.attention[step][row].reshape(1, 1, height, width)
                upsampled = F.interpolate(weights, size=images.shape[2:], mode="bilinear", align_corners=False)
                ax.imshow(upsampled[0, 0].numpy(), cmap="jet", alpha=0.5)
                ax.set_title(f"step {step + 1}: {result.sequences[row][step]}", fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    save_figure(fig, ctx.figure_path("attention_maps"))
