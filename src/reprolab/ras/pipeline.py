"""The RAS experiment body: data, RAS and ablation training, metrics, size/speed and figures."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from reprolab.core.checkpoint import read_state_dict
from reprolab.core.data import cache_home
from reprolab.core.errors import DataError, DatasetMissingError
from reprolab.core.plots import new_figure, save_figure
from reprolab.core.sweep import Sweep
from reprolab.ras.data import SaliencySet, folder_names, generate_scenes, read_saliency_folder, split_names
from reprolab.ras.experiment import PAPER_FPS, PAPER_SIZE_MB, RASConfig
from reprolab.ras.metrics import SaliencyScores, evaluate_maps
from reprolab.ras.model import RAS, load_vgg16_backbone
from reprolab.ras.pretrain import ProxySpec, pretrained_backbone
from reprolab.ras.train import measure_fps, predict, train_ras

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

logger = logging.getLogger(__name__)

__all__ = [
    "best_coarse_confidence",
    "backbone_init",
    "initial_model",
    "map_confidence",
    "parameter_count",
    "region_errors",
    "run_ras",
]

VARIANTS = (("ras", True), ("no_ra", False))
METRIC_NAMES = ("mae", "max_f", "mean_f", "s_measure", "max_e", "mean_e")


def parameter_count(width: float = 1.0) -> int:
    """Parameters of RAS at ``width`` (counted on a CPU instance of the network)."""
    return sum(p.numel() for p in RAS(width=width).parameters())


def run_ras(config: RASConfig, ctx: RunContext) -> dict[str, float]:
    sweep = Sweep(ctx)
    train, test = _load_data(config, ctx)
    metrics: dict[str, float] = {}
    scores: dict[str, SaliencyScores] = {}
    models: dict[str, RAS] = {}
    saved = _saved_run(config, ctx)
    if config.backbone_init == "imagenet" and not config.pretrained_vgg16 and saved is None:
        config = dataclasses.replace(config, input_norm="imagenet")  # the proxy backbone's normalisation
    backbone = None if saved is not None else backbone_init(config, ctx, metrics)
    variants = VARIANTS if config.ablation else VARIANTS[:1]
    if saved is not None:
        variants = tuple(v for v in variants if (saved / f"{v[0]}_seed0.pt").is_file())
    for prefix, use_ra in variants:
        per_seed, diagnostics = [], []
        for seed_index in range(config.seeds):
            if saved is not None:
                model = _saved_model(config, ctx, saved, prefix, use_ra, seed_index)
            else:
                model = _trained_model(config, ctx, sweep, train, prefix, use_ra, seed_index, backbone)
            seed_scores, seed_diagnostics = _evaluate(model, test, ctx, config.coarse_oracle, config.input_norm)
            per_seed.append(seed_scores)
            diagnostics.append(seed_diagnostics)
            if seed_index == 0:
                models[prefix] = model
        scores[prefix] = per_seed[0]
        for key in diagnostics[0]:
            metrics[f"{prefix}_{key}"] = float(np.mean([d[key] for d in diagnostics]))
        for name in METRIC_NAMES:
            values = [getattr(s, name) for s in per_seed]
            metrics[f"{prefix}_{name}"] = float(np.mean(values))
            if config.seeds > 1:
                metrics[f"{prefix}_{name}_std"] = float(np.std(values, ddof=1))
    metrics.update(_size_and_speed(config, ctx, models["ras"]))
    _report(config, ctx, metrics, scores, models, test)
    return metrics


def _saved_run(config: RASConfig, ctx: RunContext) -> Path | None:
    """``evaluate_run``'s models folder (evaluate-only mode), else None."""
    if not config.evaluate_run:
        return None
    folder = Path(config.evaluate_run).expanduser() / "models"
    ctx.note(f"Evaluate-only: the models saved in {folder} are scored on this run's test data; nothing is trained.")
    return folder


def _saved_model(config: RASConfig, ctx: RunContext, folder: Path, prefix: str, use_ra: bool, seed: int) -> RAS:
    path = folder / f"{prefix}_seed{seed}.pt"
    if not path.is_file():
        raise DataError(f"{path}: no saved model for seed {seed} (the saved run has fewer seeds; set seeds=)")
    state = read_state_dict(path, what="RAS state dict")
    model = RAS(width=config.width, reverse_attention=use_ra)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise DataError(f"{path}: does not fit a RAS network of width {config.width:g} ({first})") from err
    return model.to(ctx.device).eval()


def _resolve(path: str, ctx: RunContext) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else ctx.data_home / candidate


