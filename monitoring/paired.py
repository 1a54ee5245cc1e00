"""Two models scored on the same flights: per-model metrics and paired differences with CIs.

The flights are shared, so the two models' errors are correlated; comparing two
independent confidence intervals would throw that away and call real gains
"not yet known" for far longer. ROC-AUC's difference gets DeLong's paired
variance (DeLong, DeLong & Clarke-Pearson 1988; the midrank form of Sun & Xu
2014), which is exact in O(n log n) when flights are independent. Live flights
are not: a day's weather and congestion touch all of them, and which of two
models ranks a day's flights better changes from day to day (on the bundled
year DeLong's interval is two to four times narrower than the spread of 1- to
7-day windows; ``bench/paired_ci_calibration.py``). :func:`clustered_auc`
therefore treats each day as the unit: a delete-one-day jackknife of the same
difference, never narrower than DeLong's, with Student's t on the days. Log
loss and Brier score are means of per-flight losses, so their difference is the
mean of per-flight differences, resampled with a seeded paired bootstrap over
flights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

Z_95 = 1.959963984540054
# With two days, Student's t on one degree of freedom is 12.7: an interval that says nothing.
MIN_CLUSTERS = 3
DELONG, CLUSTERED = "delong", "day jackknife"
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] for the log loss, as scikit-learn did

# Which direction is better, per metric.
HIGHER_IS_BETTER = {"roc_auc": True, "log_loss": False, "brier": False}
METRICS = tuple(HIGHER_IS_BETTER)


@dataclass(frozen=True)
class PairedMetric:
    """``difference`` is challenger minus champion, with its 95% CI."""

    metric: str
    champion: float | None
    challenger: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    method: str

    @property
    def gain_sign(self) -> int:
        """+1 when the CI says the challenger is better, -1 worse, 0 when it crosses zero."""
        if self.ci_low is None or self.ci_high is None:
            return 0
        sign = 1 if HIGHER_IS_BETTER[self.metric] else -1
        if self.ci_low > 0:
            return sign
        if self.ci_high < 0:
            return -sign
        return 0

    def to_dict(self) -> dict[str, float | str | None]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _auc_components(y: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components for positives (V10) and negatives (V01)."""
    positives, negatives = p[y == 1], p[y == 0]
    m, n = len(positives), len(negatives)
    ranks_all = rankdata(np.concatenate([positives, negatives]))
    ranks_pos, ranks_neg = rankdata(positives), rankdata(negatives)
    auc = (ranks_all[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (ranks_all[:m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m
    return float(auc), v10, v01


def paired_auc(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray) -> PairedMetric:
    """ROC-AUC of both and DeLong's 95% CI of the difference; None when a class is absent."""
    m, n = int((y == 1).sum()), int((y == 0).sum())
    if m < 2 or n < 2:
        return PairedMetric("roc_auc", None, None, None, None, None, "delong")
    auc_a, v10_a, v01_a = _auc_components(y, champion)
    auc_b, v10_b, v01_b = _auc_components(y, challenger)
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    covariance = s10 / m + s01 / n
    variance = max(0.0, float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]))
    difference = auc_b - auc_a
    half = Z_95 * variance**0.5
    return PairedMetric("roc_auc", auc_a, auc_b, difference, difference - half,
                        difference + half, DELONG)  # fmt: skip


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    m = int(y.sum())
    n = len(y) - m
    if m < 2 or n < 2:
        return None
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - m * (m + 1) / 2) / (m * n))


def clustered_auc(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    clusters: np.ndarray,
    min_clusters: int = MIN_CLUSTERS,
) -> PairedMetric:
    """ROC-AUC of both and a 95% CI of the difference with each cluster (a day) as the unit.

    The difference is the pooled one, as in :func:`paired_auc`. Its variance is the
    delete-one-cluster jackknife's, (g - 1) / g * sum((d_-i - mean)^2) over the g
    clusters, or DeLong's when that is larger (a handful of days can agree by chance);
    the half-width is Student's t on g - 1 degrees of freedom times its root. Fewer
    than ``min_clusters`` clusters with both classes left out give no CI.
    """
    flights = paired_auc(y, champion, challenger)
    if flights.difference is None or flights.ci_low is None or flights.ci_high is None:
        return replace(flights, method=CLUSTERED)
    codes = np.unique(clusters, return_inverse=True)[1].ravel()
    left_out = []
    for cluster in range(int(codes.max()) + 1):
        keep = codes != cluster
        kept = y[keep]
        a, b = _auc(kept, champion[keep]), _auc(kept, challenger[keep])
        if a is not None and b is not None:
            left_out.append(b - a)
    g = len(left_out)
    if g < max(2, min_clusters):
        return replace(flights, ci_low=None, ci_high=None, method=CLUSTERED)
    draws = np.asarray(left_out)
    jackknife = (g - 1) / g * float(((draws - draws.mean()) ** 2).sum())
    delong = ((flights.ci_high - flights.ci_low) / (2 * Z_95)) ** 2
    half = float(student_t.ppf(0.975, g - 1)) * max(jackknife, delong) ** 0.5
    return replace(flights, ci_low=flights.difference - half,
                   ci_high=flights.difference + half, method=CLUSTERED)  # fmt: skip


