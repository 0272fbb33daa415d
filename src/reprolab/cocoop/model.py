"""CLIP wrapper, CoOp prompt learner and CoCoOp's conditional prompt learner (Zhou et al. 2022).

Notation of the CoCoOp paper (Sec. 3): context vectors v_1..v_M, class-name embedding c_i, prompt
t_i = {v_1, ..., v_M, c_i}; text encoder g(.), image encoder f(.). CoOp (Eq. 2):
p(y=i|x) = exp(sim(f(x), g(t_i))/tau) / sum_j exp(sim(f(x), g(t_j))/tau). CoCoOp (Eq. 3): a Meta-Net h_theta
gives pi = h_theta(f(x)), v_m(x) = v_m + pi, t_i(x) = {v_1(x), ..., v_M(x), c_i}.
"""

from __future__ import annotations

import math
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
    "encode_text_shared_prefix",
    "encode_token_ids",
    "freeze",
    "saved_prompt_classifier",
    "supports_shared_prefix",
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


def supports_shared_prefix(clip: Any) -> bool:
    """Whether :func:`encode_text_shared_prefix` computes exactly what ``clip``'s text transformer computes.

    It re-walks the layers of transformers' CLIP text model through their submodules, so it accepts only that
    structure as this transformers version defines it: ``CLIPTextEmbeddings``, ``CLIPEncoder`` of
    ``CLIPEncoderLayer`` (pre-norm: ``layer_norm1``, ``self_attn`` with ``q_proj``/``k_proj``/``v_proj``/
    ``out_proj``, ``num_heads``, ``head_dim``, ``scale``; ``layer_norm2``, ``mlp``), the exact classes (a subclass
    may compute something else), softmax attention (``eager`` or ``sdpa``) and no active attention dropout.
    Anything else keeps the full-sequence path."""
    try:
        from transformers.models.clip import modeling_clip as hf
    except ImportError:  # pragma: no cover - transformers is a dependency of the method
        return False
    tm = getattr(clip, "text_model", None)
    if type(getattr(tm, "embeddings", None)) is not hf.CLIPTextEmbeddings:
        return False
    if type(getattr(tm, "encoder", None)) is not hf.CLIPEncoder or not isinstance(
        getattr(tm, "final_layer_norm", None), nn.LayerNorm
    ):
        return False
    if not isinstance(getattr(clip, "text_projection", None), nn.Linear):
        return False
    for layer in tm.encoder.layers:
        attn = getattr(layer, "self_attn", None)
        if type(layer) is not hf.CLIPEncoderLayer or type(attn) is not hf.CLIPAttention:
            return False
        needed = ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads", "head_dim", "scale", "config")
        if not all(hasattr(attn, a) for a in needed) or not all(
            hasattr(layer, a) for a in ("layer_norm1", "layer_norm2", "mlp")
        ):
            return False
        if getattr(attn.config, "_attn_implementation", None) not in ("eager", "sdpa"):
            return False
        if attn.training and getattr(attn, "dropout", 0.0) > 0:
            return False
        if attn.num_heads * attn.head_dim != attn.q_proj.out_features:
            return False
    return True