def _load_data(config: RASConfig, ctx: RunContext) -> tuple[SaliencySet, SaliencySet]:
    if config.data == "generated":
        train = generate_scenes(config.n_train, config.image_size, ctx.seed_for("data", "train"), config.scene_style)
        test = generate_scenes(config.n_test, config.image_size, ctx.seed_for("data", "test"), config.scene_style)
        ctx.note(
            f"Data: {config.n_train} training and {config.n_test} test scenes generated at "
            f"{config.image_size}x{config.image_size} (salient objects, clutter and distractors; exact masks; "
            f"style {config.scene_style})."
        )
        return train, test
    keys = ("train_images", "train_masks") + (() if config.split else ("test_images", "test_masks"))
    folders = [_resolve(getattr(config, key), ctx) for key in keys]
    for folder in folders:
        if not folder.is_dir():
            raise DatasetMissingError(
                f"{folder}: saliency folder not found. Expected an image folder and a mask folder with matching "
                "names (DUTS, ECSSD, MSRA-B, HKU-IS, DUT-OMRON as distributed); set REPROLAB_DATA or absolute paths."
            )
    size = config.image_size
    if config.split:
        train_names, test_names = split_names(folder_names(folders[0]), config.split)
        train = read_saliency_folder(folders[0], folders[1], size=size, limit=config.n_train, names=train_names)
        test = read_saliency_folder(folders[0], folders[1], size=size, limit=config.n_test, names=test_names)
        source = f"{folders[0]} split by {config.split!r} into {len(train_names)}/{len(test_names)} names"
    else:
        train = read_saliency_folder(folders[0], folders[1], size=size, limit=config.n_train)
        test = read_saliency_folder(folders[2], folders[3], size=size, limit=config.n_test)
        source = f"{folders[0]} (train) and {folders[2]} (test)"
    resized = len(train.resized_masks) + len(test.resized_masks)
    ctx.note(
        f"Data: {len(train)} training and {len(test)} test pairs from {source}; {resized} mask(s) had another size "
        "than their image and were resized to it (nearest neighbour)."
    )
    return train, test


def backbone_init(config: RASConfig, ctx: RunContext, metrics: dict[str, float]) -> dict[str, torch.Tensor] | None:
    """The backbone weights both variants start from: a VGG-16 file (``pretrained_vgg16``), the
    proxy-pretrained backbone (``backbone_init=proxy``, cached) or ``None`` (random, ``scratch``).
    Proxy scores go into ``metrics`` as ``pretrain_*``."""
    metrics["imagenet_backbone"] = float(bool(config.pretrained_vgg16))
    if config.pretrained_vgg16:
        path = _resolve(config.pretrained_vgg16, ctx)
        probe = RAS(width=config.width)
        load_vgg16_backbone(probe, path)  # validates the file (DataError naming it)
        ctx.note(f"Backbone: VGG-16 weights from {path} (both variants).")
        return {k: v.detach().clone() for k, v in probe.backbone.state_dict().items()}
    if config.backbone_init == "imagenet":
        message = (
            "FALLBACK: backbone_init=imagenet (the paper's initialisation) but no pretrained_vgg16 file was given, "
            "so this run uses the proxy-pretrained stand-in backbone with imagenet input normalisation instead of "
            "the preset's; metric imagenet_backbone=0. Pass pretrained_vgg16=<VGG-16 file> "
            "for the paper's setting."
        )
        logger.warning(message)
        ctx.note(message)
        return _proxy_backbone(config, ctx, metrics)
    if config.backbone_init == "scratch":
        ctx.note("Backbone: random initialisation (trained from scratch; no pretraining).")
        return None
    return _proxy_backbone(config, ctx, metrics)


def _proxy_backbone(config: RASConfig, ctx: RunContext, metrics: dict[str, float]) -> dict[str, torch.Tensor]:
    spec = ProxySpec(
        width=config.width,
        size=config.pretrain_size,
        n_images=config.pretrain_images,
        steps=config.pretrain_steps,
        batch_size=config.pretrain_batch,
        lr=config.pretrain_lr,
        seed=config.pretrain_seed,
    )
    proxy = pretrained_backbone(spec, [cache_home() / "ras", ctx.out_dir / "checkpoints"], note=ctx.note)
    for key, value in proxy.scores.items():
        metrics[f"pretrain_{key}"] = value
    scores = proxy.scores
    ctx.note(
        f"Backbone: VGG-16 convolutions (width {config.width:g}) pretrained on the proxy task (which hues, "
        f"shapes and stripes are present; {spec.steps} steps on {spec.n_images} generated scenes), the stand-in "
        f"for ImageNet initialisation; source: {proxy.source}. Held-out proxy mAP "
        f"{scores.get('mean_ap', float('nan')):.3f}, label accuracy {scores.get('label_accuracy', float('nan')):.3f} "
        f"(majority {scores.get('majority_accuracy', float('nan')):.3f}). Both variants start from it."
    )
    return proxy.state