def per_flight_losses(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    clipped = np.clip(p, EPS, 1 - EPS)
    return {
        "log_loss": -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)),
        "brier": (p - y) ** 2,
    }


def paired_losses(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> list[PairedMetric]:
    """Log loss and Brier of both, and a paired bootstrap 95% CI of their differences."""
    ours, theirs = per_flight_losses(y, champion), per_flight_losses(y, challenger)
    names = list(ours)
    if len(y) == 0:
        return [PairedMetric(name, None, None, None, None, None, "bootstrap") for name in names]
    differences = np.vstack([theirs[name] - ours[name] for name in names])
    means = bootstrap_means(differences, resamples, seed)
    out = []
    for i, name in enumerate(names):
        low, high = np.quantile(means[:, i], [0.025, 0.975]) if len(y) > 1 else (None, None)
        out.append(
            PairedMetric(
                name,
                float(ours[name].mean()),
                float(theirs[name].mean()),
                float(differences[i].mean()),
                None if low is None else float(low),
                None if high is None else float(high),
                "paired bootstrap",
            )
        )
    return out


def bootstrap_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of ``values`` (metrics x flights) over ``resamples`` resamplings of the flights,
    the same flights for every metric; (resamples x metrics). Chunked to bound memory."""
    rng = np.random.default_rng(seed)
    count = values.shape[1]
    chunk = max(1, 2_000_000 // max(1, count))
    means = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = rng.integers(0, count, size=(size, count))
        means.append(np.stack([row[picks].mean(axis=1) for row in values], axis=1))
    return np.concatenate(means)


def compare_pair(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    clusters: np.ndarray | None = None,
) -> dict[str, PairedMetric]:
    """ROC-AUC, log loss and Brier; with ``clusters`` (a day per flight) ROC-AUC's CI is
    :func:`clustered_auc`'s, else DeLong's."""
    auc = (paired_auc(y, champion, challenger) if clusters is None
           else clustered_auc(y, champion, challenger, clusters))  # fmt: skip
    metrics = [auc, *paired_losses(y, champion, challenger, resamples, seed)]
    return {m.metric: m for m in metrics}


def weighted_auc(scores: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC under each row of ``counts`` (bootstrap multiplicities per flight), ties half."""
    order = np.argsort(scores, kind="mergesort")
    scores, y, counts = scores[order], y[order], counts[:, order]
    starts = np.flatnonzero(np.r_[True, np.diff(scores) != 0])  # groups of tied scores
    pos = np.add.reduceat(counts * y, starts, axis=1)
    neg = np.add.reduceat(counts * (1 - y), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    return wins / (pos.sum(axis=1) * neg.sum(axis=1))


def mean_group_auc_difference(
    groups: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    resamples: int = 500,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The mean over groups (e.g. months) of ROC-AUC(a) - ROC-AUC(b), with a paired
    bootstrap 95% CI: flights resampled within each group, the same draws for both."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    labels = list(dict.fromkeys(groups.tolist()))
    point, draws = [], np.zeros(resamples)
    for group in labels:
        rows = np.flatnonzero(groups == group)
        yg = y[rows]
        point.append(roc_auc_score(yg, a[rows]) - roc_auc_score(yg, b[rows]))
        for start in range(0, resamples, 50):  # 50 replicates at a time bound the memory
            n = min(50, resamples - start)
            counts = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=n)
            counts = counts.astype(np.float64)
            diff = weighted_auc(a[rows], yg, counts) - weighted_auc(b[rows], yg, counts)
            draws[start : start + n] += diff / len(labels)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(np.mean(point)), float(low), float(high)
