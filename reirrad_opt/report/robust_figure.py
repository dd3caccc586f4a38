"""dvh_bands.png: the DVHs of a plan over its uncertainty scenarios, as bands (the envelope over the
scenarios) around the nominal curve, drawn from the samples the evaluation read in each scenario."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..evaluate.curves import evaluation_curves
from .case_figure import structure_colour

DPI = 110
N_DOSE_POINTS = 400


def _volume_pct_above(dose: np.ndarray, volume: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Cumulative DVH: % of the volume receiving at least each of ``levels``."""
    order = np.argsort(dose)
    d, v = dose[order], volume[order]
    above = np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])   # volume at or above d[i]
    idx = np.searchsorted(d, levels, side="left")
    return 100.0 * above[idx] / max(float(v.sum()), 1e-12)


def dvh_band_figure(plan, path: Path) -> Figure | None:
    """Write dvh_bands.png for a plan with a robust evaluation (None, nothing written, without one). Left:
    cumulative EQD2 of the priority-1 organ lines; right: the targets' new-course dose. Each band spans the
    lowest to the highest DVH over the scenarios at every dose; the line is the nominal DVH."""
    robust = getattr(plan, "robust", None)
    if robust is None or not robust.doses:
        return None
    n_fx = plan.fractionation.n_fractions
    curves = {name: {c.name: c for c in evaluation_curves(plan.case, ev, robust.doses[name], n_fx)}
              for name, ev in robust.evaluations.items() if name in robust.doses}
    nominal = curves[robust.scenarios[0].name]
    p1 = {r.goal_id for r in plan.evaluation.rows if r.priority == 1}
    organ = [c for c in nominal.values() if c.cumulative and p1 & set(c.goal_ids)]
    target = [c for c in nominal.values() if not c.cumulative and c.structure in ("rGTV", "PTV")]
    fig = Figure(figsize=(13, 5.2))
    FigureCanvasAgg(fig)
    for k, (chosen, title) in enumerate(((organ, "priority-1 organs: cumulative EQD2"),
                                         (target, "targets: new-course dose"))):
        ax = fig.add_subplot(1, 2, k + 1)
        unit = chosen[0].unit if chosen else plan.dose_unit
        for i, c in enumerate(chosen):
            top = max(float(curves[s][c.name].dose_gy.max()) for s in curves if c.name in curves[s])
            levels = np.linspace(0.0, 1.02 * top, N_DOSE_POINTS)
            all_v = np.array([_volume_pct_above(curves[s][c.name].dose_gy, curves[s][c.name].volume_cc, levels)
                              for s in curves if c.name in curves[s]])
            colour = structure_colour(c.structure, i)
            ax.fill_between(levels, all_v.min(axis=0), all_v.max(axis=0), color=colour, alpha=0.25, linewidth=0)
            ax.plot(levels, _volume_pct_above(c.dose_gy, c.volume_cc, levels), color=colour, label=c.structure)
        ax.set_xlabel(f"{'cumulative EQD2' if k == 0 else 'new-course dose'} ({unit})")
        ax.set_ylabel("volume (%)")
        ax.set_ylim(0, 102)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if chosen:
            ax.legend(fontsize=8)
    fig.suptitle(f"DVH bands over {len(robust.scenarios)} scenarios (nominal line, band: lowest to highest)")
    fig.savefig(path, dpi=DPI)
    return fig
