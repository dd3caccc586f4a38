"""The prior course's dose type (RTDOSE DoseType) and the RBE that brings it to Gy(RBE).

The case holds the prior dose in Gy(RBE), the unit in which every new course is evaluated:

* a photon (or electron) prior: the PHYSICAL dose, RBE 1;
* a PHYSICAL particle prior: multiplied by its RBE (``--prior-rbe``; 1.1 by default for protons,
  required for carbon and heavier ions, whose RBE is not constant);
* an EFFECTIVE prior (RBE-weighted by the planning system): taken as is, its RBE recorded as
  'already applied' (a ``--prior-rbe`` would apply an RBE twice and is refused).

EFFECTIVE for a photon course is refused earlier (see ``load._check_dose_kind``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from reirrad_opt.case import PriorCourse
from reirrad_opt.rbe import RBE_ALREADY_APPLIED, prior_rbe_factor

from .errors import PriorCourseError
from .rtdose import DoseGrid


def apply_prior_dose_type(doses: list[DoseGrid], prior: PriorCourse, prior_rbe: float | None, notes: list[str],
                          where: Path | str) -> tuple[PriorCourse, float]:
    """``prior`` with ``dose_type`` and ``rbe`` set from the chosen RTDOSE(s), and the factor by
    which their dose must be multiplied to be in Gy(RBE). Appends a statement to ``notes``.

    Raises:
        PriorCourseError: a PHYSICAL carbon (or heavier ion) dose without ``prior_rbe``, an RBE
            outside 0.5-5, ``prior_rbe`` for a photon course or for an EFFECTIVE dose.
    """
    names = ", ".join(d.path.name for d in doses) or "no RTDOSE"
    kind = doses[0].dose_type if doses else "PHYSICAL"
    if kind == "EFFECTIVE":
        if prior_rbe is not None:
            raise PriorCourseError(f"{where}: {names} is DoseType EFFECTIVE, already RBE-weighted by the planning "
                                   f"system; --prior-rbe {prior_rbe:g} would apply an RBE a second time. Leave it out")
        notes.append(f"prior dose: DoseType EFFECTIVE ({prior.modality}) taken as is, in Gy(RBE); RBE already applied "
                     "by the planning system")
        return dataclasses.replace(prior, dose_type="EFFECTIVE", rbe=RBE_ALREADY_APPLIED), 1.0
    if not doses:
        # a zero prior dose is the same in any unit; no RBE is needed to state it
        notes.append("prior dose: none (0 everywhere); no RBE applied")
        return dataclasses.replace(prior, dose_type="PHYSICAL", rbe=1.0), 1.0
    try:
        rbe, how = prior_rbe_factor(prior.modality, prior_rbe, f"{where}: {names}")
    except ValueError as exc:
        raise PriorCourseError(str(exc)) from None
    if rbe == 1.0 and prior.modality in ("photon", "electron"):
        notes.append(f"prior dose: DoseType PHYSICAL ({prior.modality}), Gy = Gy(RBE) with RBE 1")
    else:
        notes.append(f"prior dose: DoseType PHYSICAL ({prior.modality}) multiplied by a constant RBE of {rbe:g} "
                     f"({how}) to Gy(RBE)")
    return dataclasses.replace(prior, dose_type="PHYSICAL", rbe=rbe), rbe
