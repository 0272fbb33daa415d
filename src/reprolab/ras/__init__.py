"""RAS: Reverse Attention for Salient Object Detection (Chen, Tan, Wang, Hu; ECCV 2018).

Public API::

    from reprolab.ras import RAS, deep_supervision_loss, load_vgg16_backbone, read_saliency_folder, evaluate_maps
"""

from reprolab.ras.data import SaliencySet, generate_scenes, normalize, read_saliency_folder
from reprolab.ras.metrics import (
    SaliencyScores,
    e_measure_curve,
    evaluate_maps,
    f_measure_curve,
    mae,
    precision_recall_curve,
    s_measure,
)
from reprolab.ras.model import (
    RAS,
    RASOutput,
    VGG16Backbone,
    deep_supervision_loss,
    load_vgg16_backbone,
    oracle_coarse_logits,
    reverse_attention,
)
from reprolab.ras.pretrain import ProxyBackbone, ProxySpec, generate_proxy_scenes, pretrained_backbone

__all__ = [
    "RAS",
    "ProxyBackbone",
    "ProxySpec",
    "RASOutput",
    "SaliencyScores",
    "SaliencySet",
    "VGG16Backbone",
    "deep_supervision_loss",
    "e_measure_curve",
    "evaluate_maps",
    "f_measure_curve",
    "generate_proxy_scenes",
    "generate_scenes",
    "load_vgg16_backbone",
    "mae",
    "normalize",
    "oracle_coarse_logits",
    "precision_recall_curve",
    "pretrained_backbone",
    "read_saliency_folder",
    "reverse_attention",
    "s_measure",
]
