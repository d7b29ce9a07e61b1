"""One-sided confidence bounds for a task's mean quality and for paired differences.

Every bound is analytic and vectorised (no resampling): a verdict is a pure function of
the scores, the same whatever the case ids, their order or the config's ``seed:``.

- Pass/fail scores (every value at an end of the 1..5 scale, or all one value there):
  the exact Clopper-Pearson bound on the share of passing cases, with Kish's effective
  number of cases when cases carry weights (Korn and Graubard, 1998).
- Graded scores and paired differences: Hall's (1992) skewness-corrected Student-t bound,
  near its level where the plain t bound is not (quality scores pile up near the top of
  the scale, so their mean's distribution is skewed), widened by an unseen-tail floor:
  with ``n`` cases none of which fell below the smallest seen, up to ``1 - alpha**(1/n)``
  of the population may lie there, down to the end of the scale (the rule of three).
  That floor is what stops a small sample of equal scores from giving a zero-width
  interval.
- Paired differences of pass/fail scores (each -4, 0 or +4): the wider of that bound and
  Tango's (1998) score bound for a difference of paired proportions; each alone misses
  more often than its level where the other does not (tests/test_figures.py enumerates
  every sample to show the level each delivers).

``low`` and ``high`` are each a one-sided bound at ``level``: ``mean >= low`` holds with
probability ``level``, and so does ``mean <= high`` (together, a two-sided interval at
``2 * level - 1``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass

import numpy as np
from scipy import special

#: the quality scale: a case's quality is 1 + 4 x its checks' weighted mean
SCALE = (1.0, 5.0)
#: the power at which the detectable difference and the cases needed are stated
POWER = 0.80
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
#: the most cases the exact count for pass/fail scores searches (beyond: the normal one)
BINOMIAL_SEARCH = 200_000
_EPS = 1e-9


@dataclass(frozen=True)
class Bounds:
    """The mean of some scores (qualities, or paired differences) with one-sided bounds."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    level: float
    method: str = ""
    #: Kish's effective number of cases (``n`` when every weight is equal)
    n_eff: float = 0.0
    #: per-case standard deviation (for the number of cases needed)
    sd: float = 0.0
    #: the range the scores can take (``SCALE`` for qualities, +-4 for differences)
    span: tuple[float, float] = SCALE
    #: scores summarised for the p-values: smallest, largest, skewness
    smallest: float = 0.0
    largest: float = 0.0
    skew: float = 0.0
    #: paired differences of pass/fail scores: the (weighted) share of cases that changed
    discordant: float = 0.0
    #: the t bound's degrees of freedom (0: ``n_eff - 1``); fewer for paired differences
    #: where most cases did not change
    df: float = 0.0
    #: paired graded differences: the (weighted) share of cases that changed, from which
    #: the t's degrees of freedom at n cases follow (``df`` is floored at 1)
    changed: float = 1.0

    @property
    def alpha(self) -> float:
        return 1.0 - self.level

    # -- tests against a bar ----------------------------------------------------------------

    def p_above(self, bar: float) -> float:
        """One-sided p-value of "the mean is at or below ``bar``" (small: it is above)."""
        return self._p(bar, above=True)

    def p_below(self, bar: float) -> float:
        """One-sided p-value of "the mean is at or above ``bar``" (small: it is below)."""
        return self._p(bar, above=False)

    def decide(self, bar: float) -> str:
        """``pass`` when the lower bound clears ``bar``, ``fail`` when the upper bound is
        below it, else ``inconclusive`` (the interval contains the bar)."""
        if self.low is None or self.high is None:
            return INCONCLUSIVE
        if self.low >= bar - _EPS:
            return PASS
        if self.high < bar - _EPS:
            return FAIL
        return INCONCLUSIVE

    def needed(self, bar: float) -> int | None:
        """Cases that would settle the comparison with ``bar`` (with 80 % power) if the
        mean and the spread stayed as observed; None when the mean sits on the bar, and
        when one case bounds nothing (its spread is unknown: see ``never_settles``)."""
        if self.mean is None or self.n_eff < 1.5:
            return None
        gap = abs(self.mean - bar)
        if gap < 1e-6:
            return None
        z = _z(self.level) + _z(POWER)
        design = self.n / self.n_eff if self.n_eff else 1.0
        normal = (z * self.sd / gap) ** 2 if self.sd > 0 else 0.0
        # the unseen-tail floor: n with (1 - alpha ** (1 / n)) * room <= gap
        room = (self.smallest - self.span[0]) if self.mean > bar else (self.span[1] - self.largest)
        tail = 0.0
        if room > gap:
            tail = math.log(self.alpha) / math.log1p(-gap / room)
        effective = max(normal, tail)
        if self.method == "clopper-pearson" and self.smallest != self.largest:
            effective = self._binomial_needed(bar, normal) or effective
        elif self.method in ("hall-t", "tango+hall-t") and self.sd > 0:
            effective = max(effective, self._t_needed(gap, above=self.mean > bar, start=normal))
        elif self.method == "tango+hall-t":
            # the score statistic grows as sqrt(n) at fixed shares of changed cases
            score = abs(_tango(bar / self.span[1], *self._changed(), self.n_eff))
            if not score > 0:
                return None
            z = z if self.discordant > 0 else _z(self.level)  # no spread: the bound itself
            effective = max(effective, self.n_eff * (z / score) ** 2)
        if not math.isfinite(effective):  # the mean a hair's breadth from the bar
            return None
        return max(self.n + 1, math.ceil(effective * design))

    def never_settles(self, bar: float) -> bool:
        """No number of cases would settle the comparison with ``bar``: the mean sits on
        it (not so for a single case, which says nothing of the spread: add cases)."""
        return self.mean is not None and self.n_eff >= 1.5 and self.needed(bar) is None

    def _t_needed(self, gap: float, above: bool, start: float) -> float:
        """Graded scores: the least n at which the gate's own bound (Hall's t at its
        degrees of freedom, the skewness over sqrt(n); for differences the wider of it
        and the plain t) would clear the bar by the 80 %-power margin, the level's
        quantile and the power's both taken through Hall's transformation, as the
        estimate's skewed distribution has them; searched by doubling and bisection (the
        normal approximation falls 10-80 % short at small n)."""
        # differences: at n cases, share x n changed, whose count less one is the df (the
        # share itself: worked back from the df, floored at 1, one changed case of 5 read
        # as 2, and 2 of 3 as 1 in 2)
        changed = self.changed
        differences = self.method == "hall-t" and self.span[0] == -self.span[1]

        def clears(n: float) -> bool:
            df = max(1.0, changed * n - 1) if differences else max(1.0, n - 1)
            a = (self.skew if above else -self.skew) / math.sqrt(n)
            level, power = special.stdtrit(df, self.level), special.stdtrit(df, POWER)
            # a lower bound's distance from the mean (an upper bound's: mirrored skewness)
            reach = float(_hall_inverse(level, a)) + float(_hall_inverse(power, a))
            if differences:
                reach = max(reach, level + power)
            return self.sd / math.sqrt(n) * reach <= gap

        low, high = 2.0, max(2.0, start)
        while not clears(high):
            low, high = high, high * 2
            if high > 1e12:
                return math.inf
        # bisect on whole cases: the least n that clears (a fractional bracket, then its
        # ceiling, gave one case more whenever the boundary sat just above a whole n)
        low, high = math.floor(low), math.ceil(high)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if clears(middle) else (middle, high)
        return float(high)

    def _changed(self) -> tuple[float, float]:
        """Paired pass/fail differences: the (effective) counts of cases that went up and
        that went down."""
        delta = (self.mean or 0.0) / self.span[1]
        return (
            self.n_eff * (self.discordant + delta) / 2,
            self.n_eff * (self.discordant - delta) / 2,
        )

    def _binomial_needed(self, bar: float, normal: float) -> int | None:
        """The exact count for pass/fail scores: the least n from which the Clopper-Pearson
        rule's binomial power stays at 80 % or more (power saw-tooths with n), searched up
        to twice the normal approximation, which it exceeds by 5-60 % at small margins
        (a grid, the bracket it finds, then every n for half as many again past it, up
        to 2,000);
        None past ``BINOMIAL_SEARCH`` cases, where the approximation is close."""
        lo, hi = self.span
        p1, p0 = (self.mean - lo) / (hi - lo), (bar - lo) / (hi - lo)  # type: ignore[operator]
        if self.mean < bar:  # proving "below": count the failing cases instead
            p1, p0 = 1 - p1, 1 - p0
        first, top = max(1, int(0.8 * normal)), int(min(BINOMIAL_SEARCH, 2 * normal + 200))
        if top <= normal:
            return None
        # every n where that is cheap; else a grid, then every n of the bracket it finds
        grid = np.unique(np.linspace(first, top, min(top - first + 1, 64)).round())
        short = np.flatnonzero(_binomial_power(grid, p0, p1, self.level) < POWER)
        if not short.size:
            return int(grid[0])
        if short[-1] == grid.size - 1:
            return None
        between = np.arange(grid[short[-1]], grid[short[-1] + 1] + 1)
        low = np.flatnonzero(_binomial_power(between, p0, p1, self.level) < POWER)
        found = int(between[low[-1] + 1]) if low.size else int(between[0])
        # the grid sees only its own points: a dip below 80 % may follow the bracket, so
        # scan every n forward from there (the saw-tooth's dips shrink as n grows) until
        # a window of half the count (at least 200, at most 2,000) has none
        while True:
            ahead = np.arange(found, min(top, found + max(200, min(found // 2, 2_000))) + 1)
            dips = np.flatnonzero(_binomial_power(ahead, p0, p1, self.level) < POWER)
            if not dips.size:
                return found
            found = int(ahead[dips[-1]]) + 1
            if found > top:
                return None

    def detectable(self) -> float | None:
        """The smallest true difference from a bar that this many cases would detect with
        80 % power, at the observed spread (the half-width of the wider one-sided bound,
        scaled from the level's z to z + z_power)."""
        if self.mean is None or self.low is None or self.high is None:
            return None
        half = max(self.mean - self.low, self.high - self.mean)
        return half * (_z(self.level) + _z(POWER)) / _z(self.level)

    def _p(self, bar: float, above: bool) -> float:
        if self.mean is None or self.n_eff < 1.5 or self.method == "none":
            return 1.0
        lo, hi = self.span
        if self.method == "clopper-pearson":
            share = (bar - lo) / (hi - lo)
            k = (self.mean - lo) / (hi - lo) * self.n_eff
            n = self.n_eff
            if not 0 < share < 1:
                return 1.0
            if above:  # P(K >= k | share)
                return 1.0 if k <= 0 else float(special.betainc(k, n - k + 1, share))
            return 1.0 if k >= n else float(special.betainc(n - k, k + 1, 1 - share))
        n = self.n_eff
        p_tango = 0.0
        if self.method == "tango+hall-t":  # rejected only where both reject
            score = _tango(bar / hi, *self._changed(), n)
            p_tango = float(special.ndtr(-score if above else score))
        # Hall's statistic
        if self.sd > 0:
            t = (self.mean - bar) / (self.sd / math.sqrt(n))
            g = _hall(t, self.skew / math.sqrt(n))
            df = max(self.df or n - 1, 1.0)
            p_t = float(special.stdtr(df, -g if above else g))
            if self.method == "hall-t" and self.span[0] == -self.span[1]:  # see bounds
                p_t = max(p_t, float(special.stdtr(df, -t if above else t)))
        else:
            p_t = 0.0 if (self.mean > bar + _EPS if above else self.mean < bar - _EPS) else 1.0
        # the unseen-tail floor
        gap = (self.mean - bar) if above else (bar - self.mean)
        room = (self.smallest - lo) if above else (hi - self.largest)
        if gap <= _EPS:
            p_f = 1.0
        elif room <= gap:
            p_f = 0.0
        else:
            p_f = (1 - gap / room) ** n
        return max(p_t, p_f, p_tango)


def _z(level: float) -> float:
    return float(special.ndtri(level))


def _binomial_power(sizes: np.ndarray, p0: float, p1: float, level: float) -> np.ndarray:
    """The chance that ``sizes`` pass/fail cases with a true share ``p1`` of passes show,
    by the exact one-sided test at ``level``, a share above ``p0``: the test passes on more
    than j passes, j the least with P(K <= j | p0) >= level."""
    z = _z(level)
    sizes = sizes.astype(np.int64)  # bdtr wants whole counts
    # from the Cornish-Fisher quantile, stepped to the exact one on the integers
    guess = sizes * p0 + z * np.sqrt(sizes * p0 * (1 - p0)) + (z * z - 1) * (1 - 2 * p0) / 6
    j = np.clip(np.round(guess - 0.5), 0, sizes).astype(np.int64)
    for _ in range(64):
        up = special.bdtr(j, sizes, p0) < level
        down = (j > 0) & (special.bdtr(j - 1, sizes, p0) >= level)
        if not (up.any() or down.any()):
            break
        j = j + up.astype(np.int64) - down.astype(np.int64)
    return np.where(j < sizes, special.bdtrc(j, sizes, p1), 0.0)


def _hall(t: float, a: float) -> float:
    """Hall's monotone transformation of the studentized mean, ``a`` = skewness / sqrt(n)."""
    if abs(a) < 1e-12:
        return t
    return ((1 + a * t / 3) ** 3 - 1) / a + a / 6


def _tango(delta: float, up: float, down: float, n: float) -> float:
    """Tango's (1998) score statistic for a difference ``delta`` of paired proportions,
    ``up`` cases having gone from failing to passing and ``down`` the other way, of ``n``:
    (up - down - n delta) / sqrt(n (2 q + delta (1 - delta))), q the constrained maximum
    likelihood estimate of the share that went down. Decreasing in ``delta``."""
    a = 2 * n
    b = -up - down + (2 * n - up + down) * delta
    c = -down * delta * (1 - delta)
    q = (math.sqrt(max(b * b - 4 * a * c, 0.0)) - b) / (2 * a)
    variance = n * (2 * q + delta * (1 - delta))
    numerator = up - down - n * delta
    if variance <= 0:
        return math.copysign(math.inf, numerator) if numerator else 0.0
    return numerator / math.sqrt(variance)


def _tango_bound(up: float, down: float, n: float, score: float) -> float:
    """The difference at which Tango's statistic equals ``score`` (its lower bound for a
    positive ``score``, its upper for a negative one), by bisection on (-1, 1)."""
    below, above = -1.0, 1.0
    for _ in range(80):
        middle = (below + above) / 2
        if _tango(middle, up, down, n) > score:
            below = middle
        else:
            above = middle
    return (below + above) / 2


def _hall_inverse(u: float, a: float) -> float:
    if abs(a) < 1e-12:
        return u
    return 3 / a * (np.cbrt(1 + a * (u - a / 6)) - 1)


def bounds(
    values: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    *,
    level: float = 0.95,
    span: tuple[float, float] = SCALE,
) -> Bounds:
    """One-sided bounds at ``level`` for the weighted mean of ``values``, which lie in
    ``span`` (cases of weight 0 count for nothing)."""
    x = np.asarray(values, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.lexsort((w, x))  # sums in one order: bit-for-bit the same whatever the ids
    x, w = x[order], w[order]
    n = int(x.size)
    lo, hi = span
    if n == 0:
        return Bounds(0, None, None, None, level, "none", span=span)
    total = float(w.sum())
    # (w * x).sum(), not np.dot: BLAS's threads make a dot product of 100,000 values 50x
    # slower on a busy machine, and numpy's pairwise sum is as exact
    mean = float((w * x).sum() / total)
    n_eff = total * total / float((w * w).sum())
    smallest, largest = float(x.min()), float(x.max())
    alpha = 1.0 - level
    if n_eff < 1.5:
        # one case bounds nothing: the interval is the whole range
        return Bounds(n, mean, lo, hi, level, "none", n_eff, 0.0, span, smallest, largest)
    at_ends = (np.abs(x - lo) < _EPS) | (np.abs(x - hi) < _EPS)
    three_point = lo == -hi and bool(np.all(at_ends | (np.abs(x) < _EPS)))
    if not three_point and bool(np.all(at_ends)):
        # clamped: a weighted mean of equal values can land a rounding error outside them
        share = min(1.0, max(0.0, (mean - lo) / (hi - lo)))
        k = share * n_eff
        low = lo + (hi - lo) * (
            float(special.betaincinv(k, n_eff - k + 1, alpha)) if k > 0 else 0.0
        )
        high = lo + (hi - lo) * (
            float(special.betaincinv(k + 1, n_eff - k, 1 - alpha)) if k < n_eff else 1.0
        )
        sd = (hi - lo) * math.sqrt(share * (1 - share))
        return Bounds(
            n, mean, low, high, level, "clopper-pearson", n_eff, sd, span, smallest, largest
        )
    d = x - mean
    var = float((w * d * d).sum() / total)  # weighted, divided by the total weight
    sd = math.sqrt(var * n_eff / (n_eff - 1))
    skew = float((w * d * d * d).sum() / total) / var**1.5 if var > 0 else 0.0
    se = sd / math.sqrt(n_eff)
    df = n_eff - 1
    if lo == -hi and not three_point:
        # paired differences: the spread is estimated from the cases that changed only, so
        # when most did not (a cached re-run), the studentized mean has the tails of a t
        # with as many degrees of freedom as changed cases, not as cases: Hall's t at
        # n - 1 passed 5.6-6.6 % of unchanged routes at rho 0.9-0.95
        share = float((w * (np.abs(x) > _EPS)).sum()) / total
        df = max(1.0, min(df, share * n_eff - 1))
    q = float(special.stdtrit(df, level))
    a = skew / math.sqrt(n_eff)
    low = mean - se * float(_hall_inverse(q, a))
    high = mean - se * float(_hall_inverse(-q, a))
    if lo == -hi and not three_point:
        # and the wider of Hall's bound and the plain t bound: where the differences are
        # truly skewed (a drop) the plain t misses (6.7 % at rho 0.97), where they are
        # symmetric but sparse (no real change) the noise of the estimated skewness makes
        # Hall's miss (6.1 % at rho 0.95); the wider holds in both
        low, high = min(low, mean - se * q), max(high, mean + se * q)
    p0 = 1.0 - alpha ** (1.0 / n_eff)
    # the floor, and the scale's own ends (a mean cannot lie outside them)
    low = max(lo, min(low, mean - p0 * (smallest - lo)))
    high = min(hi, max(high, mean + p0 * (hi - largest)))
    if not three_point:
        changed = share if lo == -hi else 1.0
        return Bounds(
            n, mean, low, high, level, "hall-t", n_eff, sd, span, smallest, largest, skew,
            df=df, changed=changed,
        )  # fmt: skip
    # paired differences of pass/fail scores (-w, 0 or +w): also Tango's score bound, and
    # the wider of the two. Each misses where the other holds (by exact enumeration, t
    # up to 6.7 % when flips both ways are few, Tango up to 7.6 % when they go one way
    # only), and the wider misses no more often than the better of the two.
    changed = float((w * (np.abs(x) > _EPS)).sum() / total)
    delta = mean / hi
    up, down = n_eff * (changed + delta) / 2, n_eff * (changed - delta) / 2
    z = _z(level)
    low = min(low, hi * _tango_bound(up, down, n_eff, z))
    high = max(high, hi * _tango_bound(up, down, n_eff, -z))
    return Bounds(
        n, mean, low, high, level, "tango+hall-t", n_eff, sd, span, smallest, largest, skew,
        discordant=changed, df=df,
    )  # fmt: skip


def column(values: Iterable[float | bool | None]) -> np.ndarray:
    """Floats with None as NaN and booleans as 1.0 / 0.0 (a list first: numpy converts it
    in C, and ``map`` over dict views or ``operator.attrgetter`` keeps the loop in C too)."""
    return np.array(list(values), dtype=float)


def weights_column(weights: Mapping[str, float] | None, keys: Iterable[str]) -> np.ndarray:
    """The weights of ``keys`` (1.0 where none is given)."""
    if not weights:
        return np.ones(len(keys) if isinstance(keys, Sized) else 0)
    return column(map(weights.get, keys, itertools.repeat(1.0)))


def mean_bounds(
    values: Mapping[str, float | None],
    weights: Mapping[str, float] | None = None,
    *,
    level: float = 0.95,
) -> Bounds:
    """Bounds of a route's mean quality over its scored cases of positive weight."""
    x = column(values.values())
    w = weights_column(weights, values.keys())
    keep = ~np.isnan(x)
    return bounds(x[keep], w[keep], level=level)


def paired(
    current: Mapping[str, float | None],
    reference: Mapping[str, float | None],
    weights: Mapping[str, float] | None = None,
    *,
    level: float = 0.95,
) -> Bounds:
    """Bounds of the mean of ``current - reference`` over the cases both scored."""
    now = column(current.values())
    then = column(map(reference.get, current.keys()))
    return paired_columns(now, then, weights_column(weights, current.keys()), level=level)


def paired_columns(
    now: np.ndarray, then: np.ndarray, weights: np.ndarray, *, level: float = 0.95
) -> Bounds:
    """``paired`` on aligned columns (NaN: the case was not scored on that side)."""
    keep = ~(np.isnan(now) | np.isnan(then))
    width = SCALE[1] - SCALE[0]
    return bounds(now[keep] - then[keep], weights[keep], level=level, span=(-width, width))


def mcnemar(to_fail: int, to_pass: int) -> float:
    """Exact (binomial) two-sided McNemar p-value for ``to_fail`` cases that went from
    passing to failing against ``to_pass`` that went the other way."""
    flips = to_fail + to_pass
    if flips == 0:
        return 1.0
    return min(1.0, 2.0 * float(special.bdtr(min(to_fail, to_pass), flips, 0.5)))


def holm(pvalues: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected with the chance of any
    false rejection at most ``alpha``."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    m = len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (m - rank) + _EPS * alpha:
            break
        rejected[i] = True
    return rejected


def familywise(tests: int, alpha: float) -> float:
    """The chance that at least one of ``tests`` independent tests, each at ``alpha`` and
    each on its null, rejects: ``1 - (1 - alpha) ** tests`` (at most ``tests * alpha``
    whatever their dependence)."""
    return 1.0 - (1.0 - alpha) ** tests if tests else 0.0
