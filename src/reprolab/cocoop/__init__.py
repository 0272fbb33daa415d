"""CoOp and CoCoOp prompt learning for CLIP-style models (Zhou, Yang, Loy, Liu; CVPR 2022).

Public API::

    from reprolab.cocoop import CoOpPromptLearner, CoCoOpPromptLearner, PromptClassifier, build_mini_clip

The learners work on any ``transformers.CLIPModel``; they are imported on first use, so that
``import reprolab.cocoop`` (done by the registry) stays light.
"""

from typing import Any

from reprolab.cocoop.experiment import CoCoOpConfig, harmonic_mean

_MODEL_EXPORTS = (
    "CoOpPromptLearner",
    "CoCoOpPromptLearner",
    "HFTokenizer",
    "PromptClassifier",
    "build_mini_clip",
    "saved_prompt_classifier",
)

__all__ = ["CoCoOpConfig", "harmonic_mean", *_MODEL_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _MODEL_EXPORTS:
        from reprolab.cocoop import model

        return getattr(model, name)
    raise AttributeError(f"module 'reprolab.cocoop' has no attribute {name!r}")