def initial_model(width: float, use_ra: bool, seed: int, backbone: dict[str, torch.Tensor] | None) -> RAS:
    """The network before saliency training: heads drawn from ``seed``, the backbone from ``backbone``
    (else drawn from ``seed`` too). RAS and the ablation get identical weights for the same seed and
    backbone (the RA switch adds no parameters), as in the paper's ablation from one ImageNet init."""
    torch.manual_seed(seed)
    model = RAS(width=width, reverse_attention=use_ra)
    if backbone is not None:
        load_vgg16_backbone(model, backbone)
    return model


def _trained_model(
    config: RASConfig,
    ctx: RunContext,
    sweep: Sweep,
    train: SaliencySet,
    prefix: str,
    use_ra: bool,
    seed_index: int,
    backbone: dict[str, torch.Tensor] | None = None,
) -> RAS:
    unit = f"{prefix}/seed{seed_index}"
    if sweep.is_done(unit):
        model = RAS(width=config.width, reverse_attention=use_ra).to(ctx.device)
        model.load_state_dict(sweep.result(unit)["state"])
        _save_model(ctx, prefix, seed_index, model, config.width, use_ra)
        return model.eval()
    model = initial_model(config.width, use_ra, ctx.seed_for("init", seed_index), backbone).to(ctx.device)
    train_ras(
        sweep,
        unit,
        model,
        train,
        steps=config.steps,
        batch_size=config.batch_size,
        recipe=config.recipe(),
        generator=ctx.generator("train", seed_index, device="cpu"),
        device=ctx.device,
        checkpoint_every=config.checkpoint_every,
        coarse_oracle=config.coarse_oracle,
    )
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    sweep.complete(unit, {"state": state})
    _save_model(ctx, prefix, seed_index, model, config.width, use_ra)
    return model.eval()


def _save_model(ctx: RunContext, prefix: str, seed_index: int, model: RAS, width: float, use_ra: bool) -> None:
    """``models/<variant>_seed<i>``: safetensors + card (``reprolab.load_run(dir).model("ras_seed0")``, built by
    :class:`RAS`), and the same weights as a plain state dict ``.pt``, read back by ``evaluate_run``."""
    name = f"{prefix}_seed{seed_index}"
    ctx.save_model(name, model, build=RAS, kwargs={"width": width, "reverse_attention": use_ra})
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    torch.save(state, ctx.out_dir / "models" / f"{name}.pt")


def _evaluate(
    model: RAS, data: SaliencySet, ctx: RunContext, coarse_oracle: float = 0.0, input_norm: str = "imagenet"
) -> tuple[SaliencyScores, dict[str, float]]:
    outputs = predict(
        model, data.images, device=ctx.device, masks=data.masks, coarse_oracle=coarse_oracle, input_norm=input_norm
    )
    maps = torch.cat([torch.sigmoid(o.logits) for o in outputs])
    coarse = torch.cat([torch.sigmoid(o.upsampled[-1]) for o in outputs])  # S_6, the global prediction
    # diagnostics, named as metrics: region MAEs (final and global map) and the deep maps' confidence
    diagnostics = {f"mae_{k}": v for k, v in region_errors(maps, data.masks).items()}
    diagnostics |= {f"mae_coarse_{k}": v for k, v in region_errors(coarse, data.masks).items()}
    diagnostics["mae_coarse"] = float((coarse - data.masks).abs().mean())
    side5 = torch.cat([torch.sigmoid(o.upsampled[-2]) for o in outputs])  # S_5, the first refined map
    for name, probs in (("coarse", coarse), ("s5", side5)):
        diagnostics |= {f"{name}_{k}": v for k, v in map_confidence(probs, data.masks).items()}
    return evaluate_maps(list(maps.numpy()), list(data.masks.numpy())), diagnostics


