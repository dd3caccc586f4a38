"""Write a comparison folder atomically.

Contents: ``comparison.json`` (see docs/compare.md), ``comparison.png``, ``falloff.png``,
``slices.png``, ``comparison.html``, and one complete plan folder per modality (``photon/``,
``proton/`` or ``carbon/``: plan.json, dose.npz, fluence.npz, the case, figures, report.html).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir
from ..report.plan_folder import write_plan_contents
from .figures import comparison_figure, falloff_figure, slices_figure
from .html_page import write_comparison_html

FIGURES = ("comparison.png", "falloff.png", "slices.png")


def _clean(obj):
    """JSON-ready: numpy scalars and arrays to Python, NaN / inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return _clean(obj.to_dict())
    return obj


def write_comparison_contents(cmp, folder: Path) -> dict:
    """Write every comparison output into an existing folder; returns the comparison.json content."""
    folder = Path(folder)
    for m, plan in cmp.plans.items():
        sub = folder / m
        sub.mkdir()
        write_plan_contents(plan, sub)
    comparison_figure(cmp, folder / FIGURES[0])
    falloff_figure(cmp, folder / FIGURES[1])
    slices_figure(cmp, folder / FIGURES[2])
    content = _clean(cmp.to_dict())
    (folder / "comparison.json").write_text(json.dumps(content, indent=2, allow_nan=False))
    write_comparison_html(content, folder / "comparison.html", [folder / f for f in FIGURES])
    return content


def write_comparison_folder(cmp, out_dir) -> Path:
    """Write the comparison folder atomically (temporary folder, then rename)."""
    with atomic_dir(out_dir) as tmp:
        write_comparison_contents(cmp, tmp)
    return Path(out_dir)
