"""CLIP wrapper, CoOp prompt learner and CoCoOp's conditional prompt learner (Zhou et al. 2022).

Notation of the CoCoOp paper (Sec. 3): context vectors v_1..v_M, class-name embedding c_i, prompt
t_i = {v_1, ..., v_M, c_i}; text encoder g(.), image encoder f(.). CoOp (Eq. 2):
p(y=i|x) = exp(sim(f(x), g(t_i))/tau) / sum_j exp(sim(f(x), g(t_j))/tau). CoCoOp (Eq. 3): a Meta-Net h_theta
gives pi = h_theta(f(x)), v_m(x) = v_m + pi, t_i(x) = {v_1(x), ..., v_M(x), c_i}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.utils.checkpoint
from torch import nn
from torch.nn import functional as F

from reprolab.cocoop.experiment import MINI_CLIP_POSITIONS
from reprolab.core.config import ConfigError

__all__ = [
    "CoCoOpPromptLearner",
    "CoOpPromptLearner",
    "PromptClassifier",
    "TextTokenizer",
    "build_mini_clip",
    "encode_text_embeddings",
    "encode_token_ids",
    "freeze",
    "saved_prompt_classifier",
]


class TextTokenizer(Protocol):
    """What the prompt learner needs from a tokenizer (our WordTokenizer, or :class:`HFTokenizer`)."""

    bos_id: int
    eos_id: int
    pad_id: int

    def encode(self, text: str) -> list[int]: ...


class HFTokenizer:
    """Adapter for a real CLIP tokenizer loaded with ``CLIPTokenizer.from_pretrained(local_dir)``."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.bos_id = int(tokenizer.bos_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])


def build_mini_clip(vocab_size: int, image_size: int = 16, patch: int = 4, width: int = 64, layers: int = 2) -> Any:
    """A small ``transformers.CLIPModel`` (ViT image encoder, causal text transformer, eos pooling)."""
    from transformers import CLIPConfig, CLIPModel

    text = {
        "vocab_size": vocab_size,
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "max_position_embeddings": MINI_CLIP_POSITIONS,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 3,
    }
    vision = {
        "image_size": image_size,
        "patch_size": patch,
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=width)
    config._attn_implementation = "eager"
    return CLIPModel(config)


def freeze(module: nn.Module) -> nn.Module:
    """CLIP's encoders stay frozen during prompt learning (paper Sec. 3.2)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return module


def encode_text_embeddings(clip: Any, embeds: torch.Tensor, eos_pos: torch.Tensor) -> torch.Tensor:
    """g(t): run CLIP's text transformer on token embeddings ``embeds`` (N, L, D) (position embeddings,
    causal self-attention, final layer norm), pool at the end-of-text position and project."""
    tm = clip.text_model
    h = tm.embeddings(inputs_embeds=embeds)
    n, length = h.shape[:2]
    causal = torch.full((length, length), float("-inf"), device=h.device, dtype=h.dtype).triu(1)
    out = tm.encoder(inputs_embeds=h, attention_mask=causal[None, None].expand(n, 1, length, length))
    last = tm.final_layer_norm(out.last_hidden_state)
    pooled = last[torch.arange(n, device=h.device), eos_pos]
    return clip.text_projection(pooled)


def encode_token_ids(clip: Any, ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Text features of tokenised prompts (hand-written prompts of zero-shot CLIP)."""
    embeds = clip.text_model.embeddings.token_embedding(ids)
    eos_pos = (ids == eos_id).int().argmax(dim=-1)
    return encode_text_embeddings(clip, embeds, eos_pos)


def image_features(clip: Any, pixels: torch.Tensor) -> torch.Tensor:
    """f(x), L2-normalised."""
    out = clip.vision_model(pixel_values=pixels)
    return F.normalize(clip.visual_projection(out.pooler_output), dim=-1)


