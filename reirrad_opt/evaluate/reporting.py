"""Re-irradiation type and the reporting block expected by the ESTRO-EORTC re-irradiation
consensus (2022): both courses' dose and fractionation, the interval, alpha/beta per structure,
the recovery assumption, how the doses were registered and summed, cumulative EQD2 per organ and
target, and the re-irradiation type.

Type 1: the new course's PTV geometrically overlaps the volume irradiated in the prior course (the
volume that received at least a threshold dose, protocol option
``type1_prior_dose_threshold_gy``). Type 2: no such overlap, but a concern for toxicity from the
cumulative doses (the protocol's cumulative limits are evaluated in either case).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import Grid

SUMMATION_METHOD = ("voxel-wise EQD2 summation on the case grid: in every voxel each course's dose (physical "
                    "for photons, RBE-weighted Gy(RBE) for particles) is converted to EQD2 with that course's own number of fractions and the structure's alpha/beta, "
                    "the prior EQD2 is reduced by the recovered fraction, and the two are added; dose-volume "
                    "metrics are computed on the summed distribution (never sums of metrics)")


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
                       threshold_gy: float) -> ReirradiationType:
    """Type 1 if any PTV voxel received >= ``threshold_gy`` (Gy, physical) in the prior course,
    Type 2 otherwise; 'undetermined' without a PTV."""
    if not np.isfinite(threshold_gy) or threshold_gy < 0:
        raise ValueError(f"reirradiation_type: threshold_gy must be >= 0 Gy, got {threshold_gy}")
    if ptv_mask is None or not np.asarray(ptv_mask).any():
        return ReirradiationType("undetermined", None, None, float(threshold_gy),
                                 "no PTV in the case: the overlap with the prior irradiated volume is unknown")
    ptv = np.asarray(ptv_mask, dtype=bool)
    overlap = ptv & (np.asarray(prior_dose_gy) >= threshold_gy)
    cc = float(overlap.sum()) * grid.voxel_volume_cc
    pct = 100.0 * float(overlap.sum()) / float(ptv.sum())
    if cc > 0:
        return ReirradiationType("Type 1", cc, pct, float(threshold_gy),
                                 f"the new PTV overlaps the prior course's irradiated volume (prior dose >= "
                                 f"{threshold_gy:g} Gy) in {cc:.2f} cc ({pct:.1f} % of the PTV)")
    return ReirradiationType("Type 2", 0.0, 0.0, float(threshold_gy),
                             f"no overlap of the new PTV with the prior irradiated volume (prior dose >= "
                             f"{threshold_gy:g} Gy); cumulative-dose toxicity concern handled by the cumulative limits")
