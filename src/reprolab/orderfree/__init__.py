"""Order-free RNN with visual attention for multi-label classification (Chen et al., AAAI 2018).

Light to import: the experiment registration lives in :mod:`reprolab.orderfree.experiment`; models,
decoding and data load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AttentionLSTMDecoder": "model",
    "BinaryRelevanceHead": "model",
    "CNNRNNDecoder": "model",
    "ImageLabeller": "model",
    "build_image_labeller": "model",
    "ResNetBackbone": "model",
    "load_torchvision_resnet": "model",
    "beam_search": "decode",
    "exact_search": "decode",
    "set_map_decode": "decode",
    "sequence_log_prob": "decode",
    "greedy_decode": "decode",
    "sequence_loss": "decode",
    "frequent_first_sequences": "decode",
    "make_digit_canvases": "data",
    "read_coco_instances": "data",
    "read_yolo_labels": "data",
    "read_yolo_dataset": "data",
    "multilabel_scores": "metrics",
    "mean_average_precision": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"reprolab.orderfree.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'reprolab.orderfree' has no attribute {name!r}")
