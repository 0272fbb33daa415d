"""The experiment body: backbone (real ViLT or the cached mini ViLT), missing tables, the four methods, the
missing-rate sweep, tables and figures."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from reprolab.core.checkpoint import config_fingerprint, load_cached, save_cached
from reprolab.core.config import ConfigError
from reprolab.core.data import cache_home, require_dataset
from reprolab.core.errors import DataError
from reprolab.core.plots import new_figure, save_figure
from reprolab.core.sweep import Sweep
from reprolab.missing_prompts.data import (
    GlyphWordWorld,
    PairData,
    WordVocab,
    apply_missing,
    draw_missing_table,
    read_food101,
    read_hateful_memes,
    read_mmimdb,
    records_to_tensors,
    save_missing_table,
)
from reprolab.missing_prompts.experiment import EXPERIMENT, TEST_TYPES, MissingPromptsConfig
from reprolab.missing_prompts.model import (
    PromptedVilt,
    build_mini_vilt,
    count_parameters,
    saved_prompted_vilt,
    vilt_b32_trainable_fraction,
)
from reprolab.missing_prompts.train import (
    make_optimizer,
    predict_per_case,
    pretrain_backbone,
    table_metric,
    task_loss,
    warmup_linear_schedule,
)

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["Task", "load_backbone", "run_missing_prompts", "sweep_key", "train_method"]

LABELS = {
    "prompt_input": "input-level prompts",
    "prompt_attention": "attention-level prompts",
    "prompt_shared": "input-level, one shared prompt set (ablation)",
    "head_only": "ViLT baseline (frozen, head only)",
    "finetune": "full fine-tuning",
}


@dataclass
class Task:
    name: str
    train: PairData
    test: PairData
    n_outputs: int
    metric: str
    prompt_init_ids: list[int] | None = None  # tokens whose embeddings start the input-level prompts


def run_missing_prompts(config: MissingPromptsConfig, ctx: RunContext) -> dict[str, float]:
    vilt, world, encode = load_backbone(config, ctx)
    if config.real_dataset:
        tasks, vilt = _real_task(config, ctx, encode, vilt)
    else:
        tasks = _synthetic_tasks(config, ctx, world)
    sweep = Sweep(ctx)
    metrics: dict[str, float] = {}
    encoder_cache: dict[str, Any] = {}
    for task in tasks:
        tables = _missing_tables(config, ctx, task)
        for scenario in config.scenarios:
            for method in config.methods:
                unit = f"{task.name}/{scenario}/{method}"
                args = (config, ctx, sweep, vilt, task, method, scenario, tables, encoder_cache)
                result = sweep.once(unit, train_method, *args, log=True)
                metrics.update({f"{task.name}_{method}_{k}": v for k, v in result.items()})
    metrics.update(vilt_b32_trainable_fraction(n_outputs=23, prompt_layers=6, prompt_length=16))
    _report(config, ctx, tasks, metrics)
    return metrics


# ---------------------------------------------------------------------------------------------------------
def load_backbone(config: MissingPromptsConfig, ctx: RunContext) -> tuple[Any, GlyphWordWorld, Any]:
    """Real ViLT from ``vilt_path`` (``from_pretrained``), else the mini ViLT from the cache or pretrained now
    on complete generated pairs. Returns the model, the world and a text encoder ``encode(text, max_len)``."""
    world = GlyphWordWorld(image_size=config.image_size, n_codes=config.n_codes, pixel_noise=config.pixel_noise)
    if config.vilt_path:
        from transformers import BertTokenizer, ViltModel

        folder = Path(config.vilt_path).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"vilt_path: {folder} is not a folder with a saved ViltModel (no config.json there)")
        try:
            vilt = ViltModel.from_pretrained(folder).to(ctx.device).eval()
            tok = BertTokenizer.from_pretrained(folder)
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"vilt_path: cannot load a ViltModel and a BERT tokenizer from {folder} ({err})") from err
        ctx.note(f"Real ViLT weights and tokenizer loaded from {config.vilt_path}.")
        return vilt, world, lambda text, n: tok(text, truncation=True, max_length=n)["input_ids"]
    if config.real_dataset:
        return None, world, None  # built in _real_task once the vocabulary is known
    seed = _backbone_seed(config, ctx)
    name, digest = _mini_vilt_cache(config, seed)
    vilt = _mini_vilt(config, world)
    folders = (cache_home() / "missing_prompts", ctx.out_dir / "checkpoints")
    cached = load_cached(name, folders, digest, note=ctx.note)
    if cached is not None:
        vilt.load_state_dict(cached[0])
        ctx.note(f"Mini ViLT (pretraining seed {seed}) loaded from the cache {cached[1]}.")
        return vilt.to(ctx.device).eval(), world, None
    torch.manual_seed(seed)
    vilt = _mini_vilt(config, world).to(ctx.device)
    losses = pretrain_backbone(
        vilt,
        world,
        steps=config.pretrain_steps,
        batch_size=config.pretrain_batch,
        lr=config.pretrain_lr,
        pool_size=config.pretrain_pool,
        generator=torch.Generator().manual_seed(seed),
        negatives=config.pretrain_negatives,
        log=lambda step, loss: ctx.log(unit="pretrain", step=step, loss=loss),
    )
    tail = losses[-50:] or [float("nan")]
    ctx.log(unit="pretrain", final_loss=sum(tail) / len(tail))
    path = save_cached(name, folders, vilt.state_dict(), digest) or "(not cached)"
    ctx.note(
        f"Mini ViLT ({count_parameters(vilt)} parameters, pretraining seed {seed}) pretrained for "
        f"{config.pretrain_steps} steps on complete "
        f"generated pairs (image-text matching with {config.pretrain_negatives} negatives over {config.n_codes} "
        f"codes + masked code words; no task labels); cached at {path}."
    )
    return vilt.eval(), world, None


def _backbone_seed(config: MissingPromptsConfig, ctx: RunContext) -> int:
    """The mini ViLT's pretraining seed: ``pretrain_seed + run seed`` with ``backbone_per_seed`` (each unit its
    own backbone, issue 18), else ``pretrain_seed`` (one shared by every run seed)."""
    return config.pretrain_seed + ctx.seed if config.backbone_per_seed else config.pretrain_seed


def _mini_vilt_cache(config: MissingPromptsConfig, seed: int) -> tuple[str, str]:
    """The pretrained mini ViLT's cache file name and fingerprint: every setting its pretraining depends on, and
    its pretraining ``seed``."""
    keys = ["image_size", "hidden", "layers", "heads", "n_codes", "pixel_noise", "pretrain_steps", "pretrain_batch",
            "pretrain_negatives"]  # fmt: skip
    spec = {k: getattr(config, k) for k in keys}
    spec |= {"lr": config.pretrain_lr, "pool": config.pretrain_pool, "seed": seed, "v": 1}
    digest = config_fingerprint(spec)
    return f"minivilt-{digest}.pt", digest


def _save_model(
    config: MissingPromptsConfig, ctx: RunContext, name: str, model: PromptedVilt, method: str, meta: dict[str, Any]
) -> None:
    """Keep a trained model as ``models/<task>-<scenario>-<method>``: the prompts, pooler and head (the trainable
    parts), the frozen backbone named in the card and rebuilt by :func:`saved_prompted_vilt`. A fine-tuned
    backbone, and a mini ViLT trained from scratch with a real dataset (nothing to rebuild it from), are saved
    whole; a fine-tuned real ViLT (``vilt_path``) is not kept (hundreds of MB per scenario)."""
    vilt = model.vilt
    if config.vilt_path:
        if method == "finetune":
            return
        backbone: dict[str, Any] = {"vilt_path": str(Path(config.vilt_path).expanduser().resolve())}
    else:
        c = vilt.config
        build = {"vocab_size": c.vocab_size, "image_size": c.image_size, "patch_size": c.patch_size,
                 "hidden": c.hidden_size, "layers": c.num_hidden_layers, "heads": c.num_attention_heads,
                 "max_text_len": c.max_position_embeddings}
        backbone = {"build": build}
        if not config.real_dataset:
            cache, digest = _mini_vilt_cache(config, _backbone_seed(config, ctx))
            folders = [str(cache_home() / "missing_prompts"), str((ctx.out_dir / "checkpoints").resolve())]
            backbone |= {"cache": cache, "fingerprint": digest, "folders": folders}
    rebuildable = "vilt_path" in backbone or "cache" in backbone  # else the file holds the backbone too
    frozen = model.frozen_prefixes() if rebuildable and method != "finetune" else ()
    kwargs = {"n_outputs": model.head[-1].out_features, "prompt_type": model.prompt_type,
              "shared_prompts": method == "prompt_shared", "prompt_layers": list(config.prompt_layers),
              "prompt_length": config.prompt_length, "input_mode": config.input_mode, "backbone": backbone}
    ctx.save_model(name, model, build=saved_prompted_vilt, kwargs=kwargs, meta=meta, frozen=frozen)


def _mini_vilt(config: MissingPromptsConfig, world: GlyphWordWorld) -> Any:
    return build_mini_vilt(
        world.vocab_size,
        image_size=config.image_size,
        patch_size=4,
        hidden=config.hidden,
        layers=config.layers,
        heads=config.heads,
        max_text_len=world.max_text_len,
    )


def _synthetic_tasks(config: MissingPromptsConfig, ctx: RunContext, world: GlyphWordWorld) -> list[Task]:
    tasks = []
    for name in config.tasks:
        splits = []
        for split, n in (("train", config.n_train), ("test", config.n_test)):
            gen = ctx.generator("data", name, split, device="cpu")
            if name == "single":
                splits.append(world.single_label(n, config.n_classes, config.label_noise, gen))
            else:
                splits.append(world.multi_label(n, config.label_noise, gen, word_shift=config.multi_word_shift))
        n_out = config.n_classes if name == "single" else 8
        metric = "accuracy" if name == "single" else "f1_macro"
        tasks.append(Task(name, splits[0], splits[1], n_out, metric, world.filler_ids()))
    return tasks


def _real_task(config: MissingPromptsConfig, ctx: RunContext, encode: Any, vilt: Any) -> tuple[list[Task], Any]:
    info = next(d for d in EXPERIMENT.datasets if d.name == config.real_dataset)
    root = require_dataset(info, ctx.data_home)
    if config.real_dataset == "mmimdb":
        train, test = read_mmimdb(root, "train"), read_mmimdb(root, "test")
        n_out, multi, metric = 23, True, "f1_macro"
    elif config.real_dataset == "food101":
        (train, classes), (test, _) = read_food101(root, "train"), read_food101(root, "test")
        n_out, multi, metric = len(classes), False, "accuracy"
    else:
        train, test = read_hateful_memes(root, "train"), read_hateful_memes(root, "dev_seen")
        n_out, multi, metric = 2, False, "auroc"
    if config.real_train_limit:
        train = train[: config.real_train_limit]
    files = {"mmimdb": ("split.json", "split.json"), "food101": ("texts/train_titles.csv", "texts/test_titles.csv"),
             "hateful_memes": ("train.jsonl", "dev_seen.jsonl")}[config.real_dataset]  # fmt: skip
    for records, file in zip((train, test), files):
        if not records:
            raise DataError(f"{root / file}: no samples in this split")
    image_size = vilt.config.image_size if vilt is not None else config.image_size
    max_len = vilt.config.max_position_embeddings if vilt is not None else config.real_max_text_len
    if encode is None:
        vocab = WordVocab.build([r.text for r in train])
        encode = vocab.encode
        ctx.note(
            f"No vilt_path: a mini ViLT with a {len(vocab)}-word vocabulary is trained from scratch on {info.name}."
        )
        vilt = build_mini_vilt(len(vocab), image_size=image_size, hidden=config.hidden, layers=config.layers,
                               heads=config.heads, max_text_len=max_len).to(ctx.device)  # fmt: skip
    kwargs = {"image_size": image_size, "max_text_len": max_len, "n_labels": n_out, "multi_label": multi}
    task = Task(config.real_dataset, records_to_tensors(train, encode, **kwargs),
                records_to_tensors(test, encode, **kwargs), n_out, metric)  # fmt: skip
    return [task], vilt


def sweep_key(config: MissingPromptsConfig, rate: float) -> str:
    """Name of the test table for a sweep rate (missing both); rate 0 and the test rate reuse those tables."""
    if rate == 0.0:
        return "complete"
    return "both" if rate == config.test_missing_rate else f"sweep{rate:g}"


def _missing_tables(config: MissingPromptsConfig, ctx: RunContext, task: Task) -> dict[str, list[torch.Tensor]]:
    """All missing tables of a task, each drawn once from its own seed and saved under ``missing_tables/``.

    A test table comes with ``test_table_draws - 1`` further draws of the same rate and type (seeds
    ``seed_for("missing", task, key, d)``, listed in the saved file); the reported metric of a test table is its
    mean over all draws (draw 0 = the saved table), so which samples happen to miss a modality does not decide a
    comparison (see
    docs/notes/missing_prompts.md#test-noise-where-it-comes-from-and-what-changed-in-this-increment-issue-8)."""
    folder = ctx.out_dir / "missing_tables"
    specs = {f"train_{kind}": ("train", config.train_missing_rate, kind) for kind in config.scenarios}
    specs |= {kind: ("test", config.test_missing_rate, kind) for kind in config.scenarios}
    if config.sweep_rates:
        specs["complete"] = ("test", 0.0, "both")
        specs |= {sweep_key(config, rate): ("test", rate, "both") for rate in config.sweep_rates}
    tables: dict[str, list[torch.Tensor]] = {}
    for key, (split, rate, kind) in specs.items():
        n = len(task.train) if split == "train" else len(task.test)
        seed = ctx.seed_for("missing", task.name, key)
        table = draw_missing_table(n, rate, kind, torch.Generator().manual_seed(seed))
        extra = [] if split == "train" or rate == 0.0 else list(range(1, config.test_table_draws))
        extra_seeds = [ctx.seed_for("missing", task.name, key, d) for d in extra]
        save_missing_table(folder / f"{task.name}_{key}.json", table, rate=rate, missing_type=kind, seed=seed,
                           extra_draw_seeds=extra_seeds)  # fmt: skip
        draws = [draw_missing_table(n, rate, kind, torch.Generator().manual_seed(s)) for s in extra_seeds]
        tables[key] = [table, *draws]
    return tables


def train_method(
    config: MissingPromptsConfig,
    ctx: RunContext,
    sweep: Sweep,
    vilt: Any,
    task: Task,
    method: str,
    scenario: str,
    tables: dict[str, list[torch.Tensor]],
    encoder_cache: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Train one method in one of Table 1's scenarios (train table ``train_<scenario>``) and test it in the same
    scenario (test table ``<scenario>``); the models of the "both" scenario are also tested on the complete test
    set and the missing-both sweep of rates.

    Evaluation runs every test sample once per missing case (3 forward passes of the test set, whatever the
    number of tables) and reads each table's predictions off these logits; a sample's logits depend only on its
    own inputs and missing case (eval mode, no batch statistics). ``<key>`` is the metric averaged over the
    table's draws, ``<key>_saved`` the metric on the saved table alone.

    ``encoder_cache``: a dict shared by the calls of one run, where the head-only baseline keeps its encoder's
    outputs on the test set (per task and missing case) for its other scenarios."""
    encoder_cache = {} if encoder_cache is None else encoder_cache
    backbone = copy.deepcopy(vilt)
    prompt_type = {"prompt_input": "input", "prompt_attention": "attention", "prompt_shared": "input"}.get(method)
    if method == "head_only" and config.baseline_prompts == "fixed":
        prompt_type = "fixed"
    # the seeds name the scenario only where it is not "both", so the "both" units keep their earlier draws
    tag = (task.name, method) if scenario == "both" else (task.name, scenario, method)
    init_gen = ctx.generator(*tag, "init", device="cpu")
    model = PromptedVilt(
        backbone,
        task.n_outputs,
        prompt_type=prompt_type or "none",
        shared_prompts=method == "prompt_shared",
        prompt_layers=config.prompt_layers,
        prompt_length=config.prompt_length,
        input_mode=config.input_mode,
        generator=init_gen,
        init_token_ids=task.prompt_init_ids,
    ).to(ctx.device)
    if method != "finetune":
        model.freeze_backbone()
    lr = config.finetune_lr if method == "finetune" else config.lr
    optimizer = make_optimizer(model, lr, config.weight_decay)
    train_table = tables[f"train_{scenario}"][0]
    train = apply_missing(task.train, train_table)
    per_epoch = -(-len(train) // config.batch_size)
    steps = config.epochs * per_epoch
    scheduler = warmup_linear_schedule(optimizer, max(steps, 1))
    gen = ctx.generator(*tag, "train", device="cpu")
    state: dict[str, Any] = {}
    micro = config.batch_size // config.grad_accumulation

    def step_fn(step: int) -> dict[str, float]:
        """One optimiser step on an effective batch of ``batch_size``, accumulated over micro-batches (the loss
        of each micro-batch weighted by its share, so the gradient equals the whole batch's)."""
        if step % per_epoch == 0 or "order" not in state:
            state["order"] = torch.randperm(len(train), generator=gen)
        idx = state["order"][(step % per_epoch) * config.batch_size : (step % per_epoch + 1) * config.batch_size]
        dev = ctx.device
        if "train_mode" not in state:  # nothing between steps leaves training mode; set it once, not per step
            model.train()
            state["train_mode"] = True
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for part in idx.split(micro):
            logits = model(
                train.input_ids[part].to(dev),
                train.text_mask[part].to(dev),
                train.pixel_values[part].to(dev),
                train_table[part].to(dev),
            )
            loss = task_loss(logits, train.labels[part].to(dev)) * (len(part) / len(idx))
            loss.backward()
            total += float(loss.detach())
        optimizer.step()
        scheduler.step()
        return {"loss": total}

    sweep.train("/".join((task.name, scenario, method)), steps=steps, step_fn=step_fn, model=model,
                optimizer=optimizer, generator=gen, scheduler=scheduler, log_every=per_epoch)  # fmt: skip
    meta = {"task": task.name, "scenario": scenario, "method": method, "metric": task.metric,
            "input": "forward(input_ids, text_mask, pixel_values, missing_type); missing_type 0 complete, 1 text "
                     "missing, 2 image missing (dummy inputs applied by the caller)"}
    _save_model(config, ctx, "-".join((task.name, scenario, method)), model, method, meta)
    keys = [scenario]
    if scenario == "both" and config.sweep_rates:
        keys += ["complete", *(sweep_key(config, rate) for rate in config.sweep_rates)]
    # only the missing cases that these tables pick; the head-only baseline's encoder (frozen backbone, fixed or
    # no prompts) is the same in every scenario, so its outputs on the test set are computed once per task
    cases = torch.cat([t for key in dict.fromkeys(keys) for t in tables[key]]).unique().tolist()
    encoded = encoder_cache.setdefault(task.name, {}) if method == "head_only" else None
    case_logits = predict_per_case(model, task.test, cases=cases, encoded=encoded)
    result: dict[str, float] = {}
    for key in dict.fromkeys(keys):
        values = [table_metric(case_logits, table, task.test.labels, task.metric) for table in tables[key]]
        result[key] = sum(values) / len(values)
        if key != "complete":
            result[f"{key}_saved"] = values[0]
    if scenario == "both" and config.sweep_rates:
        sweep_keys = [sweep_key(config, rate) for rate in config.sweep_rates]
        result["sweep_mean"] = sum(result[k] for k in sweep_keys) / len(sweep_keys)
    result["trainable_params"] = float(model.trainable_parameters())  # the same in every scenario
    result["trainable_fraction"] = model.trainable_parameters() / count_parameters(model)
    return result


# ---------------------------------------------------------------------------------------------------------
def _report(config: MissingPromptsConfig, ctx: RunContext, tasks: list[Task], metrics: dict[str, float]) -> None:
    for task in tasks:
        rows = []
        for m in config.methods:
            key = f"{task.name}_{m}"
            cells = [round(metrics[f"{key}_{k}"], 2) if f"{key}_{k}" in metrics else "—"
                     for k in ("complete", *TEST_TYPES)]  # fmt: skip
            rows.append([LABELS[m], *cells, f"{100 * metrics[f'{key}_trainable_fraction']:.2f}%"])
        ctx.add_table(
            f"{task.name}: {task.metric} (%) on the test set; each missing type's column = trained and tested "
            f"with that type missing at eta={config.train_missing_rate:g}/{config.test_missing_rate:g} (Table 1); "
            "complete = the missing-both model on complete pairs",
            ["method", "complete", "text missing", "image missing", "both missing", "trainable"],
            rows,
        )
    head_share = metrics["vilt_b32_head_params"] * metrics["vilt_b32_trainable_fraction"]
    head_share /= metrics["vilt_b32_trainable_params"]
    ctx.note(
        f"Real ViLT-B/32 (ViltConfig() defaults, {int(metrics['vilt_b32_params']):,} parameters incl. its pooler). "
        f"Trained by the method (prompts + pooler + the official MM-IMDb head): "
        f"{int(metrics['vilt_b32_trainable_params']):,} parameters = "
        f"{100 * metrics['vilt_b32_trainable_fraction']:.2f}% of the whole model (claim "
        f"vilt_b32_trainable_under_1pct). Added by the method (the prompts alone, 3 x 6 layers x 16 x 768): "
        f"{int(metrics['vilt_b32_prompt_params']):,} = {100 * metrics['vilt_b32_prompt_backbone_fraction']:.3f}% of "
        f"ViLT-B/32 ({100 * metrics['vilt_b32_prompt_fraction']:.3f}% of the whole model; prompts + pooler "
        f"{100 * metrics['vilt_b32_prompt_pooler_fraction']:.2f}%). The paper's '< 1%' can hold only for what the "
        f"method adds: the official head alone, which every method including the head-only baseline trains, is "
        f"{int(metrics['vilt_b32_head_params']):,} parameters ({100 * head_share:.2f}%)."
    )
    ctx.note(
        "Missing rate eta = fraction of samples that miss a modality (eta=70%: 30% complete). Missing tables are "
        "saved in missing_tables/ of the run folder (0 complete, 1 text missing, 2 image missing). Each test metric "
        f"is the mean over {config.test_table_draws} draws of its missing table (draw 0 = the saved table, whose "
        "metric alone is reported as <key>_saved; the seeds of the other draws are in the saved file)."
    )
    if not config.sweep_rates:
        return
    fig, axes = new_figure(ncols=len(tasks))
    axes = list(axes.flat) if len(tasks) > 1 else [axes]
    for ax, task in zip(axes, tasks):
        for m in config.methods:
            values = [metrics[f"{task.name}_{m}_{sweep_key(config, r)}"] for r in config.sweep_rates]
            ax.plot([100 * r for r in config.sweep_rates], values, "-o", label=LABELS[m])
        ax.set_xlabel("test missing rate eta (%), missing both")
        ax.set_ylabel(f"{task.metric} (%)")
        ax.set_title(f"{task.name} (trained at eta={100 * config.train_missing_rate:g}%, both)")
        ax.legend(fontsize=7)
    save_figure(fig, ctx.figure_path("metric_vs_missing_rate"))
