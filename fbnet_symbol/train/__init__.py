"""Training any graph: the alternating loop and its Task contract, callbacks, run environment and state, checkpoints, schedules, evaluations, fixed-architecture training.

Knows nothing of FBNet: the search is one :class:`~fbnet_symbol.train.trainer.Task`
(:mod:`fbnet_symbol.search.task`), training a fixed network another (:mod:`.task`).
"""
