"""RT Plan / RT Ion Plan -> what the prior course was: fractions, prescription, modality.

* Number of fractions: Number of Fractions Planned of the fraction group. A plan with several
  fraction groups (e.g. a sequential boost) has no single fractionation: it is reported, and the
  caller must be told the fractionation explicitly.
* Prescription: Target Prescription Dose of the Dose Reference items of type TARGET, preferring
  those of structure type SITE or VOLUME (a dose to a point is not a prescription); None if absent.
* Modality: the Radiation Type of the treatment beams ('PHOTON' -> 'photon', 'PROTON' ->
  'proton', 'ION' with atomic number 6 -> 'carbon', ...). Setup beams are ignored.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from .errors import MissingDataError
from .values import get_float, get_int, get_str, read_dataset

ION_PLAN_UID = "1.2.840.10008.5.1.4.1.1.481.8"
PLAN_UID = "1.2.840.10008.5.1.4.1.1.481.5"

_ION_NAMES = {1: "proton", 2: "helium", 6: "carbon", 8: "oxygen", 10: "neon"}


@dataclass
class PlanInfo:
    """The parts of an RT (Ion) Plan the prior course needs.

    Attributes:
        path: the file.
        sop_instance_uid, label, patient_id, study_instance_uid, frame_of_reference_uid: identifiers.
        is_ion: True for an RT Ion Plan.
        fractions_per_group: Number of Fractions Planned of each fraction group.
        prescription_gy: prescribed dose (Gy) or None when the plan holds none.
        modality: 'photon', 'electron', 'proton', 'carbon', ... ('' when no treatment beam).
        treatment_beams: beam numbers of TREATMENT beams (setup beams excluded).
        referenced_structure_set_uid: the RTSTRUCT the plan refers to ('' if none).
        notes: statements of what was read or not found.
    """

    path: Path
    sop_instance_uid: str
    label: str
    patient_id: str
    study_instance_uid: str
    frame_of_reference_uid: str
    is_ion: bool
    fractions_per_group: list[int]
    prescription_gy: float | None
    modality: str
    treatment_beams: list[int]
    referenced_structure_set_uid: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_fractions(self) -> int | None:
        """The number of fractions when the plan has exactly one fraction group, else None."""
        return self.fractions_per_group[0] if len(self.fractions_per_group) == 1 else None


def _modality(beam: Dataset, path: Path) -> str:
    kind = get_str(beam, "RadiationType").upper()
    if kind == "ION":
        z = get_int(beam, "RadiationAtomicNumber", path, default=None)
        return _ION_NAMES.get(z, f"ion(Z={z})")
    return {"PHOTON": "photon", "ELECTRON": "electron", "PROTON": "proton", "NEUTRON": "neutron"}.get(kind, kind.lower())


def read_rtplan(path: str | os.PathLike, ds: Dataset | None = None) -> PlanInfo:
    """Parse an RT Plan or RT Ion Plan into :class:`PlanInfo`."""
    path = Path(path)
    if ds is None:
        ds = read_dataset(path, stop_before_pixels=True)
    is_ion = get_str(ds, "SOPClassUID") == ION_PLAN_UID
    notes: list[str] = []
    groups = []
    for fg in ds.get("FractionGroupSequence", []) or []:
        n = get_int(fg, "NumberOfFractionsPlanned", path, default=None)
        if n is None:
            raise MissingDataError(f"{path}: fraction group {get_str(fg, 'FractionGroupNumber', '?')} has no "
                                   "NumberOfFractionsPlanned")
        groups.append(n)
    if not groups:
        notes.append(f"RTPLAN {path.name}: no fraction group; the number of fractions is not recorded")
    targets, points = [], []
    for ref in ds.get("DoseReferenceSequence", []) or []:
        if get_str(ref, "DoseReferenceType").upper() != "TARGET":
            continue
        dose = get_float(ref, "TargetPrescriptionDose", path, default=None)
        if dose is None or dose <= 0:
            continue
        kind = get_str(ref, "DoseReferenceStructureType").upper()
        (targets if kind in ("SITE", "VOLUME") else points).append(dose)
    if targets:
        prescription = max(targets)
        if len(set(targets)) > 1:
            notes.append(f"RTPLAN {path.name}: several target prescriptions {targets} Gy; the highest is recorded")
    elif points:
        prescription = max(points)
        notes.append(f"RTPLAN {path.name}: prescription {prescription} Gy taken from a point dose reference")
    else:
        prescription = None
        notes.append(f"RTPLAN {path.name}: no target prescription dose; prescription not recorded")
    beams = ds.get("IonBeamSequence" if is_ion else "BeamSequence", []) or []
    treatment, modalities = [], set()
    for b in beams:
        if get_str(b, "TreatmentDeliveryType", "TREATMENT").upper() != "TREATMENT":
            continue
        treatment.append(get_int(b, "BeamNumber", path))
        modalities.add(_modality(b, path))
    if len(modalities) > 1:
        notes.append(f"RTPLAN {path.name}: treatment beams of several radiation types {sorted(modalities)}")
    modality = "+".join(sorted(modalities))
    rss = ""
    for ref in ds.get("ReferencedStructureSetSequence", []) or []:
        rss = rss or get_str(ref, "ReferencedSOPInstanceUID")
    return PlanInfo(
        path=path, sop_instance_uid=get_str(ds, "SOPInstanceUID"), label=get_str(ds, "RTPlanLabel"),
        patient_id=get_str(ds, "PatientID"), study_instance_uid=get_str(ds, "StudyInstanceUID"),
        frame_of_reference_uid=get_str(ds, "FrameOfReferenceUID"), is_ion=is_ion, fractions_per_group=groups,
        prescription_gy=prescription, modality=modality, treatment_beams=treatment,
        referenced_structure_set_uid=rss, notes=notes)
