"""Compact proofs of model performance via mechanistic interpretability (Gross et al., NeurIPS 2024).

A one-layer attention-only Max-of-K transformer (:class:`MaxKTransformer`), its training, an exact
brute-force accuracy count, and sixteen proof strategies (:data:`STRATEGIES`) that each return a certified
lower bound on accuracy over all inputs together with their FLOP cost and unexplained dimension (Appendix A.2).
"""

from reprolab.maxk_proofs.brute_force import all_inputs, brute_force_correct, correct_mask_forward
from reprolab.maxk_proofs.model import (
    MaxKConfig,
    MaxKTransformer,
    PathProducts,
    load_state_dict_file,
    maxk_transformer,
    save_state_dict_file,
)
from reprolab.maxk_proofs.proofs import (
    STRATEGIES,
    FlopCounter,
    ProofResult,
    ProofStrategy,
    get_strategy,
    unexplained_dimension,
)
from reprolab.maxk_proofs.train import random_sequences, sample_accuracy, train_model

__all__ = [
    "STRATEGIES",
    "FlopCounter",
    "MaxKConfig",
    "MaxKTransformer",
    "PathProducts",
    "ProofResult",
    "ProofStrategy",
    "all_inputs",
    "brute_force_correct",
    "correct_mask_forward",
    "get_strategy",
    "load_state_dict_file",
    "maxk_transformer",
    "random_sequences",
    "sample_accuracy",
    "save_state_dict_file",
    "train_model",
    "unexplained_dimension",
]
