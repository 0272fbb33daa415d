"""CoOp and CoCoOp prompt learning for CLIP-style models (Zhou, Yang, Loy, Liu; CVPR 2022)."""

from reprolab.cocoop.experiment import CoCoOpConfig, harmonic_mean

__all__ = ["CoCoOpConfig", "harmonic_mean"]
