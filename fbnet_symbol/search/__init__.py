"""The FBNet search: the Gumbel-softmax supernet and its loss, θ files and P_θ, sampling, the search task, its plots, the validity study, and the entry point of a run.

``from fbnet_symbol.search import SearchRun`` (the class lives in :mod:`.run`; loaded on
first use, so that reading θ files does not load MXNet).
"""


def __getattr__(name):
    if name in ("SearchRun", "SearchConfig"):
        from . import run
        return getattr(run, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
