"""Plain-language summary of a comparison, computed from the numbers (nothing written in advance)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Criterion:
    """One comparison criterion.

    Attributes:
        key: metric key in each modality's metric dict.
        label: human name.
        better: 'lower' or 'higher'.
        tolerance: differences up to this (same unit) count as equal.
        unit: unit text.
    """

    key: str
    label: str
    better: str
    tolerance: float
    unit: str


def winner(values: dict[str, float], criterion: Criterion) -> str | None:
    """The modality that is better on ``criterion``, or None if within tolerance / not comparable."""
    finite = {m: v for m, v in values.items() if v is not None and np.isfinite(v)}
    if len(finite) < 2:
        return None
    ordered = sorted(finite.items(), key=lambda mv: mv[1], reverse=(criterion.better == "higher"))
    (best, v_best), (_, v_next) = ordered[0], ordered[1]
    return best if abs(v_best - v_next) > criterion.tolerance else None


def summarise(metrics: dict[str, dict[str, float]], criteria: list[Criterion]) -> tuple[list[dict], list[str]]:
    """Per-criterion rows ``{criterion, values, better, winner}`` and summary sentences.

    ``metrics`` maps modality -> {key: value}."""
    rows, sentences = [], []
    tally: dict[str, list[str]] = {m: [] for m in metrics}
    for c in criteria:
        values = {m: metrics[m].get(c.key) for m in metrics}
        w = winner(values, c)
        rows.append({"criterion": c.label, "key": c.key, "unit": c.unit, "better": c.better,
                     "values": values, "winner": w})
        if w is not None:
            tally[w].append(c.label)
    for m, labels in tally.items():
        if labels:
            noun = "criterion" if len(labels) == 1 else "criteria"
            sentences.append(f"{m.capitalize()} is better on {len(labels)} {noun}: {', '.join(labels)}.")
    ties = [r["criterion"] for r in rows if r["winner"] is None]
    if ties:
        sentences.append(f"No meaningful difference on: {', '.join(ties)}.")
    return rows, sentences