def encode_text_shared_prefix(
    clip: Any, prefix: torch.Tensor, tails: torch.Tensor, eos_pos: torch.Tensor
) -> torch.Tensor:
    """g(t_i(x)) for every image x and class i, (B, n_cls, E), with the image's prompt prefix computed once.

    CoCoOp's prompt for image x and class i (Eq. 3) is ``t_i(x) = [SOS, v_1(x)..v_M(x), c_i, EOS, pad]``.
    ``prefix`` (B, p, D) holds the token embeddings of its first p = 1 + M positions, ``[SOS, v_1(x)..v_M(x)]``,
    which do not depend on the class; ``tails`` (n_cls, t, D) the class part ``[c_i, EOS, pad]``, which does not
    depend on the image; ``eos_pos`` (n_cls,) the absolute EOS positions (all >= p); p + t = L.

    Exact, not an approximation: CLIP's text transformer is causal, so the hidden state of position j at every
    layer depends only on positions <= j. The first p positions therefore have the same hidden states in all
    n_cls prompts of one image, and this computes them once per image (B x p tokens) instead of once per class;
    only the class tails are computed per class (B x n_cls x t tokens), their queries attending to the image's
    prefix keys/values (shared by all classes, no per-class copies) and causally within the tail.
    The tokens per image drop from n_cls * L to p + n_cls * t. Two further exact savings: the tails are the same
    for every image until the first attention mixes in the prefix (layer 0's norm and projections of the tail
    run once per class), and the last layer runs its queries, MLP and the final layer norm at the EOS positions
    only, the one position EOS pooling reads (its keys/values still come from every position). Position
    embeddings, attention scale, softmax in float32, pre-norm residuals and the projection are those of the
    model (:func:`supports_shared_prefix` must hold; :func:`encode_text_embeddings` is the full-sequence path).
    """
    tm = clip.text_model
    b, p = prefix.shape[:2]
    n_cls, t = tails.shape[:2]
    pos = tm.embeddings.position_embedding.weight
    hp = prefix + pos[:p]  # (B, p, D)
    ht = (tails + pos[p : p + t])[None]  # (1, n_cls, t, D): the same for every image until the first attention
    tail_eos = (eos_pos - p).to(prefix.device)
    classes = torch.arange(n_cls, device=prefix.device)
    causal_p, causal_t, at_eos = _shared_prefix_masks(p, t, tail_eos, prefix.dtype)
    layers = list(tm.encoder.layers)
    for index, layer in enumerate(layers):
        attn = layer.self_attn
        xp, xt = layer.layer_norm1(hp), layer.layer_norm1(ht)
        kp, vp = _prefix_heads(attn.k_proj(xp), attn), _prefix_heads(attn.v_proj(xp), attn)  # (B, H, p, hd)
        kt, vt = _tail_heads(attn.k_proj(xt), attn), _tail_heads(attn.v_proj(xt), attn)  # (1|B, H, C, t, hd)
        if index == len(layers) - 1:  # only EOS is read after the last layer: its query, its residual stream
            ht, xt, mask = ht[:, classes, tail_eos].unsqueeze(2), xt[:, classes, tail_eos].unsqueeze(2), at_eos
        else:
            mask = causal_t
            qp = _prefix_heads(attn.q_proj(xp), attn)
            weights = F.softmax((qp @ kp.transpose(-1, -2)) * attn.scale + causal_p, dim=-1, dtype=torch.float32)
            mixed = weights.to(prefix.dtype) @ vp  # (B, H, p, hd)
            hp = hp + attn.out_proj(mixed.transpose(1, 2).flatten(-2))
            hp = hp + layer.mlp(layer.layer_norm2(hp))
        qt = _tail_heads(attn.q_proj(xt), attn)  # (1|B, H, C, q, hd)
        nq = qt.shape[-2]
        # queries of all classes against the image's p prefix keys: one (C*q, hd) x (hd, p) product per image
        # and head, the prefix keys shared by every class (not copied per class)
        on_prefix = (qt.flatten(2, 3) @ kp.transpose(-1, -2)).unflatten(2, (n_cls, nq)) * attn.scale
        on_tail = (qt @ kt.transpose(-1, -2)) * attn.scale + mask  # (1|B, H, C, q, t), causal within the tail
        scores = torch.cat([on_prefix, on_tail.expand(b, -1, -1, -1, -1)], dim=-1)  # keys 0..L-1 in order
        weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(prefix.dtype)
        mixed = (weights[..., :p].flatten(2, 3) @ vp).unflatten(2, (n_cls, nq)) + weights[..., p:] @ vt
        ht = ht + attn.out_proj(mixed.permute(0, 2, 3, 1, 4).flatten(-2))  # (B, C, q, D)
        ht = ht + layer.mlp(layer.layer_norm2(ht))
    if not layers:  # no layer: EOS reads its own embedding
        ht = ht[:, classes, tail_eos].unsqueeze(2)
    pooled = tm.final_layer_norm(ht[:, :, 0]).expand(b, -1, -1)
    return clip.text_projection(pooled)


