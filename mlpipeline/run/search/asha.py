"""ASHA (asynchronous successive halving) as the runner applies it to a search's points, on
the metric rows it records: a stopper that returns a decision, never acts itself."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Set

from ...core.lifecycle import MetricKey, MetricRow


class AshaRungs:
    """The ASHA rungs of one search (its ``asha(...)`` declaration, as JSON): the values its
    points had when they first reached each rung's step."""

    def __init__(self, spec: Dict[str, Any]):
        self.metric = str(spec["metric"])
        self.grace, self.reduction = float(spec["grace"]), float(spec["reduction"])
        self.max_t = spec.get("max_t")
        self.sign = 1.0 if spec.get("mode", "min") == "min" else -1.0  # values kept as lower-is-better
        self.values: Dict[float, List[float]] = {}
        self.reached: Dict[str, int] = {}  # version -> rungs it has passed
        self.matched: Set[str] = set()     # versions that logged the metric with a step

    def rung(self, index: int) -> Optional[float]:
        step = self.grace * self.reduction ** index
        return None if self.max_t is not None and step > self.max_t else step

    def matches(self, row: MetricRow) -> bool:
        return self.metric in (row.name, str(MetricKey(row.split, row.name)))

    def observe(self, version: str, rows: Sequence[MetricRow]) -> Optional[str]:
        """Record the version's new rows; the reason to stop it, or None to let it go on."""
        for row in rows:
            if row.step is None or row.value is None or not self.matches(row) or not math.isfinite(row.value):
                continue
            self.matched.add(version)
            while True:
                index = self.reached.get(version, 0)
                step = self.rung(index)
                if step is None or row.step < step:
                    break
                self.reached[version] = index + 1
                value = self.sign * row.value
                seen = self.values.setdefault(step, [])
                seen.append(value)
                cutoff = _percentile(sorted(seen), 1.0 / self.reduction)
                if value > cutoff:
                    return (f"pruned by ASHA at step {row.step}: {self.metric}={row.value:.4g} is not among the best "
                            f"1/{self.reduction:g} of the {len(seen)} versions that reached step {step:g}")
        return None


def _percentile(values: List[float], fraction: float) -> float:
    """The value ``fraction`` of the way through sorted ``values`` (linear, as numpy's default)."""
    position = fraction * (len(values) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)