def map_confidence(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Mean predicted probability inside the objects (``p_in``, over every mask pixel) and outside them
    (``p_out``). For the global map S_6 this is the confidence that reverse attention (Eq. 1) turns into
    side-feature weights ``1 - p``: the paper's premise is ``p_in`` near 1 (issue 9 diagnosis)."""
    inside = masks > 0.5
    p_in = float(maps[inside].mean()) if inside.any() else float("nan")
    p_out = float(maps[~inside].mean()) if (~inside).any() else float("nan")
    return {"p_in": p_in, "p_out": p_out}


def best_coarse_confidence(masks: torch.Tensor, grid: int, *, steps: int = 400, lr: float = 0.2) -> dict[str, float]:
    """The most confident coarse map any backbone could give at a ``grid`` x ``grid`` resolution (issue 9
    diagnostic): per image, the grid of logits whose bilinear upsampling to the mask size minimises the
    BCE against the mask (what deep supervision, Eq. 3, asks of S_6), fitted by Adam. Returns its
    :func:`map_confidence`. With ``grid`` = the S_6 size (input / 32) this bounds the learned S_6."""
    logits = torch.zeros(masks.shape[0], 1, grid, grid, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    size = tuple(masks.shape[-2:])

    def upsample() -> torch.Tensor:
        return torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(upsample(), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return map_confidence(torch.sigmoid(upsample()), masks)


def region_errors(maps: torch.Tensor, masks: torch.Tensor, band: int = 2) -> dict[str, float]:
    """Mean absolute error inside objects (mask eroded by ``band`` px), on the boundary band (within
    ``band`` px of an edge) and on the background (complement of the dilated mask). Used to locate
    where reverse attention helps or hurts: it erases side features where the deeper map is salient."""
    kernel = 2 * band + 1
    dilated = torch.nn.functional.max_pool2d(masks, kernel, stride=1, padding=band)
    eroded = 1 - torch.nn.functional.max_pool2d(1 - masks, kernel, stride=1, padding=band)
    error = (maps - masks).abs()
    regions = {"interior": eroded > 0.5, "boundary": (dilated - eroded) > 0.5, "background": dilated < 0.5}
    return {name: float(error[where].mean()) if where.any() else 0.0 for name, where in regions.items()}


def _size_and_speed(config: RASConfig, ctx: RunContext, model: RAS) -> dict[str, float]:
    full = parameter_count(1.0)
    used = sum(p.numel() for p in model.parameters())
    metrics = {
        "full_width_params": float(full),
        "full_width_size_mb": full * 4 / 1e6,
        "full_width_size_mib": full * 4 / 2**20,
        "params": float(used),
        "size_mb": used * 4 / 1e6,
        "fps_352": measure_fps(model, size=config.fps_size, repeats=config.fps_repeats, device=ctx.device),
    }
    threads = torch.get_num_threads()
    rows = [
        ["paper (ECCV 2018)", 1.0, "", f"{PAPER_SIZE_MB:g}", f"{PAPER_FPS:g} (GPU)"],
        ["ours, full width", 1.0, f"{full:,}", f"{metrics['full_width_size_mb']:.2f}", ""],
        [
            "ours, width used",
            config.width,
            f"{used:,}",
            f"{metrics['size_mb']:.3f}",
            f"{metrics['fps_352']:.1f} ({ctx.device.type}, {threads} thread(s))",
        ],
    ]
    if config.full_width_fps:
        full_model = RAS(width=1.0).to(ctx.device)
        metrics["full_width_fps_352"] = measure_fps(
            full_model, size=config.fps_size, repeats=config.fps_repeats, device=ctx.device
        )
        rows[1][4] = f"{metrics['full_width_fps_352']:.2f} ({ctx.device.type}, {threads} thread(s))"
    ctx.add_table(
        f"Model size (float32) and speed at {config.fps_size}x{config.fps_size}, batch 1",
        ["model", "width", "parameters", "MB", "FPS"],
        rows,
    )
    return metrics


def _report(
    config: RASConfig,
    ctx: RunContext,
    metrics: dict[str, float],
    scores: dict[str, SaliencyScores],
    models: dict[str, RAS],
    test: SaliencySet,
) -> None:
    labels = {"ras": "RAS (reverse attention)", "no_ra": "without reverse attention"}
    rows = [[labels[p], *[f"{metrics[f'{p}_{n}']:.4f}" for n in METRIC_NAMES]] for p in scores]
    ctx.add_table(
        f"Test scores ({len(test)} images, mean over {config.seeds} seed(s))",
        ["model", "MAE", "max-F", "mean-F", "S-measure", "max-E", "mean-E"],
        rows,
    )
    regions = ("interior", "boundary", "background")
    ctx.add_table(
        "Where the errors are: MAE inside objects (eroded 2 px), on the 2-px boundary band, on the background",
        ["model", *regions],
        [[labels[p], *[f"{metrics[f'{p}_mae_{r}']:.4f}" for r in regions]] for p in scores],
    )
    ctx.add_table(
        "The coarse (global) prediction S_6, upsampled: MAE overall and by region (what RA conditions on)",
        ["model", "all", *regions],
        [
            [labels[p], *[f"{metrics[f'{p}_mae_{r}']:.4f}" for r in ("coarse", *[f"coarse_{r}" for r in regions])]]
            for p in scores
        ],
    )
    ctx.add_table(
        "Confidence of the deep maps: mean probability inside / outside the objects (RA weights the next "
        "side by 1 - p; the paper's premise is a coarse map confident inside objects)",
        ["model", "S_6 p_in", "S_6 p_out", "S_5 p_in", "S_5 p_out"],
        [
            [labels[p], *[f"{metrics[f'{p}_{m}_{k}']:.3f}" for m in ("coarse", "s5") for k in ("p_in", "p_out")]]
            for p in scores
        ],
    )
    if config.coarse_oracle > 0:
        ctx.note(
            f"DIAGNOSTIC RUN (coarse_oracle={config.coarse_oracle:g}): S_6 is the blurred ground-truth mask at "
            f"+-{config.coarse_oracle:g} logits in training and test, for both variants; the scores measure the "
            "top-down refinement given a confident coarse map, not saliency detection."
        )
    if "no_ra" in scores and metrics["ras_mae"] >= metrics["no_ra_mae"]:
        init = "VGG-16 file" if config.pretrained_vgg16 else config.backbone_init
        ctx.note(
            "Reverse attention did not lower the MAE here. It erases side features where the deeper map is "
            "salient, so object interiors rely on the coarse prediction; compare the interior/boundary/background "
            f"errors and the deep maps' confidence above (S_6 mean probability inside objects: "
            f"{metrics['ras_coarse_p_in']:.2f}) and "
            f"docs/notes/ras.md#why-the-reverse-attention-claims-fail-in-miniature (backbone: {init}; saliency "
            "decidable from local colour)."
        )
    _plot_pr(ctx, scores, labels)
    _plot_grid(config, ctx, models, test)


def _plot_pr(ctx: RunContext, scores: dict[str, SaliencyScores], labels: dict[str, str]) -> None:
    fig, axes = new_figure(2, 1, size=(4.5, 3.8))
    thresholds = np.arange(256)
    for prefix, score in scores.items():
        axes[0, 0].plot(score.recall, score.precision, label=labels[prefix])
        axes[0, 1].plot(thresholds, score.f_curve, label=labels[prefix])
    axes[0, 0].set_xlabel("recall")
    axes[0, 0].set_ylabel("precision")
    axes[0, 0].set_title("precision-recall (256 thresholds)")
    axes[0, 1].set_xlabel("threshold (0-255)")
    axes[0, 1].set_ylabel("F-measure (beta^2 = 0.3)")
    axes[0, 1].set_title("F-measure by threshold")
    for ax in axes[0]:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    save_figure(fig, ctx.figure_path("pr_curves"))


def _plot_grid(config: RASConfig, ctx: RunContext, models: dict[str, RAS], test: SaliencySet) -> None:
    count = min(config.figure_examples, len(test))
    if count < 1:
        return
    images, masks, oracle = test.images[:count], test.masks[:count], config.coarse_oracle
    norm = config.input_norm
    out = predict(models["ras"], images, device=ctx.device, masks=masks, coarse_oracle=oracle, input_norm=norm)[0]
    ablation = None
    if "no_ra" in models:
        ablation = predict(
            models["no_ra"], images, device=ctx.device, masks=masks, coarse_oracle=oracle, input_norm=norm
        )[0]
    size = test.images.shape[-2:]
    up = [torch.sigmoid(u) for u in out.upsampled]  # S_1 .. S_6 at the input size
    attention = [torch.nn.functional.interpolate(a, size=size, mode="nearest") for a in out.attention]
    columns = [("input", None), ("ground truth", None)]
    columns += [(f"S{i} (side)", up[i - 1]) for i in range(6, 1, -1)]
    columns += [("S1 = final", up[0])]
    columns += [(f"RA A{i}", attention[i - 1]) for i in (5, 3, 1)]
    if ablation is not None:
        columns.append(("final, no RA", torch.sigmoid(ablation.upsampled[0])))
    fig, axes = new_figure(len(columns), count, size=(1.35, 1.35))
    axes = np.asarray(axes).reshape(count, len(columns))
    for row in range(count):
        for col, (title, maps) in enumerate(columns):
            ax = axes[row, col]
            if col == 0:
                ax.imshow(test.images[row].permute(1, 2, 0).numpy())
            elif col == 1:
                ax.imshow(test.masks[row, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                cmap = "magma" if title.startswith("RA") else "gray"
                ax.imshow(maps[row, 0].numpy(), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=7)
    save_figure(fig, ctx.figure_path("side_outputs_grid"))
