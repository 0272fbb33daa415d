"""The CoCoOp experiment body: mini-CLIP pretraining (cached), base-to-new protocol, shift, figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from reprolab.cocoop.data import ShapesWorld, WordTokenizer, base_new_split
from reprolab.cocoop.experiment import METHODS, CoCoOpConfig, harmonic_mean, zero_shot_template
from reprolab.cocoop.model import (
    CoCoOpPromptLearner,
    CoOpPromptLearner,
    HFTokenizer,
    PromptClassifier,
    build_mini_clip,
    freeze,
    image_features,
    saved_prompt_classifier,
)
from reprolab.cocoop.train import accuracy, pretrain_clip, train_prompts, zero_shot_accuracy
from reprolab.core.checkpoint import config_fingerprint, load_cached, save_cached
from reprolab.core.config import ConfigError
from reprolab.core.data import cache_home
from reprolab.core.plots import new_figure, save_figure
from reprolab.core.sweep import Sweep

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["Backbones", "backbone_seed", "fit_learner", "load_clip", "run_cocoop", "save_learner"]

PAPER_AVG = {"zs": (69.34, 74.22, 71.70), "coop": (82.69, 63.22, 71.66), "cocoop": (80.47, 71.69, 75.83)}
LABELS = {"zs": "zero-shot CLIP", "coop": "CoOp", "cocoop": "CoCoOp"}


def run_cocoop(config: CoCoOpConfig, ctx: RunContext) -> dict[str, float]:
    """Base-to-new (paper Sec. 4.1) on the generated world or ``dataset``; with ``target_datasets``, the
    cross-dataset transfer (Sec. 4.2, Table 2) from ``dataset`` instead (``crossdata.py``)."""
    targets = None
    if config.dataset:  # fail before pretraining the mini CLIP, not minutes later
        from reprolab.cocoop.realdata import check_dataset_folder

        check_dataset_folder(dataset_folder(config, ctx))
    if config.target_datasets:
        from reprolab.cocoop.crossdata import check_targets

        targets = check_targets(config, ctx)
    clips = Backbones(config, ctx)
    if targets is not None:
        from reprolab.cocoop.crossdata import run_cross_dataset

        if config.shot_curve:
            ctx.note("shot_curve is a base-to-new figure; it is skipped in the cross-dataset transfer.")
        return run_cross_dataset(config, ctx, clips, dataset_folder(config, ctx), targets)
    sweep = Sweep(ctx)
    results = []
    for seed in config.seeds:
        unit = f"b2n/seed{seed}/shots{config.shots}"
        if not sweep.is_done(unit):  # a resumed run loads no backbone for the seeds it has
            clip, tokenizer, world = clips(seed)
            sweep.once(unit, base_to_new, config, ctx, clip, tokenizer, world, seed, config.shots, log=True)
        results.append(sweep.result(unit))
    metrics = {key: sum(r[key] for r in results) / len(results) for key in results[0]}
    for m in METHODS:
        metrics[f"{m}_h"] = harmonic_mean(metrics[f"{m}_base"], metrics[f"{m}_new"])
    for seed, result in zip(config.seeds, results):  # the claims are decided over these units (x run seeds)
        hs = {f"{m}_h": harmonic_mean(result[f"{m}_base"], result[f"{m}_new"]) for m in METHODS}
        ctx.record_unit(f"seed{seed}", result | hs)
    _report_seed_spread(ctx, config.seeds, results)
    curve = {config.shots: results[0]}
    for shots in config.shot_curve:
        unit = f"b2n/seed{config.seeds[0]}/shots{shots}"
        if not sweep.is_done(unit):
            clip, tokenizer, world = clips(config.seeds[0])
            sweep.once(unit, base_to_new, config, ctx, clip, tokenizer, world, config.seeds[0], shots, shift=False)
        curve[shots] = sweep.result(unit)
    _report(config, ctx, metrics, curve)
    return metrics


class Backbones:
    """The frozen CLIP of each prompt-learning seed: with ``backbone_per_seed`` (and no ``clip_path``) seed ``s``
    gets the mini CLIP pretrained with seed ``pretrain_seed + s`` (each cached), else every seed shares one. The
    last one is kept in memory (the shot curve reuses the first seed's)."""

    def __init__(self, config: CoCoOpConfig, ctx: RunContext) -> None:
        self.config, self.ctx = config, ctx
        self._last: tuple[int, tuple[Any, Any, ShapesWorld]] | None = None

    def __call__(self, seed: int) -> tuple[Any, Any, ShapesWorld]:
        key = backbone_seed(self.config, seed)
        if self._last is None or self._last[0] != key:
            clip, tokenizer, world = load_clip(self.config, self.ctx, key)
            self._last = (key, (freeze(clip.to(self.ctx.device)), tokenizer, world))
        return self._last[1]


def load_clip(config: CoCoOpConfig, ctx: RunContext, pretrain_seed: int | None = None) -> tuple[Any, Any, ShapesWorld]:
    """Real CLIP from ``clip_path`` (``from_pretrained``), else the mini CLIP from cache or pretrained now with
    ``pretrain_seed`` (default ``config.pretrain_seed``; part of the cache key)."""
    seed = config.pretrain_seed if pretrain_seed is None else pretrain_seed
    if config.clip_path:
        from transformers import CLIPModel, CLIPTokenizer

        try:
            clip = CLIPModel.from_pretrained(config.clip_path, attn_implementation="eager")
            tok = HFTokenizer(CLIPTokenizer.from_pretrained(config.clip_path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"clip_path: {config.clip_path}: cannot load a CLIP model and tokenizer ({exc})") from exc
        world = ShapesWorld(clip.config.vision_config.image_size, config.n_colours, config.n_shapes)
        ctx.note(f"Real CLIP weights loaded from {config.clip_path}.")
        return clip, tok, world
    world = ShapesWorld(config.image_size, config.n_colours, config.n_shapes, miscaption=config.miscaption)
    tok = WordTokenizer.for_shapes()
    clip = build_mini_clip(len(tok.vocab), config.image_size, 4, config.width, config.layers)
    name, digest = _mini_clip_cache(config, seed)
    folders = (cache_home() / "cocoop", ctx.out_dir / "checkpoints")
    cached = load_cached(name, folders, digest, note=ctx.note)
    if cached is not None:
        clip.load_state_dict(cached[0])
        ctx.note(f"Mini CLIP (pretraining seed {seed}) loaded from the cache {cached[1]}.")
        return clip, tok, world
    torch.manual_seed(seed)
    clip = build_mini_clip(len(tok.vocab), config.image_size, 4, config.width, config.layers)
    gen = torch.Generator().manual_seed(seed)
    losses = pretrain_clip(
        clip,
        world,
        tok,
        steps=config.pretrain_steps,
        batch_size=config.pretrain_batch,
        lr=config.pretrain_lr,
        generator=gen,
    )
    ctx.log(unit=f"pretrain/seed{seed}", final_loss=sum(losses[-50:]) / max(len(losses[-50:]), 1))
    path = save_cached(name, folders, clip.state_dict(), digest) or "(not cached)"
    ctx.note(
        f"Mini CLIP pretrained (seed {seed}) for {config.pretrain_steps} steps on generated captions; cached at {path}."
    )
    return clip, tok, world


def backbone_seed(config: CoCoOpConfig, seed: int) -> int:
    """The pretraining seed of prompt-learning seed ``seed``'s mini CLIP: ``pretrain_seed + seed`` with
    ``backbone_per_seed`` (each unit its own backbone, issue 18), else ``pretrain_seed`` (one shared)."""
    return config.pretrain_seed + seed if config.backbone_per_seed and not config.clip_path else config.pretrain_seed


def _mini_clip_cache(config: CoCoOpConfig, seed: int) -> tuple[str, str]:
    """The mini CLIP's cache file name and fingerprint: every setting its pretraining depends on, and its
    pretraining ``seed``."""
    keys = ["image_size", "n_colours", "n_shapes", "width", "layers", "pretrain_steps", "pretrain_batch"]
    spec = {k: getattr(config, k) for k in keys} | {"lr": config.pretrain_lr, "seed": seed, "v": 4}
    if config.miscaption > 0:  # a different pretraining world; the key of the clean world stays valid
        spec |= {"miscaption": config.miscaption, "targets": "same-class captions"}
    digest = config_fingerprint(spec)
    return f"miniclip-{digest}.pt", digest


def save_learner(
    ctx: RunContext, config: CoCoOpConfig, name: str, method: str, model: PromptClassifier, classnames: list[str],
    meta: dict[str, Any], pretrain_seed: int,
) -> None:
    """Keep a trained prompt learner as ``models/<name>``: its weights only, the frozen CLIP named in the card
    (``saved_prompt_classifier`` rebuilds the classifier from it; ``pretrain_seed`` picks the mini CLIP)."""
    if config.clip_path:
        backbone: dict[str, Any] = {"clip_path": str(Path(config.clip_path).expanduser().resolve())}
    else:
        cache, digest = _mini_clip_cache(config, pretrain_seed)
        folders = [str(cache_home() / "cocoop"), str((ctx.out_dir / "checkpoints").resolve())]
        keys = ("image_size", "width", "layers")
        backbone = {"mini_clip": {k: getattr(config, k) for k in keys} | {"cache": cache, "fingerprint": digest,
                                                                            "folders": folders}}
    kwargs = {"method": method, "classnames": list(classnames), "n_ctx": config.n_ctx, "ctx_init": config.ctx_init,
              "class_specific": config.class_specific, "chunk": config.text_chunk, "backbone": backbone,
              "shared_prefix": config.shared_prefix}
    ctx.save_model(name, model, build=saved_prompt_classifier, kwargs=kwargs, meta=meta, frozen=("clip.",))


def _sample(world: ShapesWorld, classes: list[int], per_class: int, gen: torch.Generator, bg: str, device: Any):
    labels = torch.tensor(classes).repeat_interleave(per_class)
    pixels, _ = world.render(labels, gen, bg)
    local = torch.arange(len(classes)).repeat_interleave(per_class)
    return pixels.to(device), local.to(device)


def base_to_new(
    config: CoCoOpConfig,
    ctx: RunContext,
    clip: Any,
    tok: Any,
    world: ShapesWorld,
    seed: int,
    shots: int,
    shift: bool = True,
) -> dict[str, float]:
    """One seed of the base-to-new protocol (paper Sec. 4.1): train on ``shots`` per base class, test each half
    among its own classes; with ``shift``, also the shifted (striped) domain, averaged over both halves (the
    shot-curve units skip it: the figure shows base and new only)."""
    if config.dataset:
        base_names, train_x, train_y, sets = _real_sets(config, ctx, clip, seed, shots)
    else:
        base_names, train_x, train_y, sets = _generated_sets(config, ctx, world, seed, shots, shift)
    _note_unknown_words(ctx, tok, [*base_names, *sets["new"][2]])
    out: dict[str, float] = {}
    if shift:  # the linear-probe ceiling, for the main units only (the shot-curve units skip it)
        out["lp_base"] = linear_probe_accuracy(clip, train_x, train_y, *sets["base"][:2])
    if "new_train" in sets:  # oracle: a probe trained on new-class shots (prompt learning never sees them)
        out["lp_new"] = linear_probe_accuracy(clip, *sets.pop("new_train")[:2], *sets["new"][:2])
    template = zero_shot_template(config, _dataset_name(config, ctx))
    _note_unknown_words(ctx, tok, [template.replace("{}", "")], what="zero-shot template words")
    for split, (x, y, cls) in sets.items():
        out[f"zs_{split}"] = zero_shot_accuracy(clip, tok, cls, template, x, y)
    for method in ("coop", "cocoop"):
        torch.manual_seed(ctx.seed_for(method, seed, shots))
        learner = _make_learner(method, config, clip, tok, base_names, ctx.generator(method, "init", seed))
        model = PromptClassifier(clip, learner, config.text_chunk, shared_prefix=config.shared_prefix)
        out[f"{method}_ctx_shift"] = fit_learner(
            model, config, method, train_x, train_y, ctx.generator(method, "train", seed, shots)
        )
        out[f"{method}_trainable_params"] = float(model.trainable_parameters())
        for split, (x, y, cls) in sets.items():
            evaluated = model if cls is base_names else _transfer(method, config, clip, tok, learner, cls)
            out[f"{method}_{split}"] = accuracy(evaluated, x, y)
        if shift:  # the main units (not the shot curve): models/coop, models/cocoop (-seed<s> after the first)
            name = method if seed == config.seeds[0] else f"{method}-seed{seed}"
            meta = {"seed": seed, "shots": shots, "classes": "base"}
            save_learner(ctx, config, name, method, model, base_names, meta, backbone_seed(config, seed))
    for m in METHODS:
        if f"{m}_shift_base" in out:
            out[f"{m}_shift"] = (out.pop(f"{m}_shift_base") + out.pop(f"{m}_shift_new")) / 2
    return out


def fit_learner(
    model: PromptClassifier, config: CoCoOpConfig, method: str, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> float:
    """Train ``model``'s learner with ``method``'s own recipe (``{method}_epochs/_batch_size/_lr``, shared warm-up
    and weight decay). Returns how far the context vectors moved, ||v_end - v_start|| / ||v_start|| (the measure
    behind the quick preset's learning rate, measured in
    docs/notes/cocoop.md#learning-rate-the-10-larger-embeddings-justification-measured-and-dropped)."""
    start = model.learner.ctx.detach().clone()
    train_prompts(
        model,
        x,
        y,
        epochs=getattr(config, f"{method}_epochs"),
        batch_size=getattr(config, f"{method}_batch_size"),
        lr=getattr(config, f"{method}_lr"),
        generator=gen,
        warmup_epochs=config.warmup_epochs,
        warmup_lr=config.warmup_lr,
        weight_decay=config.weight_decay,
    )
    return float((model.learner.ctx.detach() - start).norm() / start.norm().clamp_min(1e-12))


def _dataset_name(config: CoCoOpConfig, ctx: RunContext) -> str:
    """The split file's dataset name of ``dataset`` ("" for the shapes world), which picks the zero-shot template."""
    if not config.dataset:
        return ""
    from reprolab.cocoop.realdata import dataset_name

    return dataset_name(dataset_folder(config, ctx))


def _note_unknown_words(ctx: RunContext, tok: Any, names: list[str], what: str = "class-name words") -> None:
    """With the mini CLIP's word tokenizer, words outside its vocabulary all become ``<unk>``."""
    if not isinstance(tok, WordTokenizer):
        return
    unknown = sorted({w for n in names for w in n.lower().replace(".", " ").replace(",", " ").split()
                      if w not in tok.index})  # fmt: skip
    text = (
        f"Warning: {what} {unknown[:10]} are not in the mini CLIP's vocabulary and map to <unk>; "
        "use a real CLIP (clip_path) for this dataset."
    )
    if unknown and text not in ctx.notes:
        ctx.note(text)


Sets = dict[str, tuple[torch.Tensor, torch.Tensor, list[str]]]


def _generated_sets(
    config: CoCoOpConfig, ctx: RunContext, world: ShapesWorld, seed: int, shots: int, shift: bool = True
) -> tuple[list[str], torch.Tensor, torch.Tensor, Sets]:
    """The shapes world: checkerboard base/new split, plus the striped-background shifted domain."""
    base, new = base_new_split(world)
    names = world.classnames
    base_names, new_names = [names[i] for i in base], [names[i] for i in new]
    gen = ctx.generator("data", seed, shots)
    train_x, train_y = _sample(world, base, shots, gen, "dark", ctx.device)
    test_gen = ctx.generator("test", seed)
    sets = {
        "base": (*_sample(world, base, config.test_per_class, test_gen, "dark", ctx.device), base_names),
        "new": (*_sample(world, new, config.test_per_class, test_gen, "dark", ctx.device), new_names),
    }
    if shift:
        new_train = _sample(world, new, shots, ctx.generator("probe-new", seed, shots), "dark", ctx.device)
        sets["new_train"] = (*new_train, new_names)
        sets["shift_base"] = (*_sample(world, base, config.test_per_class, test_gen, "striped", ctx.device), base_names)
        sets["shift_new"] = (*_sample(world, new, config.test_per_class, test_gen, "striped", ctx.device), new_names)
    return base_names, train_x, train_y, sets


def linear_probe_accuracy(
    clip: Any, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    """The linear-probe ceiling of the frozen image features (CLIP/CoOp's linear-probe baseline): multinomial
    logistic regression on the L2-normalised f(x) of the few-shot training images. C = 100 is fixed (unit-norm
    features need weak regularisation; C in 1..1000 gave 76, 86, 88, 88% on one base draw; a CV search over C
    cost 2.6 s of CPU per probe, too much for the quick preset)."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    with torch.no_grad():
        ftr = image_features(clip, train_x).cpu().numpy()
        fte = image_features(clip, test_x).cpu().numpy()
    with warnings.catch_warnings():  # sklearn's FutureWarnings about upcoming defaults
        warnings.simplefilter("ignore", FutureWarning)
        probe = LogisticRegression(C=100.0, max_iter=2000).fit(ftr, train_y.cpu().numpy())
    return 100.0 * float((probe.predict(fte) == test_y.cpu().numpy()).mean())


def dataset_folder(config: CoCoOpConfig, ctx: RunContext) -> Path:
    """``dataset`` as a folder path, else ``<data home>/coop/<dataset>``."""
    given = Path(config.dataset).expanduser()
    return given if given.is_dir() else ctx.data_home / "coop" / config.dataset


def _real_sets(
    config: CoCoOpConfig, ctx: RunContext, clip: Any, seed: int, shots: int
) -> tuple[list[str], torch.Tensor, torch.Tensor, Sets]:
    """A CoOp-layout dataset (``realdata.py``): first half of the sorted labels base, the rest new."""
    from reprolab.cocoop.realdata import load_real_task

    size = int(clip.config.vision_config.image_size)
    task = load_real_task(
        dataset_folder(config, ctx), size, shots, config.test_per_class, ctx.generator("real-data", seed, shots)
    )
    sets = {
        "base": (task.test["base"][0].to(ctx.device), task.test["base"][1].to(ctx.device), task.base_names),
        "new": (task.test["new"][0].to(ctx.device), task.test["new"][1].to(ctx.device), task.new_names),
    }
    return task.base_names, task.train_x.to(ctx.device), task.train_y.to(ctx.device), sets


def _make_learner(method: str, config: CoCoOpConfig, clip: Any, tok: Any, names: list[str], gen: torch.Generator):
    if method == "cocoop":
        return CoCoOpPromptLearner(clip, tok, names, config.n_ctx, config.ctx_init, generator=gen).to(clip.device)
    return CoOpPromptLearner(clip, tok, names, config.n_ctx, config.ctx_init, config.class_specific, gen).to(
        clip.device
    )


def _transfer(method: str, config: CoCoOpConfig, clip: Any, tok: Any, learner: Any, names: list[str]):
    """The learned context (and Meta-Net) applied to other class names (new classes)."""
    target = _make_learner(method, config, clip, tok, names, torch.Generator().manual_seed(0))
    state = {k: v for k, v in learner.state_dict().items()}
    target.load_state_dict(state)
    return PromptClassifier(clip, target.eval(), config.text_chunk, shared_prefix=config.shared_prefix)


GAPS = {
    "CoOp - zero-shot, base": ("coop_base", "zs_base"),
    "CoOp - zero-shot, new": ("coop_new", "zs_new"),
    "CoCoOp - zero-shot, base": ("cocoop_base", "zs_base"),
    "CoCoOp - CoOp, new": ("cocoop_new", "coop_new"),
    "16-shot linear probe - zero-shot, base": ("lp_base", "zs_base"),
}


SEED_COLUMNS = 6  # more prompt-learning seeds than this: the spread table shows min / max instead of every seed


def _report_seed_spread(ctx: RunContext, seeds: list[int], results: list[dict[str, float]]) -> None:
    """Every claimed gap per seed (or its min and max over many seeds), with mean and sample standard deviation
    over seeds (the seed noise the claims are decided against)."""
    rows = []
    per_seed = len(seeds) <= SEED_COLUMNS
    for label, (a, b) in GAPS.items():
        if not all(a in r and b in r for r in results):
            continue
        gaps = [r[a] - r[b] for r in results]
        mean = sum(gaps) / len(gaps)
        sd = (sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1)) ** 0.5 if len(gaps) > 1 else float("nan")
        shown = gaps if per_seed else [min(gaps), max(gaps)]
        rows.append([label, *(round(g, 2) for g in shown), round(mean, 2), round(sd, 2)])
    columns = [f"seed {s}" for s in seeds] if per_seed else ["min", "max"]
    ctx.add_table(
        f"Gaps over {len(seeds)} prompt-learning seeds (accuracy points) and their spread",
        ["gap", *columns, "mean", "sd"],
        rows,
    )


def _report(config: CoCoOpConfig, ctx: RunContext, metrics: dict[str, float], curve: dict[int, dict]) -> None:
    rows = []
    for m in METHODS:
        paper = PAPER_AVG[m]
        rows.append(
            [
                LABELS[m],
                *(round(metrics[f"{m}_{k}"], 2) for k in ("base", "new", "h")),
                *paper,
                round(metrics[f"{m}_shift"], 2) if f"{m}_shift" in metrics else "—",
            ]
        )
    ctx.add_table(
        f"Base-to-new generalisation, mean of seeds {config.seeds} (ours) vs paper's 11-dataset average",
        ["method", "base", "new", "H", "paper base", "paper new", "paper H", "shifted domain"],
        rows,
    )
    if "lp_base" in metrics:
        new = f", new {metrics['lp_new']:.2f} (oracle: trained on new-class shots)" if "lp_new" in metrics else ""
        ctx.note(f"Linear-probe ceiling of the frozen image features, 16 shots: base {metrics['lp_base']:.2f}{new}.")
    ctx.note(
        f"Trainable parameters: CoOp {int(metrics['coop_trainable_params'])}, "
        f"CoCoOp {int(metrics['cocoop_trainable_params'])} (CLIP frozen)."
    )
    fig, ax = new_figure()
    width = 0.25
    for i, m in enumerate(METHODS):
        vals = [metrics[f"{m}_{k}"] for k in ("base", "new", "h")]
        ax.bar([j + (i - 1) * width for j in range(3)], vals, width, label=LABELS[m])
    ax.set_xticks(range(3), ["base", "new", "H"])
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    save_figure(fig, ctx.figure_path("base_new_h"))
    fig, ax = new_figure()
    shots = sorted(curve)
    for m in METHODS:
        for k, style in (("base", "-o"), ("new", "--s")):
            ax.plot(shots, [curve[s][f"{m}_{k}"] for s in shots], style, label=f"{LABELS[m]} {k}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("shots per base class")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=6)
    save_figure(fig, ctx.figure_path("accuracy_vs_shots"))
