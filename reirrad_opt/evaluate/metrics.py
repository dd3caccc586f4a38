"""Dose-volume metrics of one structure: Dmax, Dmin, Dmean, D<x>cc (D0.03cc), D<x>% (D98 %
near-min, D2 % near-max), V<x>Gy and V<x>% (e.g. the hotspot V107 %), on the case grid (coarse)
and on the fine evaluation grid (supersampled, see :mod:`reirrad_opt.evaluate.sampling`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import Grid
from ..protocol import MetricSpec, parse_metric
from .dvh import DVH
from .sampling import DEFAULT_MAX_SAMPLES, sample_points

DEFAULT_FINE_FACTOR = 3


@dataclass
class MetricValue:
    """A metric's value.

    Attributes:
        value: on the fine evaluation grid (or the case grid when fine evaluation is off).
        unit: 'Gy' for dose metrics, '%' (of the structure) or 'cc' for V-metrics.
        value_coarse: on the case grid (voxel centres); NaN when no voxel centre lies inside the
            structure and only a fine mask describes it.
        fine_factor: sub-division per axis used for ``value`` (1 = voxel centres; 0 = fine mask).
        note: anything the reader must know (e.g. a D<x>cc larger than the structure).
    """

    value: float
    unit: str
    value_coarse: float
    fine_factor: int = 1
    note: str = ""


def resolve(spec: MetricSpec, near_min_metric: str = "D98%") -> MetricSpec:
    """Replace 'near-min' / 'near-max' by the D<x>% they stand for (near-max: D2 %)."""
    if spec.kind == "near-min":
        return parse_metric(near_min_metric)
    if spec.kind == "near-max":
        return parse_metric("D2%")
    return spec


def value_from_dvh(spec: MetricSpec, h: DVH, rx_gy: float | None = None, volume_unit: str = "%") -> tuple[float, str, str]:
    """``(value, unit, note)`` of a resolved metric on a DVH."""
    if spec.kind == "Dmax":
        return h.max_gy, "Gy", ""
    if spec.kind == "Dmin":
        return h.min_gy, "Gy", ""
    if spec.kind == "Dmean":
        return h.mean_gy, "Gy", ""
    if spec.kind == "D_cc":
        if spec.x > h.total_cc * (1 + 1e-9):
            return h.min_gy, "Gy", (f"{spec.name}: the structure has only {h.total_cc:.4g} cc; reported as its "
                                    f"minimum dose (the dose all of it receives)")
        return h.d_at_volume_cc(spec.x), "Gy", ""
    if spec.kind == "D_pct":
        return h.d_at_volume_pct(spec.x), "Gy", ""
    if spec.kind in ("V_Gy", "V_pctRx"):
        if volume_unit not in ("%", "cc"):
            raise ValueError(f"volume_unit must be '%' or 'cc', got {volume_unit!r}")
        return h.v_at_dose_gy(spec.threshold_gy(rx_gy), volume_unit), volume_unit, ""
    raise ValueError(f"metric {spec.name}: kind {spec.kind!r} must be resolved first (see resolve())")


def metric_value(metric: str, dose_gy: np.ndarray, mask: np.ndarray, grid: Grid, rx_gy: float | None = None,
                 fine: bool = True, *, fine_factor: int = DEFAULT_FINE_FACTOR, volume_unit: str = "%",
                 near_min_metric: str = "D98%", fine_mask: np.ndarray | None = None, fine_grid: Grid | None = None,
                 max_samples: int = DEFAULT_MAX_SAMPLES) -> MetricValue:
    """Value of ``metric`` for the dose ``dose_gy`` (Gy, on ``grid``) in the structure ``mask``.

    Args:
        metric: e.g. 'D0.03cc', 'Dmax', 'D98%', 'Dmean', 'V20Gy', 'V107%' (of ``rx_gy``), 'near-min'.
        rx_gy: prescription dose (Gy) for V<x>% metrics.
        fine: also evaluate on the supersampled grid (``fine_factor`` per axis, or ``fine_mask``).
        volume_unit: '%' (of the structure) or 'cc' for V-metrics.

    Raises ValueError for an unknown metric, an empty mask or mismatched arrays.
    """
    spec = resolve(parse_metric(metric), near_min_metric)
    grid.check_array(np.asarray(dose_gy), "dose")
    if not np.asarray(mask).any() and fine and fine_mask is not None:
        # a structure thinner than the case grid: no voxel centre inside, only the fine mask
        value_c, note = float("nan"), "no voxel centre of the case grid lies inside the structure; fine mask only"
    else:
        coarse_pts = sample_points(mask, grid, 1)
        coarse = DVH.from_samples(coarse_pts.values(dose_gy), coarse_pts.volume_cc)
        value_c, unit, note = value_from_dvh(spec, coarse, rx_gy, volume_unit)
        if not fine:
            return MetricValue(value_c, unit, value_c, 1, note)
    pts = sample_points(mask, grid, fine_factor, fine_mask=fine_mask, fine_grid=fine_grid, max_samples=max_samples)
    h = DVH.from_samples(pts.values(dose_gy), pts.volume_cc)
    value, unit, note_f = value_from_dvh(spec, h, rx_gy, volume_unit)
    return MetricValue(value, unit, value_c, pts.fine_factor, "; ".join(n for n in (note, note_f) if n))
