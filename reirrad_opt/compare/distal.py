"""Distal-end check: critical organs at the end of range of particle spots.

A particle spot stops at the end of its range; the consensus warns against placing a critical
structure at the distal end, where the range uncertainty (CT calibration, anatomy) decides whether
it receives the Bragg peak. For every field of a particle plan this module finds the priority-1 and
priority-2 organs that lie in the **distal fall-off region** of spots carrying significant weight.

Definitions (all depths water-equivalent, from where the field's ray enters the body):

* A spot is *significant* when its weight is at least ``min_weight_fraction`` of the largest
  spot weight of its field.
* A voxel is in a spot's distal region when its beam's-eye-view position (u, v at the
  isocentre plane) lies in the spot's lateral cell (within half the spot spacing of the spot's
  axis in u and in v) and its water-equivalent depth d satisfies
  ``R80 (1 + e) <= d <= R80 (1 + e) + distal_margin_mm``, with R80 the depth of the distal 80 %
  point of the spot's pristine peak and e the range error (0 nominal, +e overshoot: the spot goes
  deeper than planned, -e undershoot). The lateral cells of a field's spots tile the plane, so each
  voxel belongs to exactly one spot column.
* The dose an organ receives there is reported as the new course's dose from that field alone and
  from the whole plan, in the flagged voxels, in the plan's unit: Gy(RBE) (RBE x the physical dose
  of the influence matrix) for a particle plan, as optimized and evaluated.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..dose.hu_tables import SPR_CURVE, HUCurve
from ..dose.raytrace import radiological_depth
from ..geometry import Grid

DEFAULT_DISTAL_MARGIN_MM = 5.0
DEFAULT_RANGE_ERROR_PCT = 3.5
DEFAULT_MIN_WEIGHT_FRACTION = 0.05


@dataclass(frozen=True)
class Organ:
    """An organ to check: case structure name, its mask and its (highest) protocol priority."""

    name: str
    mask: np.ndarray
    priority: int


@dataclass
class DistalHit:
    """One organ in the distal region of one field's significant spots, for one range scenario.

    Attributes:
        field_index: the field's position in the plan (0-based); gantry_deg, couch_deg its angles.
        structure: case structure name; priority its protocol priority.
        scenario: 'nominal', 'overshoot' or 'undershoot'; range_error_pct the signed error (%).
        n_voxels, volume_cc: flagged voxels of the organ.
        n_spots: significant spots whose distal region contains at least one of them.
        max_field_dose_gy, mean_field_dose_gy: this field's new-course dose in the flagged voxels
            (Gy(RBE) for a particle plan: RBE x physical).
        max_plan_dose_gy: the whole plan's new-course dose in the flagged voxels (max; same unit).
        depth_range_mm: water-equivalent depths of the flagged voxels (min, max).
    """

    field_index: int
    gantry_deg: float
    couch_deg: float
    structure: str
    priority: int
    scenario: str
    range_error_pct: float
    n_voxels: int
    volume_cc: float
    n_spots: int
    max_field_dose_gy: float | None
    mean_field_dose_gy: float | None
    max_plan_dose_gy: float | None
    depth_range_mm: tuple[float, float]

    def to_dict(self) -> dict:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 3)
        out["depth_range_mm"] = [round(float(x), 2) for x in self.depth_range_mm]
        return out


@dataclass
class DistalReport:
    """Result of :func:`distal_end_check`.

    Attributes:
        hits: every (field, organ, scenario) found.
        fields: per field: index, angles, number of spots and of significant spots.
        distal_margin_mm, range_error_pct, min_weight_fraction: the parameters used.
        organs: the organs checked with their priorities.
        rbe, dose_unit: the RBE applied to the field doses and their unit ('Gy(RBE)' for particle plans).
    """

    hits: list[DistalHit]
    fields: list[dict]
    distal_margin_mm: float
    range_error_pct: float
    min_weight_fraction: float
    organs: dict[str, int] = field(default_factory=dict)
    rbe: float = 1.0
    dose_unit: str = "Gy"

    def flagged(self, scenario: str | None = "nominal") -> set[str]:
        """Structures flagged in ``scenario`` (None: in any scenario)."""
        return {h.structure for h in self.hits if scenario is None or h.scenario == scenario}

    def warnings(self) -> list[str]:
        """One sentence per flagged (field, organ), naming the scenarios in which it is flagged."""
        out = []
        keys = dict.fromkeys((h.field_index, h.structure) for h in self.hits)
        for fi, name in keys:
            hs = [h for h in self.hits if h.field_index == fi and h.structure == name]
            nominal = [h for h in hs if h.scenario == "nominal"]
            ref = nominal[0] if nominal else max(hs, key=lambda h: h.volume_cc)
            scen = ", ".join(f"{h.scenario} ({h.range_error_pct:+g} %)" if h.range_error_pct else h.scenario
                             for h in hs)
            dose = ("" if ref.max_field_dose_gy is None else
                    f"; this field gives up to {ref.max_field_dose_gy:.2f} {self.dose_unit} there "
                    f"(plan total up to {ref.max_plan_dose_gy:.1f} {self.dose_unit})")
            out.append(f"field {fi + 1} (gantry {ref.gantry_deg:g} deg, couch {ref.couch_deg:g} deg): priority-"
                       f"{ref.priority} organ {name} lies within the distal fall-off region (R80 to R80 + "
                       f"{self.distal_margin_mm:g} mm) of {ref.n_spots} significant spot(s), "
                       f"{ref.volume_cc:.2f} cc in the {ref.scenario} case{dose}; flagged in: {scen}")
        return out

    def to_dict(self) -> dict:
        return {
            "definition": ("organs (priority 1 and 2) whose voxels lie in a significant spot's lateral cell "
                           "(|u - u_spot|, |v - v_spot| <= spot spacing / 2) at a water-equivalent depth between "
                           "R80 (1 + e) and R80 (1 + e) + distal_margin_mm; significant: weight >= "
                           "min_weight_fraction x the field's largest spot weight; e = 0 (nominal) and "
                           "+/- range_error_pct (overshoot / undershoot)"),
            "distal_margin_mm": self.distal_margin_mm, "range_error_pct": self.range_error_pct,
            "min_weight_fraction": self.min_weight_fraction, "organs": dict(self.organs),
            "rbe": self.rbe, "dose_unit": self.dose_unit,
            "fields": self.fields, "hits": [h.to_dict() for h in self.hits],
            "flagged_nominal": sorted(self.flagged("nominal")),
            "flagged_any_scenario": sorted(self.flagged(None)),
            "warnings": self.warnings(),
        }


def water_equivalent_density(ct_hu: np.ndarray, body: np.ndarray, spr_curve: HUCurve = SPR_CURVE) -> np.ndarray:
    """Stopping-power ratio to water on the grid, zero outside ``body`` (as the dose engine uses it)."""
    spr = np.asarray(spr_curve(ct_hu), dtype=np.float32)
    spr[~np.asarray(body, dtype=bool)] = 0.0
    return spr


def distal_end_check(grid: Grid, density: np.ndarray, fields: list, columns, weights: np.ndarray,
                     organs: list[Organ], *, matrix=None, plan_dose_gy: np.ndarray | None = None,
                     distal_margin_mm: float = DEFAULT_DISTAL_MARGIN_MM,
                     range_error_pct: float = DEFAULT_RANGE_ERROR_PCT,
                     min_weight_fraction: float = DEFAULT_MIN_WEIGHT_FRACTION, rbe: float = 1.0,
                     dose_unit: str = "Gy") -> DistalReport:
    """Find the organs in the distal fall-off region of each particle field's significant spots.

    Args:
        grid: the dose grid.
        density: stopping-power ratio to water on the grid, zero outside the body
            (:func:`water_equivalent_density`).
        fields: the ParticleField objects, in column order.
        columns: per-column metadata with ``beam``, ``u_mm``, ``v_mm`` and ``range_r80_mm``
            (:class:`reirrad_opt.dose.Columns`).
        weights: the spot weights (>= 0), one per column.
        organs: the organs to check.
        matrix: the influence matrix (CSR, voxels x columns) for the dose per field; None: no dose.
        plan_dose_gy: the plan's new-course dose on the grid; None: not reported.
        distal_margin_mm: depth beyond R80 that counts as the distal region (mm, water-equivalent).
        range_error_pct: the range error of the uncertainty scenarios (%); 0 checks nominal only.
        min_weight_fraction: fraction of the field's largest spot weight from which a spot counts.
        rbe: factor from the matrix's physical dose to the reported field dose (the plan's RBE);
            ``plan_dose_gy`` is taken as given (already in ``dose_unit``).
        dose_unit: unit of the reported doses ('Gy', or 'Gy(RBE)' for a particle plan).
    """
    if not distal_margin_mm > 0:
        raise ValueError(f"distal_margin_mm must be > 0 mm, got {distal_margin_mm}")
    if not 0 <= range_error_pct < 50:
        raise ValueError(f"range_error_pct must be in [0, 50) %, got {range_error_pct}")
    if not 0 < min_weight_fraction <= 1:
        raise ValueError(f"min_weight_fraction must be in (0, 1], got {min_weight_fraction}")
    weights = np.asarray(weights, dtype=float).ravel()
    beam = np.asarray(columns["beam"])
    if weights.size != beam.size:
        raise ValueError(f"weights: expected {beam.size} values (one per spot), got {weights.size}")
    try:
        r80 = np.asarray(columns["range_r80_mm"], dtype=float)
    except KeyError:
        raise ValueError("distal_end_check needs particle columns with 'range_r80_mm' (a photon plan has no "
                         "distal end)") from None
    u_all = np.asarray(columns["u_mm"], dtype=float)
    v_all = np.asarray(columns["v_mm"], dtype=float)
    grid.check_array(np.asarray(density), "density")
    scenarios = [("nominal", 0.0)]
    if range_error_pct > 0:
        scenarios += [("overshoot", +range_error_pct), ("undershoot", -range_error_pct)]
    organs = [o for o in organs if np.asarray(o.mask).any()]
    union = np.zeros(grid.shape, dtype=bool)
    for o in organs:
        union |= o.mask
    voxels = np.flatnonzero(union)
    organ_of = {o.name: np.asarray(o.mask).ravel()[voxels] for o in organs}
    voxel_cc = grid.voxel_volume_cc
    hits: list[DistalHit] = []
    field_rows = []
    for fi, fld in enumerate(fields):
        cols = np.flatnonzero(beam == fi)
        w = weights[cols]
        wmax = float(w.max()) if w.size else 0.0
        sig = cols[w >= min_weight_fraction * wmax] if wmax > 0 else cols[:0]
        field_rows.append({"field_index": fi, "gantry_deg": float(fld.gantry_deg), "couch_deg": float(fld.couch_deg),
                           "n_spots": int(cols.size), "n_significant_spots": int(sig.size)})
        if sig.size == 0 or voxels.size == 0:
            continue
        rt = radiological_depth(fld.frame, grid, density, voxels)
        h = float(fld.spot_spacing_mm)
        # lateral cell of each voxel and of each spot (spots sit on the field's lateral grid)
        cell_vox = np.stack([np.floor(rt.a_mm / h + 0.5), np.floor(rt.b_mm / h + 0.5)], axis=1).astype(np.int64)
        cell_spot = np.stack([np.floor(u_all[sig] / h + 0.5), np.floor(v_all[sig] / h + 0.5)], axis=1).astype(np.int64)
        key_v = _cell_key(cell_vox)
        key_s = _cell_key(cell_spot)
        order = np.argsort(key_v, kind="stable")
        key_sorted = key_v[order]
        lo = np.searchsorted(key_sorted, key_s, side="left")
        hi = np.searchsorted(key_sorted, key_s, side="right")
        depth = rt.depth_mm.astype(float)
        field_dose = None
        for scenario, err in scenarios:
            flagged = np.zeros(voxels.size, dtype=bool)
            spot_hit = np.zeros(sig.size, dtype=bool)
            start = r80[sig] * (1.0 + err / 100.0)
            for s in np.flatnonzero(hi > lo):
                vv = order[lo[s]:hi[s]]
                inside = vv[(depth[vv] >= start[s]) & (depth[vv] <= start[s] + distal_margin_mm)]
                if inside.size:
                    flagged[inside] = True
                    spot_hit[s] = True
            if not flagged.any():
                continue
            if matrix is not None and field_dose is None:
                field_dose = np.asarray(matrix[voxels][:, cols] @ w).ravel() * float(rbe)
            for o in organs:
                sel = flagged & organ_of[o.name]
                if not sel.any():
                    continue
                n_spots = 0
                for s in np.flatnonzero(spot_hit):
                    vv = order[lo[s]:hi[s]]
                    vv = vv[sel[vv]]
                    if vv.size and np.any((depth[vv] >= start[s]) & (depth[vv] <= start[s] + distal_margin_mm)):
                        n_spots += 1
                fd = field_dose[sel] if field_dose is not None else None
                pd = np.asarray(plan_dose_gy).ravel()[voxels[sel]] if plan_dose_gy is not None else None
                hits.append(DistalHit(
                    fi, float(fld.gantry_deg), float(fld.couch_deg), o.name, o.priority, scenario, err,
                    int(sel.sum()), float(sel.sum() * voxel_cc), n_spots,
                    None if fd is None else float(fd.max()), None if fd is None else float(fd.mean()),
                    None if pd is None else float(pd.max()),
                    (float(depth[sel].min()), float(depth[sel].max()))))
    return DistalReport(hits, field_rows, float(distal_margin_mm), float(range_error_pct), float(min_weight_fraction),
                        {o.name: o.priority for o in organs}, float(rbe), dose_unit)


def _cell_key(cells: np.ndarray) -> np.ndarray:
    """One int64 per (i, j) lateral cell (|i|, |j| < 2^30)."""
    return (cells[:, 0] + (1 << 30)) * (1 << 31) + (cells[:, 1] + (1 << 30))


def plan_distal_end_check(plan, organs: list[Organ], **kwargs) -> DistalReport:
    """:func:`distal_end_check` of a particle :class:`reirrad_opt.planning.Plan` (its fields, columns,
    weights, physical influence matrix times the plan's RBE, and dose), with the body (and PTV) and the
    CT calibration as the dose engine saw them."""
    case = plan.case
    body = case.body.copy()
    if "PTV" in case.structures:
        body |= case.structures["PTV"].mask
    inf = plan.influence
    calibration = getattr(plan, "ct_calibration", None)
    spr_curve = SPR_CURVE if calibration is None else calibration.spr
    return distal_end_check(case.grid, water_equivalent_density(case.ct_hu, body, spr_curve), list(plan.beams),
                            inf.columns,
                            plan.weights, organs, matrix=inf.matrix, plan_dose_gy=plan.new_dose_gy,
                            rbe=float(getattr(plan, "rbe", 1.0)), dose_unit=getattr(plan, "dose_unit", "Gy"), **kwargs)