class CoOpPromptLearner(nn.Module):
    """Learnable context ``[v_1..v_M]`` inserted after ``[SOS]`` and before the class-name tokens and ``[EOS]``.

    ``class_specific=True`` gives CoOp's class-specific context (one set of M vectors per class);
    ``init`` (e.g. "a photo of a") initialises the context from that phrase's word embeddings, so M is
    its token count; otherwise M vectors ~ N(0, 0.02^2) as in CoOp.
    """

    def __init__(
        self,
        clip: Any,
        tokenizer: TextTokenizer,
        classnames: Sequence[str],
        n_ctx: int = 4,
        init: str = "",
        class_specific: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not classnames:
            raise ConfigError("classnames: at least one class is required")
        token_embedding = clip.text_model.embeddings.token_embedding
        dim = token_embedding.weight.shape[1]
        with torch.no_grad():
            if init:
                init_ids = tokenizer.encode(init)
                n_ctx = len(init_ids)
                ctx = token_embedding(torch.tensor(init_ids, device=token_embedding.weight.device)).clone()
                if class_specific:
                    ctx = ctx[None].repeat(len(classnames), 1, 1)
            else:
                if n_ctx < 1:
                    raise ConfigError(f"n_ctx must be >= 1, got {n_ctx}")
                shape = (len(classnames), n_ctx, dim) if class_specific else (n_ctx, dim)
                ctx = torch.randn(shape, generator=generator) * 0.02
        self.n_ctx, self.class_specific, self.n_cls = n_ctx, class_specific, len(classnames)
        self.ctx = nn.Parameter(ctx.float().to(token_embedding.weight.device))
        names = [tokenizer.encode(name) for name in classnames]
        length = 1 + n_ctx + max(len(n) for n in names) + 1
        max_len = clip.text_model.embeddings.position_embedding.weight.shape[0]
        if length > max_len:
            raise ConfigError(f"prompt length {length} exceeds the text encoder's {max_len} positions; use fewer n_ctx")
        tails = [n + [tokenizer.eos_id] + [tokenizer.pad_id] * (length - 2 - n_ctx - len(n)) for n in names]
        device = token_embedding.weight.device
        with torch.no_grad():
            prefix = token_embedding(torch.full((len(names), 1), tokenizer.bos_id, device=device))
            suffix = token_embedding(torch.tensor(tails, device=device))
        self.register_buffer("prefix", prefix, persistent=False)  # [SOS] embedding, frozen
        self.register_buffer("suffix", suffix, persistent=False)  # class tokens, [EOS], padding; frozen
        self.register_buffer(
            "eos_pos", torch.tensor([1 + n_ctx + len(n) for n in names], device=device), persistent=False
        )

    def context(self) -> torch.Tensor:
        """(n_cls, M, D) context, shared across classes unless class-specific."""
        return self.ctx if self.class_specific else self.ctx[None].expand(self.n_cls, -1, -1)

    def prompts(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """t_i = [SOS, v_1..v_M, c_i, EOS, pad...] token embeddings, (n_cls, L, D)."""
        ctx = self.context() if ctx is None else ctx
        return torch.cat([self.prefix, ctx, self.suffix], dim=1)

    def text_features(self, clip: Any) -> torch.Tensor:
        return F.normalize(encode_text_embeddings(clip, self.prompts(), self.eos_pos), dim=-1)


class CoCoOpPromptLearner(CoOpPromptLearner):
    """CoOp's unified context plus the Meta-Net ``Linear(vis, vis//16) -> ReLU -> Linear(vis//16, ctx_dim)``
    whose output pi is added to every context vector (paper Sec. 3.2, Eq. 3), one prompt set per image."""

    def __init__(
        self,
        clip: Any,
        tokenizer: TextTokenizer,
        classnames: Sequence[str],
        n_ctx: int = 4,
        init: str = "",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(clip, tokenizer, classnames, n_ctx, init, class_specific=False, generator=generator)
        vis_dim = clip.visual_projection.weight.shape[0]
        ctx_dim = self.ctx.shape[-1]
        hidden = max(vis_dim // 16, 1)
        self.meta_net = nn.Sequential(nn.Linear(vis_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, ctx_dim))
        self.meta_net.to(self.ctx.device)

    def conditional_text_features(
        self, clip: Any, img_feats: torch.Tensor, chunk: int = 0, checkpoint: bool = False
    ) -> torch.Tensor:
        """g(t_i(x)) for every image and class, (B, n_cls, E), L2-normalised.

        ``chunk`` = images per text-encoder pass: 0 puts the whole batch in one pass; 1 is the reference
        implementation's per-image loop. ``checkpoint`` recomputes each chunk's text-encoder activations in the
        backward pass instead of keeping them (activation checkpointing): the forward keeps only the chunk's
        prompt embeddings, so peak memory is one chunk's activations instead of the whole batch's, for one
        extra text-encoder forward. The result does not depend on either setting.
        """
        pi = self.meta_net(img_feats)  # (B, D)
        b = img_feats.shape[0]
        step = b if chunk <= 0 else chunk
        outs = []
        for start in range(0, b, step):
            shift = pi[start : start + step]
            ctx = self.ctx[None, None] + shift[:, None, None]  # (b', 1, M, D)
            ctx = ctx.expand(-1, self.n_cls, -1, -1).reshape(-1, self.n_ctx, self.ctx.shape[-1])
            k = shift.shape[0]
            prompts = torch.cat([self.prefix.repeat(k, 1, 1), ctx, self.suffix.repeat(k, 1, 1)], dim=1)
            eos = self.eos_pos.repeat(k)
            if checkpoint and torch.is_grad_enabled() and prompts.requires_grad:
                feats = torch.utils.checkpoint.checkpoint(
                    _normalised_text, clip, prompts, eos, use_reentrant=False, preserve_rng_state=False
                )
            else:
                feats = _normalised_text(clip, prompts, eos)
            outs.append(feats.view(k, self.n_cls, -1))
        return torch.cat(outs)


def _normalised_text(clip: Any, prompts: torch.Tensor, eos_pos: torch.Tensor) -> torch.Tensor:
    return F.normalize(encode_text_embeddings(clip, prompts, eos_pos), dim=-1)


class PromptClassifier(nn.Module):
    """Logits = CLIP temperature x cosine(f(x), g(t_i)) for a frozen CLIP and a prompt learner (Eq. 2/3)."""

    def __init__(self, clip: Any, learner: CoOpPromptLearner, chunk: int = 0, checkpoint: bool = False) -> None:
        super().__init__()
        self.clip = freeze(clip)
        self.learner = learner
        self.chunk = chunk
        self.checkpoint = checkpoint

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            img = image_features(self.clip, pixels)
        return self.logits(img)

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        """Logits from L2-normalised image features f(x) (B, E): the frozen image encoder's output does not
        change during prompt learning, so training computes it once per image."""
        scale = self.clip.logit_scale.exp()
        if isinstance(self.learner, CoCoOpPromptLearner):
            text = self.learner.conditional_text_features(self.clip, img, self.chunk, self.checkpoint)
            return scale * torch.einsum("be,bce->bc", img, text)
        return scale * img @ self.learner.text_features(self.clip).t()

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def zero_shot_logits(clip: Any, text_feats: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Zero-shot CLIP: hand-written prompts' features (n_cls, E) against images."""
    img = image_features(clip, pixels)
    return clip.logit_scale.exp() * img @ F.normalize(text_feats, dim=-1).t()


def saved_prompt_classifier(
    method: str,
    classnames: list[str],
    n_ctx: int,
    ctx_init: str,
    class_specific: bool,
    chunk: int,
    backbone: dict[str, Any],
) -> PromptClassifier:
    """Rebuild a run's saved ``coop``/``cocoop`` classifier (``reprolab.load_run(dir).model("coop")``).

    Only the prompt learner's weights are saved (context vectors, CoCoOp's Meta-Net); the frozen CLIP comes
    from ``backbone``: ``{"clip_path": DIR}`` (``CLIPModel.from_pretrained``) or ``{"mini_clip": {...}}``, the
    run's pretrained mini CLIP read from the cache file the run wrote (``miniclip-<fingerprint>.pt``). The
    learner's weights do not depend on ``classnames`` (unless class-specific): build with other class names
    and load the same ``learner.*`` weights to transfer to new classes, as the base-to-new protocol does."""
    if "clip_path" in backbone:
        from transformers import CLIPModel, CLIPTokenizer

        clip = CLIPModel.from_pretrained(backbone["clip_path"], attn_implementation="eager")
        tok: Any = HFTokenizer(CLIPTokenizer.from_pretrained(backbone["clip_path"]))
    else:
        from reprolab.cocoop.data import WordTokenizer
        from reprolab.core.checkpoint import require_cached
        from reprolab.core.data import cache_home

        spec = backbone["mini_clip"]
        tok = WordTokenizer.for_shapes()
        clip = build_mini_clip(len(tok.vocab), spec["image_size"], 4, spec["width"], spec["layers"])
        folders = [cache_home() / "cocoop", *spec.get("folders", [])]
        clip.load_state_dict(require_cached(spec["cache"], folders, spec["fingerprint"], "mini CLIP"))
    freeze(clip)
    if method == "cocoop":
        learner: CoOpPromptLearner = CoCoOpPromptLearner(clip, tok, classnames, n_ctx, ctx_init)
    else:
        learner = CoOpPromptLearner(clip, tok, classnames, n_ctx, ctx_init, class_specific)
    return PromptClassifier(clip, learner, chunk)
