"""The statistics a report shows: median, nearest-rank percentiles, ratios. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def median(samples: Sequence[float]) -> float:
    """The median of SAMPLES (the mean of the middle two for an even count)."""
    if not samples:
        raise ValueError("median of no samples")
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(samples: Sequence[float], pct: float) -> float:
    """The PCT-th percentile of SAMPLES by nearest rank: the smallest sample that at
    least PCT percent of the samples are less than or equal to. Always a real sample."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    ordered = sorted(samples)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def p95(samples: Sequence[float]) -> float:
    """The 95th percentile of SAMPLES by nearest rank."""
    return percentile(samples, 95)


def ratio(value: float, reference: float) -> float | None:
    """VALUE / REFERENCE, or None where the reference is zero (no meaningful ratio)."""
    if reference == 0:
        return None
    return value / reference


@dataclass(frozen=True)
class Summary:
    """What the table shows of one series of samples."""

    n: int
    median: float
    p95: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        """The summary of SAMPLES (at least one)."""
        return cls(n=len(samples), median=median(samples), p95=p95(samples),
                   minimum=min(samples), maximum=max(samples))
