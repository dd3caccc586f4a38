"""Write a plan folder atomically: plan.json, dose.npz, fluence.npz, the case, figures, report.html.

dose.npz holds ``new_course_gy`` (physical Gy for photons, RBE-weighted Gy(RBE) for particles), ``new_course_eqd2_gy`` and ``cumulative_eqd2_gy``
(voxel-wise prior EQD2 after recovery + new EQD2, with the per-voxel alpha/beta map of the
evaluation) on the case grid (z, y, x); evaluation_samples.npz holds, per evaluated protocol line,
the sub-voxel samples its value was read on (see docs/plan-json.md, "Which grid"); fluence.npz holds
one array ``beam_<k>`` of weights per beam and the flat ``weights``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir
from ..case import write_case_files
from .html_report import write_report_html
from ..evaluate.curves import save_evaluation_samples
from .plan_figures import dose_figure, dvh_figure, plan_curves
from .robust_figure import dvh_band_figure


def _beam_index(influence) -> np.ndarray | None:
    cols = getattr(influence, "columns", None)
    if cols is None:
        return None
    try:
        return np.asarray(cols["beam"] if isinstance(cols, dict) else cols.beam)
    except (KeyError, AttributeError):
        return None


def write_plan_contents(plan, folder: Path, extra=None) -> dict:
    """Write every plan output into an existing folder; returns the plan.json content."""
    ev = plan.evaluation
    cumulative = np.asarray(ev.cumulative_eqd2_gy, dtype=np.float32)
    np.savez_compressed(folder / "dose.npz", new_course_gy=plan.new_dose_gy.astype(np.float32),
                        new_course_eqd2_gy=np.asarray(ev.new_eqd2_gy, dtype=np.float32),
                        cumulative_eqd2_gy=cumulative)
    fluence = {"weights": plan.weights.astype(np.float32)}
    beam_of_column = _beam_index(plan.influence)
    if beam_of_column is not None:
        for k in np.unique(beam_of_column):
            fluence[f"beam_{int(k)}"] = plan.weights[beam_of_column == k].astype(np.float32)
    np.savez_compressed(folder / "fluence.npz", **fluence)
    write_case_files(plan.case, folder)
    curves = plan_curves(plan)
    save_evaluation_samples(folder / "evaluation_samples.npz", curves)
    dvh_figure(plan, folder / "dvh.png", curves)
    dose_figure(plan, folder / "dose.png", cumulative)
    content = plan.to_dict()
    (folder / "plan.json").write_text(json.dumps(content, indent=2, default=_json_default))
    figures = [folder / "dvh.png", folder / "dose.png"]
    if dvh_band_figure(plan, folder / "dvh_bands.png") is not None:
        figures.append(folder / "dvh_bands.png")
    write_report_html(content, folder / "report.html", figures=figures)
    if extra is not None:
        extra(folder)
    return content


def write_plan_folder(plan, out_dir, extra=None) -> Path:
    """Write the plan folder atomically (temporary folder, then rename)."""
    with atomic_dir(out_dir) as tmp:
        write_plan_contents(plan, tmp, extra)
    return Path(out_dir)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
