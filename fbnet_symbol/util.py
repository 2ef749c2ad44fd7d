"""The seed's ``util`` names: its learning-rate schedule, Gumbel noise and logging set-up.

Defined in :mod:`fbnet_symbol.train.schedules`, :mod:`fbnet_symbol.search.supernet` and
:mod:`fbnet_symbol.cli`; kept here so that ``from fbnet_symbol.util import
CosineDecayScheduler_Grad`` works as the seed's ``from util import ...`` did.
"""
from .cli import setup_logging  # noqa: F401
from .search.supernet import gumbel_noise, step_rng  # noqa: F401
from .train.schedules import CosineDecayScheduler_Grad, CosineScheduler, StepScheduler  # noqa: F401
