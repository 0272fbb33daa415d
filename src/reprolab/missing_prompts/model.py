"""Missing-aware prompts on a frozen ViLT (Lee, Tsai, Chiu, Lee; CVPR 2023, arXiv 2303.03369).

Notation of the paper (Sec. 3): a multimodal transformer f with N layers f_1..f_N takes the embedded sequence
h^0 = [text tokens; image tokens]. Each training/test sample has a *missing case*
m in {complete, text missing, image missing} (Sec. 3.1); a missing modality is replaced by a dummy input (empty
text, a constant image). One prompt set P_m in R^{|layers| x L_p x d} is learned per missing case (Sec. 3.2) and is
chosen per sample by its m. Two ways of attaching P_m^i to layer i (Sec. 3.3):

* input-level (Eq. 4): the prompt tokens are prepended to the layer input, h^i = f_i([P_m^i; h^{i-1}]); at the
  next prompted layer the previous layer's prompt outputs are replaced by P_m^{i+1} (``input_mode="replace"``,
  the paper's description). The official code instead keeps them and prepends again, so the sequence grows by
  L_p per prompted layer (``input_mode="accumulate"``).
* attention-level (Eq. 5): P_m^i is split in two halves of L_p/2 vectors that are prepended to the *keys* and
  the *values* of the multi-head self-attention of layer i (prefix tuning); the sequence length is unchanged.

The attention mask always covers the prompt tokens (they are attended to by every query). The backbone (embeddings
and transformer layers) is frozen; the prompts, the pooler and the task head are trained (Sec. 4.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from reprolab.core.config import ConfigError

__all__ = [
    "COMPLETE",
    "IMAGE_MISSING",
    "MISSING_CASES",
    "TEXT_MISSING",
    "MissingAwarePrompts",
    "PromptedVilt",
    "build_mini_vilt",
    "fixed_prompts",
    "classifier_head",
    "count_parameters",
    "saved_prompted_vilt",
    "vilt_b32_trainable_fraction",
]

COMPLETE, TEXT_MISSING, IMAGE_MISSING = 0, 1, 2  # the official code's missing_type codes
MISSING_CASES = ("complete", "text_missing", "image_missing")


def build_mini_vilt(
    vocab_size: int,
    *,
    image_size: int = 16,
    patch_size: int = 4,
    hidden: int = 64,
    layers: int = 4,
    heads: int = 4,
    max_text_len: int = 16,
) -> Any:
    """A small ``transformers.ViltModel`` (same architecture as ViLT-B/32, smaller sizes), random weights."""
    from transformers import ViltConfig, ViltModel

    if hidden % heads:
        raise ConfigError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    if image_size % patch_size:
        raise ConfigError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
    config = ViltConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        image_size=image_size,
        patch_size=patch_size,
        max_position_embeddings=max_text_len,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_image_length=-1,
        pad_token_id=0,
    )
    return ViltModel(config)


def classifier_head(hidden: int, n_outputs: int) -> nn.Sequential:
    """The official task head: Linear(d, 2d) - LayerNorm - GELU - Linear(2d, classes)."""
    return nn.Sequential(
        nn.Linear(hidden, 2 * hidden), nn.LayerNorm(2 * hidden), nn.GELU(), nn.Linear(2 * hidden, n_outputs)
    )


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class MissingAwarePrompts(nn.Module):
    """One prompt set per missing case (paper Sec. 3.2): ``prompts[m]`` has shape ``(|layers|, L_p, d)``.

    ``forward(missing_type)`` with ``missing_type`` a ``(B,)`` long tensor in {0, 1, 2} returns the per-sample
    prompts ``(B, |layers|, L_p, d)``. Initialised ~ N(0, init_std^2).
    """

    def __init__(
        self,
        n_layers: int,
        length: int,
        hidden: int,
        *,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
        shared: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1 or length < 1:
            raise ConfigError(f"prompt layers and prompt_length must be >= 1, got {n_layers} and {length}")
        self.shared = shared  # the ablation: one prompt set for every missing case (not missing-aware)
        n_sets = 1 if shared else len(MISSING_CASES)
        init = torch.randn(n_sets, n_layers, length, hidden, generator=generator) * init_std
        self.prompts = nn.Parameter(init)

    def forward(self, missing_type: torch.Tensor) -> torch.Tensor:
        if missing_type.dtype != torch.long or missing_type.dim() != 1:
            raise ValueError(
                f"missing_type must be a 1-d long tensor, got {missing_type.dtype} {tuple(missing_type.shape)}"
            )
        if missing_type.numel() and (int(missing_type.min()) < 0 or int(missing_type.max()) >= len(MISSING_CASES)):
            raise ValueError(f"missing_type values must be in 0..{len(MISSING_CASES) - 1}")
        if self.shared:
            return self.prompts[torch.zeros_like(missing_type)]
        return self.prompts[missing_type]


def fixed_prompts(n_layers: int, length: int, hidden: int) -> torch.Tensor:
    """The official non-learned prompts (``learnt_p=False``, the paper's ViLT baseline): zeros with one all-ones
    row per missing case, row 0 for complete, 2 for text missing, 1 for image missing, on every prompted layer;
    shape (3, n_layers, length, hidden). Used as attention-level keys *and* values (official ``Attention``)."""
    if length < 3:
        raise ConfigError(f"fixed prompts need prompt_length >= 3 (one row per missing case), got {length}")
    out = torch.zeros(len(MISSING_CASES), n_layers, length, hidden)
    for case, row in ((COMPLETE, 0), (TEXT_MISSING, 2), (IMAGE_MISSING, 1)):
        out[case, :, row] = 1.0
    return out


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, S) 1/0 key mask -> (B, 1, 1, S) additive mask (0 where attended, -inf-like where masked)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _prefix_attention(
    layer: Any, hidden: torch.Tensor, key_mask: torch.Tensor, prompt: torch.Tensor, split_kv: bool = True
) -> torch.Tensor:
    """ViLT layer with attention-level prompts (paper Eq. 5): ``prompt`` (B, L_p, d) is split into L_p/2 key
    vectors and L_p/2 value vectors prepended to the projected keys and values of every head. ``split_kv=False``
    (the official fixed prompts) prepends all L_p vectors to both the keys and the values."""
    attn = layer.attention.attention
    batch, seq, _ = hidden.shape
    heads, head_dim = attn.num_attention_heads, attn.attention_head_size
    half = prompt.shape[1] // 2 if split_kv else prompt.shape[1]
    keys, values = (prompt[:, :half], prompt[:, half : 2 * half]) if split_kv else (prompt, prompt)
    x = layer.layernorm_before(hidden)
    q = attn.query(x)
    k = torch.cat([keys, attn.key(x)], dim=1)
    v = torch.cat([values, attn.value(x)], dim=1)

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(batch, t.shape[1], heads, head_dim).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(head_dim)
    full_mask = torch.cat([key_mask.new_ones(batch, half), key_mask], dim=1)
    probs = (scores + _additive_mask(full_mask, scores.dtype)).softmax(-1)
    context = (probs @ split(v)).transpose(1, 2).reshape(batch, seq, heads * head_dim)
    hidden = layer.attention.output(context, x) + hidden
    return layer.output(layer.intermediate(layer.layernorm_after(hidden)), hidden)


class PromptedVilt(nn.Module):
    """A ViLT backbone with optional missing-aware prompts and a classification head (paper Fig. 2).

    ``prompt_type``: ``"input"``, ``"attention"``, ``"fixed"`` (the official non-learned baseline,
    ``learnt_p=False``: :func:`fixed_prompts` as attention-level keys and values, not trained) or ``"none"``.
    ``shared_prompts``: one learned prompt set for all missing cases (the missing-aware ablation).
    ``prompt_layers``: indices of the layers that receive prompts (paper: 0..5 of 12).
    ``forward(input_ids (B,T), text_mask (B,T), pixel_values (B,3,H,W), missing_type (B,))`` -> logits (B, C).
    """

    def __init__(
        self,
        vilt: Any,
        n_outputs: int,
        *,
        prompt_type: str = "input",
        prompt_layers: Sequence[int] = (0, 1),
        prompt_length: int = 16,
        input_mode: str = "replace",
        generator: torch.Generator | None = None,
        init_token_ids: Sequence[int] | None = None,
        shared_prompts: bool = False,
    ) -> None:
        super().__init__()
        if prompt_type not in ("input", "attention", "fixed", "none"):
            raise ConfigError(f"prompt_type must be 'input', 'attention', 'fixed' or 'none', got {prompt_type!r}")
        if input_mode not in ("replace", "accumulate"):
            raise ConfigError(f"input_mode must be 'replace' or 'accumulate', got {input_mode!r}")
        n_layers = vilt.config.num_hidden_layers
        layers = sorted(set(int(i) for i in prompt_layers))
        if prompt_type != "none" and (not layers or layers[0] < 0 or layers[-1] >= n_layers):
            raise ConfigError(
                f"prompt_layers must be non-empty indices in 0..{n_layers - 1}, got {list(prompt_layers)}"
            )
        if prompt_type == "attention" and prompt_length < 2:
            raise ConfigError("attention-level prompts need prompt_length >= 2 (half keys, half values)")
        self.vilt = vilt
        self.prompt_type = prompt_type
        self.prompt_layers = layers if prompt_type != "none" else []
        self.input_mode = input_mode
        hidden = vilt.config.hidden_size
        self.prompts = (
            MissingAwarePrompts(
                len(self.prompt_layers), prompt_length, hidden, generator=generator, shared=shared_prompts
            )
            if prompt_type in ("input", "attention")
            else None
        )
        if prompt_type == "fixed":
            self.register_buffer("fixed", fixed_prompts(len(self.prompt_layers), prompt_length, hidden))
        if prompt_type == "input":
            self._init_from_vocabulary(generator, init_token_ids)
        self.head = classifier_head(hidden, n_outputs)
        if generator is not None:
            for p in self.head.parameters():
                if p.dim() > 1:
                    p.data.normal_(0.0, 0.02, generator=generator)
                else:
                    p.data.zero_()
            self.head[1].weight.data.fill_(1.0)

    def _init_from_vocabulary(self, generator: torch.Generator | None, token_ids: Sequence[int] | None) -> None:
        """Input-level prompts start as embeddings of random vocabulary tokens, as soft prompts are initialised in
        prompt tuning (Lester et al. 2021): drawn from ``token_ids`` when given (the generated world passes its
        filler words, which carry no label), else from every id >= 4 (not the special tokens). Prompt tokens then
        look like ordinary tokens to the frozen layers; a N(0, 0.02^2) start is normalised by each layer's pre-LN
        into an arbitrary unit-scale token, which in the mini ViLT often hurt more than the prompts could repair."""
        assert self.prompts is not None
        words = self.vilt.embeddings.text_embeddings.word_embeddings.weight.detach()
        shape = self.prompts.prompts.shape[:-1]
        if token_ids:
            pool = torch.as_tensor(list(token_ids), dtype=torch.long)
            if int(pool.min()) < 0 or int(pool.max()) >= words.shape[0]:
                raise ConfigError(f"init_token_ids must lie in 0..{words.shape[0] - 1}")
            ids = pool[torch.randint(0, len(pool), shape, generator=generator)]
        else:
            ids = torch.randint(min(4, words.shape[0] - 1), words.shape[0], shape, generator=generator)
        self.prompts.prompts.data.copy_(words[ids])

    # -- freezing ------------------------------------------------------------------------------
    def frozen_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of what :meth:`freeze_backbone` freezes (every backbone part but the pooler)."""
        return tuple(f"vilt.{name}." for name, _ in self.vilt.named_children() if name != "pooler")

    def freeze_backbone(self) -> PromptedVilt:
        """Freeze embeddings, transformer layers and final norm; keep prompts, pooler and head trainable."""
        for p in self.vilt.parameters():
            p.requires_grad_(False)
        for p in self.vilt.pooler.parameters():
            p.requires_grad_(True)
        return self

    def trainable_parameters(self) -> int:
        return count_parameters(self, trainable_only=True)

    # -- forward -------------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, text_mask: torch.Tensor, pixel_values: torch.Tensor):
        """ViLT embeddings h^0 = [text; CLS_img, patches] + modality types, and the (B, S) key mask."""
        emb = self.vilt.embeddings
        cfg = self.vilt.config
        if pixel_values.shape[-1] == cfg.image_size and pixel_values.shape[-2] == cfg.image_size:
            # Full-size images: every patch is valid and the position grid needs no interpolation, so the
            # patch embedding is computed directly (ViltEmbeddings.visual_embed gives the same tokens in a
            # random order, at much higher cost).
            patches = emb.patch_embeddings(pixel_values).flatten(2).transpose(1, 2)
            cls = emb.cls_token.expand(patches.shape[0], -1, -1)
            image_embeds = torch.cat([cls, patches], dim=1) + emb.position_embeddings
            image_mask = torch.ones(image_embeds.shape[:2], dtype=text_mask.dtype, device=text_mask.device)
            return emb(input_ids, text_mask, None, None, image_mask, None, image_embeds)
        pixel_mask = torch.ones(
            pixel_values.shape[0], *pixel_values.shape[-2:], dtype=torch.long, device=pixel_values.device
        )
        return emb(input_ids, text_mask, None, pixel_values, pixel_mask, None, None)

    def encode(
        self, input_ids: torch.Tensor, text_mask: torch.Tensor, pixel_values: torch.Tensor, missing_type: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        """Final normed hidden states (B, S', d) and the position of the text CLS token in them."""
        hidden, mask = self.embed(input_ids, text_mask, pixel_values)
        mask = mask.to(hidden.dtype)
        prompts = self.prompts(missing_type) if self.prompts is not None else None
        if self.prompt_type == "fixed":
            prompts = self.fixed[missing_type]
        n_prompt = 0  # prompt tokens currently at the front of the sequence (input-level)
        additive = None  # the additive form of ``mask``, made once per change of the mask, not per layer
        for i, layer in enumerate(self.vilt.encoder.layer):
            if prompts is not None and i in self.prompt_layers:
                p = prompts[:, self.prompt_layers.index(i)]
                if self.prompt_type in ("attention", "fixed"):
                    hidden = _prefix_attention(layer, hidden, mask, p, split_kv=self.prompt_type == "attention")
                    continue
                if self.input_mode == "replace" and n_prompt:
                    hidden, mask = hidden[:, n_prompt:], mask[:, n_prompt:]
                    n_prompt = 0
                hidden = torch.cat([p, hidden], dim=1)
                mask = torch.cat([mask.new_ones(mask.shape[0], p.shape[1]), mask], dim=1)
                n_prompt += p.shape[1]
                additive = None
            if additive is None:
                additive = _additive_mask(mask, hidden.dtype)
            hidden = layer(hidden, additive)[0]
        return self.vilt.layernorm(hidden), n_prompt

    def classify(self, hidden: torch.Tensor, cls_pos: int) -> torch.Tensor:
        """Logits from :meth:`encode`'s output: the pooler on the text CLS token, then the task head."""
        return self.head(self.vilt.pooler(hidden[:, cls_pos:]))

    def forward(
        self, input_ids: torch.Tensor, text_mask: torch.Tensor, pixel_values: torch.Tensor, missing_type: torch.Tensor
    ) -> torch.Tensor:
        return self.classify(*self.encode(input_ids, text_mask, pixel_values, missing_type))


def saved_prompted_vilt(
    n_outputs: int,
    prompt_type: str,
    shared_prompts: bool,
    prompt_layers: list[int],
    prompt_length: int,
    input_mode: str,
    backbone: dict[str, Any],
) -> PromptedVilt:
    """Rebuild a run's saved model (``reprolab.load_run(dir).model("single-both-prompt_input")``).

    ``backbone``: ``{"vilt_path": DIR}`` (``ViltModel.from_pretrained``) or ``{"build": kwargs of
    build_mini_vilt, "cache": file, "fingerprint": ..., "folders": [...]}``, the run's pretrained mini ViLT read
    from the cache file the run wrote (without ``cache``: the card's file holds the backbone's weights too). The
    prompts and head (and a fine-tuned backbone) are loaded from the saved file afterwards."""
    if "vilt_path" in backbone:
        from transformers import ViltModel

        vilt = ViltModel.from_pretrained(backbone["vilt_path"])
    else:
        vilt = build_mini_vilt(**backbone["build"])
        if "cache" in backbone:
            from reprolab.core.checkpoint import require_cached
            from reprolab.core.data import cache_home

            folders = [cache_home() / "missing_prompts", *backbone.get("folders", [])]
            vilt.load_state_dict(require_cached(backbone["cache"], folders, backbone["fingerprint"], "mini ViLT"))
    model = PromptedVilt(
        vilt.eval(), n_outputs, prompt_type=prompt_type, shared_prompts=shared_prompts, prompt_layers=prompt_layers,
        prompt_length=prompt_length, input_mode=input_mode,
    )
    model.freeze_backbone()
    return model


def vilt_b32_trainable_fraction(n_outputs: int, prompt_layers: int = 6, prompt_length: int = 16) -> dict[str, float]:
    """Parameter counts of the real ViLT-B/32 configuration (``ViltConfig()`` defaults, built on the meta device,
    so no memory is used) with the paper's prompts (3 cases x 6 layers x 16 tokens x 768) and the official head.

    Fractions are of the whole model (backbone incl. pooler + prompts + head), except
    ``vilt_b32_prompt_backbone_fraction`` = prompts / ViLT-B/32 alone. For MM-IMDb (23 genres): ViLT-B/32
    111,595,008, prompts 221,184 (0.196%; 0.198% of ViLT-B/32), pooler 590,592, head 1,219,607; prompts + pooler
    0.718%, prompts + pooler + head 2,031,383 = 1.80%."""
    from transformers import ViltConfig, ViltModel

    config = ViltConfig()
    with torch.device("meta"):
        vilt = ViltModel(config)
        head = classifier_head(config.hidden_size, n_outputs)
    backbone = count_parameters(vilt)
    pooler = count_parameters(vilt.pooler)
    prompts = len(MISSING_CASES) * prompt_layers * prompt_length * config.hidden_size
    head_n = count_parameters(head)
    total = backbone + prompts + head_n
    return {
        "vilt_b32_params": float(backbone),
        "vilt_b32_prompt_params": float(prompts),
        "vilt_b32_pooler_params": float(pooler),
        "vilt_b32_head_params": float(head_n),
        "vilt_b32_trainable_params": float(prompts + pooler + head_n),
        "vilt_b32_prompt_fraction": prompts / total,
        "vilt_b32_prompt_backbone_fraction": prompts / backbone,
        "vilt_b32_prompt_pooler_fraction": (prompts + pooler) / total,
        "vilt_b32_trainable_fraction": (prompts + pooler + head_n) / total,
    }
