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
  whether the supernet ranks networks at all; and the same at equal latency (partial ρ).
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


def rank_agreement(scores, accuracies, latencies=None):
    """Spearman's ρ (and its two-sided p) between supernet scores and accuracies alone;
    with ``latencies``, also the partial ρ at equal latency (``partial_rho``): the
    correlation of the rank residuals once each rank is regressed on the latency rank —
    where lighter networks train better, a score that merely prefers light networks agrees
    with accuracy without ranking architectures."""
    from scipy import stats
    out = {"rho": None, "p": None, "n": len(scores)}
    if len(scores) < 3:
        return out
    res = stats.spearmanr(scores, accuracies)
    out.update(rho=float(res.correlation), p=float(res.pvalue))
    if latencies is not None and len(scores) >= 4:
        lat = stats.rankdata(latencies)
        resid = [r - np.polyval(np.polyfit(lat, r, 1), lat)
                 for r in (stats.rankdata(scores), stats.rankdata(accuracies))]
        if all(np.ptp(r) > 1e-12 for r in resid):
            part = stats.pearsonr(resid[0], resid[1])
            out.update(partial_rho=float(part[0]), partial_p=float(part[1]))
    return out


def pareto_front(points):
    """Indices of the ``(latency, accuracy)`` points no other point beats (lower latency and
    higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _compared(net, randoms):
    out = dict(name=net["name"], latency_ms=net["latency_ms"], acc_mean=mean_acc(net),
               acc_sd=float(np.std(net["accs"])), seeds=len(net["accs"]),
               dominated_share=dominated_share(net, randoms))
    out.update(neighbour_difference(net, randoms))
    return out


def summarise(nets):
    """The study's figures from its networks (``kind``, ``latency_ms``, ``accs``; the
    searched ones ``key``, ``variant``, ``alpha``, ``expected_latency_ms``; every one
    ``log_p``: {search key: log P_θ}). The headline is the main variant's (``""``); each
    other variant gets its own in ``variants``."""
    from scipy import stats
    searched = [n for n in nets if n["kind"] == "searched"]
    main = [n for n in searched if not n.get("variant")]
    randoms = [n for n in nets if n["kind"] == "random"]
    baselines = [n for n in nets if n["kind"] == "baseline"]
    out = {"searched": len(main), "random": len(randoms), "baselines": len(baselines)}
    if randoms:
        accs = [mean_acc(r) for r in randoms]
        out["random_acc"] = {"median": float(np.median(accs)), "min": float(min(accs)),
                             "max": float(max(accs))}
    if len({n["alpha"] for n in main}) > 1:
        alphas = [n["alpha"] for n in main]
        for key in ("latency_ms", "expected_latency_ms"):
            out["spearman_alpha_vs_%s" % key] = float(
                stats.spearmanr(alphas, [n[key] for n in main]).correlation)
    out["per_searched"] = [dict(_compared(n, randoms), alpha=n["alpha"],
                                variant=n.get("variant", "")) for n in searched]
    out["per_baseline"] = [_compared(n, randoms) for n in baselines]
    out["rank_agreement"] = {
        n["key"]: dict(rank_agreement([r["log_p"][n["key"]] for r in randoms],
                                      [mean_acc(r) for r in randoms],
                                      [r["latency_ms"] for r in randoms]),
                       variant=n.get("variant", "")) for n in searched}
    variants = {n.get("variant", "") for n in searched}
    heads = {v: headline([s for s in out["per_searched"] if s["variant"] == v],
                         [r for r in out["rank_agreement"].values() if r["variant"] == v],
                         out.get("random_acc")) for v in variants}
    out["headline"] = heads.pop("", None) or headline([], [], out.get("random_acc"))
    out["variants"] = heads
    return out


def headline(per_searched, agreements, random_acc=None):
    """The answer in a few numbers: how many searched networks are better / worse than their
    random latency neighbours beyond the 95% interval, the mean difference, the mean share
    of random networks dominated, and the median rank agreement."""
    compared = [s for s in per_searched if s["difference"] is not None]
    rhos = [r["rho"] for r in agreements if r["rho"] is not None]
    partial = [r["partial_rho"] for r in agreements if r.get("partial_rho") is not None]
    return {
        "searched": len(per_searched), "with_neighbours": len(compared),
        "better_than_neighbours": sum(s["low"] > 0 for s in compared),
        "worse_than_neighbours": sum(s["high"] < 0 for s in compared),
        "mean_difference": float(np.mean([s["difference"] for s in compared]))
        if compared else None,
        "mean_dominated_share": float(np.mean([s["dominated_share"] for s in per_searched]))
        if per_searched else None,
        "median_rank_agreement": float(np.median(rhos)) if rhos else None,
        "median_rank_agreement_at_equal_latency": float(np.median(partial)) if partial else None,
        "random_median_acc": (random_acc or {}).get("median")}
