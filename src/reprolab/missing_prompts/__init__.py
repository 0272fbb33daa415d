"""Missing-aware prompts for multimodal transformers with missing modalities (Lee, Tsai, Chiu, Lee; CVPR 2023).

Importing this package does not import transformers (it loads inside the functions that build or load a ViLT).
"""

from reprolab.missing_prompts.data import (
    GlyphWordWorld,
    PairData,
    apply_missing,
    draw_missing_table,
    read_food101,
    read_hateful_memes,
    read_mmimdb,
)
from reprolab.missing_prompts.experiment import MissingPromptsConfig
from reprolab.missing_prompts.model import MissingAwarePrompts, PromptedVilt, build_mini_vilt, saved_prompted_vilt

__all__ = [
    "GlyphWordWorld",
    "MissingAwarePrompts",
    "MissingPromptsConfig",
    "PairData",
    "PromptedVilt",
    "apply_missing",
    "build_mini_vilt",
    "draw_missing_table",
    "read_food101",
    "read_hateful_memes",
    "read_mmimdb",
    "saved_prompted_vilt",
]