def _shared_prefix_masks(
    p: int, t: int, tail_eos: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Additive masks (0 or -inf, as :func:`encode_text_embeddings`' causal mask): causal (p, p) within the prefix,
    causal (t, t) within a tail, and (C, 1, t) for the last layer's EOS query of class c (tail keys <= its EOS).
    Tail queries see every prefix key, so no row is fully masked."""
    device = tail_eos.device
    prefix_keys, keys = torch.arange(p, device=device), torch.arange(t, device=device)
    causal_p = torch.zeros(p, p, device=device, dtype=dtype).masked_fill(prefix_keys[:, None] < prefix_keys, -math.inf)
    causal_t = torch.zeros(t, t, device=device, dtype=dtype).masked_fill(keys[:, None] < keys, -math.inf)
    at_eos = torch.zeros(len(tail_eos), 1, t, device=device, dtype=dtype)
    return causal_p, causal_t, at_eos.masked_fill(keys > tail_eos[:, None, None], -math.inf)


def _prefix_heads(x: torch.Tensor, attn: Any) -> torch.Tensor:
    """(B, p, D) -> (B, H, p, head_dim), the head split of ``CLIPAttention``."""
    return x.unflatten(-1, (attn.num_heads, attn.head_dim)).transpose(1, 2)


def _tail_heads(x: torch.Tensor, attn: Any) -> torch.Tensor:
    """(B, C, n, D) -> (B, H, C, n, head_dim): heads first, so that a head's queries of all classes meet the
    image's prefix keys in one matrix product."""
    return x.unflatten(-1, (attn.num_heads, attn.head_dim)).permute(0, 3, 1, 2, 4)


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
        self, clip: Any, img_feats: torch.Tensor, chunk: int = 0, checkpoint: bool = False, shared_prefix: bool = True
    ) -> torch.Tensor:
        """g(t_i(x)) for every image and class, (B, n_cls, E), L2-normalised.

        ``chunk`` = images per text-encoder pass: 0 puts the whole batch in one pass; 1 is the reference
        implementation's per-image loop. ``checkpoint`` recomputes each chunk's text-encoder activations in the
        backward pass instead of keeping them (activation checkpointing): the forward keeps only the chunk's
        prompt embeddings, so peak memory is one chunk's activations instead of the whole batch's, for one
        extra text-encoder forward. ``shared_prefix`` computes ``[SOS, v_1(x)..v_M(x)]`` once per image instead
        of once per class (:func:`encode_text_shared_prefix`, exact by the causal mask) where the text model
        allows it (:func:`supports_shared_prefix`), else the full sequences. The result does not depend on
        any of these settings (up to float rounding).
        """
        pi = self.meta_net(img_feats)  # (B, D)
        b = img_feats.shape[0]
        step = b if chunk <= 0 else chunk
        shared = shared_prefix and supports_shared_prefix(clip)
        outs = []
        for start in range(0, b, step):
            shift = pi[start : start + step]
            k = shift.shape[0]
            ctx = self.ctx[None] + shift[:, None]  # (b', M, D): v_m(x) = v_m + pi
            if shared:
                encode: Any = _normalised_shared_text
                args: tuple[torch.Tensor, ...] = (
                    torch.cat([self.prefix[:1].expand(k, -1, -1), ctx], dim=1),
                    self.suffix,
                    self.eos_pos,
                )
            else:
                ctx = ctx[:, None].expand(-1, self.n_cls, -1, -1).reshape(-1, self.n_ctx, self.ctx.shape[-1])
                prompts = torch.cat([self.prefix.repeat(k, 1, 1), ctx, self.suffix.repeat(k, 1, 1)], dim=1)
                encode, args = _normalised_text, (prompts, self.eos_pos.repeat(k))
            if checkpoint and torch.is_grad_enabled() and args[0].requires_grad:
                feats = torch.utils.checkpoint.checkpoint(
                    encode, clip, *args, use_reentrant=False, preserve_rng_state=False
                )
            else:
                feats = encode(clip, *args)
            outs.append(feats.view(k, self.n_cls, -1))
        return torch.cat(outs)


def _normalised_text(clip: Any, prompts: torch.Tensor, eos_pos: torch.Tensor) -> torch.Tensor:
    return F.normalize(encode_text_embeddings(clip, prompts, eos_pos), dim=-1)


def _normalised_shared_text(
    clip: Any, prefix: torch.Tensor, tails: torch.Tensor, eos_pos: torch.Tensor
) -> torch.Tensor:
    return F.normalize(encode_text_shared_prefix(clip, prefix, tails, eos_pos), dim=-1)


class PromptClassifier(nn.Module):
    """Logits = CLIP temperature x cosine(f(x), g(t_i)) for a frozen CLIP and a prompt learner (Eq. 2/3)."""

    def __init__(
        self,
        clip: Any,
        learner: CoOpPromptLearner,
        chunk: int = 0,
        checkpoint: bool = False,
        shared_prefix: bool = True,
    ) -> None:
        super().__init__()
        self.clip = freeze(clip)
        self.learner = learner
        self.chunk = chunk
        self.checkpoint = checkpoint
        self.shared_prefix = shared_prefix

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            img = image_features(self.clip, pixels)
        return self.logits(img)

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        """Logits from L2-normalised image features f(x) (B, E): the frozen image encoder's output does not
        change during prompt learning, so training computes it once per image."""
        scale = self.clip.logit_scale.exp()
        if isinstance(self.learner, CoCoOpPromptLearner):
            text = self.learner.conditional_text_features(
                self.clip, img, self.chunk, self.checkpoint, self.shared_prefix
            )
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
    shared_prefix: bool = True,
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
    return PromptClassifier(clip, learner, chunk, shared_prefix=shared_prefix)
