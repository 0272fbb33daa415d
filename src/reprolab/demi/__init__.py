"""DEMI: Decomposed Estimation of Mutual Information (Sordoni et al., ICML 2021).

Public API::

    from reprolab.demi import DEMIEstimator, InfoNCEEstimator, CorrelatedGaussian
"""

from reprolab.demi.data import CorrelatedGaussian, DigitsViews, gaussian_mi, rho_for_mi
from reprolab.demi.model import (
    BilinearCritic,
    ConcatCritic,
    DEMIEstimator,
    InfoNCEEstimator,
    SeparableCritic,
    conditional_infonce_exact,
    conditional_infonce_is,
    dv_lower_bound,
    infonce_lower_bound,
    make_critic,
    nwj_lower_bound,
)

__all__ = [
    "BilinearCritic",
    "ConcatCritic",
    "CorrelatedGaussian",
    "DEMIEstimator",
    "DigitsViews",
    "InfoNCEEstimator",
    "SeparableCritic",
    "conditional_infonce_exact",
    "conditional_infonce_is",
    "dv_lower_bound",
    "gaussian_mi",
    "infonce_lower_bound",
    "make_critic",
    "nwj_lower_bound",
    "rho_for_mi",
]
