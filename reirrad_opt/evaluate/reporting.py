"""Re-irradiation type and the reporting block expected by the ESTRO-EORTC re-irradiation
consensus (2022): both courses' dose and fractionation, the interval, alpha/beta per structure,
the recovery assumption, how the doses were registered and summed, cumulative EQD2 per organ and
target, and the re-irradiation type.

Type 1: the new course's PTV geometrically overlaps the volume irradiated in the prior course (the
volume that received at least a threshold dose, protocol option
``type1_prior_dose_threshold_gy``). Type 2: no such overlap, but a concern for toxicity from the
cumulative doses (the protocol's cumulative limits are evaluated in either case). With several
prior courses the previously irradiated volume is where their doses added reach the threshold
(a volume irradiated twice to 15 Gy counts).

Several prior courses: ``prior_course`` keeps describing the first, ``prior_courses`` lists every
course (fractionation, interval, dose type, RBE, how its dose was mapped), ``interval_months`` is the
time since the most recent one, and each priority-1 organ's entry of ``per_structure`` adds
``prior_eqd2_by_course``: the effective EQD2 of each course alone, whose voxel-wise sum is
``prior_eqd2_after_recovery`` (a metric of the sum is not the sum of the courses' metrics).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import Grid, canonical_name
from ..prior_eqd2 import course_eqd2_terms, describe_recovery, most_recent_interval_months, summed
from ..radiobiology import eqd2
from .dvh import DVH

#: the default line when a case records no registration of its prior dose
SAME_GRID_REGISTRATION = ("prior dose supplied on the planning grid of the case; no further registration applied "
                          "during evaluation")

SUMMATION_METHOD = ("voxel-wise EQD2 summation on the case grid: in every voxel each course's dose (physical "
                    "for photons, RBE-weighted Gy(RBE) for particles) is converted to EQD2 with that course's own number of fractions and the structure's alpha/beta, "
                    "the prior EQD2 is reduced by the recovered fraction, and the two are added; dose-volume "
                    "metrics are computed on the summed distribution (never sums of metrics)")
SUMMATION_METHOD_SEVERAL = ("voxel-wise EQD2 summation on the case grid: in every voxel each course's dose "
                            "(physical for photons, RBE-weighted Gy(RBE) for particles) is converted to EQD2 with "
                            "that course's own number of fractions (never from the summed physical dose) and the "
                            "structure's alpha/beta, each prior course's EQD2 is reduced by the recovered fraction at "
                            "its own interval, and all are added; dose-volume metrics are computed on the summed "
                            "distribution (never sums of metrics)")


@dataclass
class ReirradiationType:
    """ESTRO-EORTC re-irradiation type of a plan.

    Attributes:
        type: 'Type 1', 'Type 2' or 'undetermined' (no PTV in the case).
        overlap_cc: volume of the PTV inside the prior irradiated volume (cc).
        overlap_pct_of_ptv: the same in % of the PTV.
        threshold_gy: prior physical dose (Gy) defining the prior irradiated volume.
        note: the definition applied.
    """

    type: str
    overlap_cc: float | None
    overlap_pct_of_ptv: float | None
    threshold_gy: float
    note: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def reirradiation_type(ptv_mask: np.ndarray | None, prior_dose_gy: np.ndarray, grid: Grid,
                       threshold_gy: float, n_courses: int = 1) -> ReirradiationType:
    """Type 1 if any PTV voxel received >= ``threshold_gy`` (Gy, physical) in the prior course
    (``n_courses`` > 1: ``prior_dose_gy`` is the courses' doses added), Type 2 otherwise;
    'undetermined' without a PTV."""
    if not np.isfinite(threshold_gy) or threshold_gy < 0:
        raise ValueError(f"reirradiation_type: threshold_gy must be >= 0 Gy, got {threshold_gy}")
    if ptv_mask is None or not np.asarray(ptv_mask).any():
        return ReirradiationType("undetermined", None, None, float(threshold_gy),
                                 "no PTV in the case: the overlap with the prior irradiated volume is unknown")
    ptv = np.asarray(ptv_mask, dtype=bool)
    overlap = ptv & (np.asarray(prior_dose_gy) >= threshold_gy)
    cc = float(overlap.sum()) * grid.voxel_volume_cc
    pct = 100.0 * float(overlap.sum()) / float(ptv.sum())
    whose, dose = (("the prior course's", "prior dose") if n_courses == 1 else
                   (f"the {n_courses} prior courses'", "their doses added"))
    if cc > 0:
        return ReirradiationType("Type 1", cc, pct, float(threshold_gy),
                                 f"the new PTV overlaps {whose} irradiated volume ({dose} >= "
                                 f"{threshold_gy:g} Gy) in {cc:.2f} cc ({pct:.1f} % of the PTV)")
    return ReirradiationType("Type 2", 0.0, 0.0, float(threshold_gy),
                             f"no overlap of the new PTV with the prior irradiated volume ({dose} >= "
                             f"{threshold_gy:g} Gy); cumulative-dose toxicity concern handled by the cumulative limits")


def dvh_summary(h: DVH) -> dict:
    """Dmax, Dmean, D98%, D50%, D2% and D0.03cc (Gy; None for a structure under 0.03 cc) of a DVH."""
    out = {"Dmax_gy": h.max_gy, "Dmean_gy": h.mean_gy, "D98%_gy": h.d_at_volume_pct(98.0),
           "D50%_gy": h.d_at_volume_pct(50.0), "D2%_gy": h.d_at_volume_pct(2.0)}
    out["D0.03cc_gy"] = h.d_at_volume_cc(0.03) if h.total_cc >= 0.03 else None
    return {k: (None if v is None else round(float(v), 4)) for k, v in out.items()}


def course_record(course, dose_gy: np.ndarray) -> dict:
    """One prior course as plan.json reports it (doses Gy(RBE); physical Gy for photons)."""
    return {"n_fractions": course.n_fractions, "interval_months": course.interval_months,
            "modality": course.modality, "prescription_gy": course.prescription_gy,
            "description": course.description, "dose_type": course.dose_type, "rbe": course.rbe,
            "dose_per_fraction_gy": (course.prescription_gy / course.n_fractions if course.prescription_gy else None),
            "max_dose_gy": float(np.max(dose_gy)) if dose_gy.size else 0.0}


def reporting_block(case, protocol, frac, recovery, dose, rtype: ReirradiationType, ab_by_structure, default_ab,
                    points_for, found, priority1: set[str]) -> dict:
    """The ESTRO-EORTC reporting block of an evaluation (JSON-ready; see the module docstring).

    ``points_for(name)`` gives a structure's (fine, coarse) samples; ``found`` maps protocol names to
    case structures; ``priority1`` names the case's priority-1 organs (per-course EQD2 when the case
    has several prior courses)."""
    priors = case.prior_courses
    several = len(priors) > 1
    per_structure = {}
    for name in dict.fromkeys(found.values()):
        pts, _ = points_for(name)
        ab = ab_by_structure.get(name, default_ab)
        f_recs = [recovery.fraction_for(canonical_name(name), p.course.interval_months) for p in priors]
        terms = course_eqd2_terms([pts.values(p.dose_gy) for p in priors], [p.course.n_fractions for p in priors],
                                  f_recs, ab)
        prior_e = summed(terms)
        new_pts = pts.values(dose)
        new_e = np.asarray(eqd2(np.maximum(new_pts, 0), frac.n_fractions, ab))
        role = case.structures[name].role
        entry = {
            "role": role, "volume_cc": round(pts.total_cc, 4),
            "alpha_beta_gy": ab, "recovered_fraction": f_recs[0] if len(set(f_recs)) == 1 else None,
            "cumulative_eqd2": dvh_summary(DVH.from_samples(prior_e + new_e, pts.volume_cc)),
            "prior_eqd2_after_recovery": dvh_summary(DVH.from_samples(prior_e, pts.volume_cc)),
            "new_eqd2": dvh_summary(DVH.from_samples(new_e, pts.volume_cc)),
            "new_physical": dvh_summary(DVH.from_samples(new_pts, pts.volume_cc)),
        }
        if several and name in priority1:
            entry["recovered_fractions"] = f_recs
            entry["prior_eqd2_by_course"] = [
                {"course": k, "n_fractions": p.course.n_fractions, "interval_months": p.course.interval_months,
                 "recovered_fraction": f, **dvh_summary(DVH.from_samples(t, pts.volume_cc))}
                for k, (p, f, t) in enumerate(zip(priors, f_recs, terms), 1)]
        per_structure[name] = entry
    prior = case.prior
    out = {
        "standard": "ESTRO-EORTC re-irradiation consensus (2022) reporting items",
        "reirradiation_type": rtype.to_dict(),
        "prior_course": course_record(prior, case.prior_dose_gy),
    }
    if several:
        out["prior_courses"] = [dict(course_record(p.course, p.dose_gy), course=k,
                                     mapping=p.course.mapping or SAME_GRID_REGISTRATION)
                                for k, p in enumerate(priors, 1)]
    out.update({
        "new_course": {"fractionation": frac.name, "schedule": frac.schedule, "rx_gy": frac.total_gy,
                       "n_fractions": frac.n_fractions, "dose_per_fraction_gy": frac.dose_per_fraction_gy,
                       "fractions_per_day": frac.fractions_per_day,
                       "target_eqd2_gy": frac.eqd2_gy(protocol.prescription.alpha_beta_gy),
                       "target_alpha_beta_gy": protocol.prescription.alpha_beta_gy,
                       "max_dose_gy": float(np.max(dose)) if dose.size else 0.0},
        "interval_months": most_recent_interval_months(priors),
        "alpha_beta_gy": {**{n: ab for n, ab in ab_by_structure.items()}, "default (other tissue)": default_ab},
        "recovery": describe_recovery(recovery, priors),
        "registration": case.source.get("registration", SAME_GRID_REGISTRATION),
        "summation": SUMMATION_METHOD_SEVERAL if several else SUMMATION_METHOD,
        "per_structure": per_structure,
        "protocol": protocol.name,
    })
    return out
