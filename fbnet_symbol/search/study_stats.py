"""The study's statistics: does a searched network beat random networks of equal latency?

A *network* here is ``{"latency_ms": float, "accs": [top-1 per training seed], ...}``.

* :func:`neighbour_difference` — the random networks within ±10% of a searched network's
  latency, its mean accuracy minus theirs, and a 95% bootstrap interval that resamples the
  neighbours (networks) and, inside every network, its training seeds: both sources of
  spread a claim must survive (Li & Talwalkar 2019; Yang et al. 2020).
* :func:`dominated_share` — the share of all random networks it dominates (latency no
  higher and mean accuracy no lower, one of them strictly).
* :func:`rank_agreement` — Spearman's ρ between a score the supernet gives each random
  network (log P_θ, or its accuracy inside the supernet) and its accuracy trained alone:
  whether the supernet ranks networks at all.
"""
import numpy as np


def mean_acc(net):
    return float(np.mean(net["accs"]))


def neighbours(searched, randoms, band=0.10):
    """The random networks whose latency is within ``band`` (relative) of ``searched``'s."""
    lat = searched["latency_ms"]
    return [r for r in randoms if abs(r["latency_ms"] - lat) <= band * lat]


def _resampled_mean(accs_per_net, rng):
    """One bootstrap draw: networks with replacement, then seeds with replacement inside
    each drawn network; the mean over networks of their mean accuracy."""
    picked = rng.randint(len(accs_per_net), size=len(accs_per_net))
    means = []
    for i in picked:
        accs = accs_per_net[i]
        means.append(np.mean(accs[rng.randint(len(accs), size=len(accs))]))
    return float(np.mean(means))


def neighbour_difference(searched, randoms, band=0.10, draws=2000, seed=0, level=0.95):
    """Mean accuracy of ``searched`` minus that of its latency neighbours, with a bootstrap
    interval (percentile, ``level``). ``None`` figures when it has no neighbour."""
    near = neighbours(searched, randoms, band)
    out = {"neighbours": len(near), "difference": None, "low": None, "high": None}
    if not near:
        return out
    mine = np.asarray(searched["accs"], float)
    theirs = [np.asarray(r["accs"], float) for r in near]
    out["difference"] = mean_acc(searched) - float(np.mean([a.mean() for a in theirs]))
    rng = np.random.RandomState(seed)
    diffs = [_resampled_mean([mine], rng) - _resampled_mean(theirs, rng) for _ in range(draws)]
    tail = (1 - level) / 2 * 100
    out["low"], out["high"] = (float(v) for v in np.percentile(diffs, [tail, 100 - tail]))
    return out


def dominates(a, b):
    """``a`` is no slower and no less accurate than ``b``, and better in one of the two."""
    la, lb, aa, ab = a["latency_ms"], b["latency_ms"], mean_acc(a), mean_acc(b)
    return la <= lb and aa >= ab and (la < lb or aa > ab)


def dominated_share(searched, randoms):
    """The share of ``randoms`` that ``searched`` dominates."""
    return float(np.mean([dominates(searched, r) for r in randoms])) if randoms else None


def rank_agreement(scores, accuracies):
    """Spearman's ρ (and its two-sided p) between supernet scores and accuracies alone."""
    from scipy import stats
    if len(scores) < 3:
        return {"rho": None, "p": None, "n": len(scores)}
    res = stats.spearmanr(scores, accuracies)
    return {"rho": float(res.correlation), "p": float(res.pvalue), "n": len(scores)}
