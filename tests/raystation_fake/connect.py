"""A test double of RayStation's ``connect`` scripting module, built from documented signatures.

It records every call and rejects keyword names a RayStation version does not document, missing
required keywords and values of the wrong type, as RayStation's scripting layer would (it raises on
an unknown keyword or a wrong type). Only the calls the reirrad-opt script makes are modelled.

Signatures and where each was documented (public scripts calling these APIs):

* ``EvaluationSetup.AddClinicalGoal``
  - up to RayStation 12A: ``RoiName, GoalCriteria, GoalType, AcceptanceLevel, ParameterValue,
    IsComparativeGoal, Priority`` (RnD4RT/MasterScripts2 ``DoseGoalAddon.py``, recorded in RayStation
    4.99; dicom/raystation-scripts ``settings/clinical_goals.py`` for the goal types and volume
    fractions);
  - RayStation 2023B/2024B: ``AcceptanceLevel`` became ``PrimaryAcceptanceLevel``, with
    ``SecondaryAcceptanceLevel``, ``BeamSet`` and ``AssociateToPlan`` (scripts for RayStation 2024B that
    call ``AddClinicalGoal``/``EditClinicalGoal`` with these keywords).
* ``PlanOptimization.AddOptimizationFunction(FunctionType, RoiName, IsConstraint, RestrictAllBeamsIndividually,
  RestrictToBeam, IsRobust, RestrictToBeamSet, UseRbeDose)``; the returned function's
  ``DoseFunctionParameters`` has ``DoseLevel`` (cGy), ``PercentVolume`` (%), ``EudParameterA``, ``Weight``
  (RnD4RT/MasterScripts2, RayStation 4.99; the same in later scripts).
* ``Case.ScriptableDicomExport(ExportFolderPath, Examinations, RtStructureSetsForExaminations,
  RtStructureSetsReferencedFromBeamSets, BeamSets, PhysicalBeamSetDoseForBeamSets,
  EffectiveBeamSetDoseForBeamSets, PhysicalBeamDosesForBeamSets, DicomFilter, AnonymizationSettings,
  IgnorePreConditionWarnings)`` (brianmanderson/Liver_Lobe_Segments_Dicom_Curation_to_Niftii
  ``Raystation_Code/Export_RT.py`` and the keyword list of RayStation 9A-2024 export scripts).
* ``get_current("Patient" | "Case" | "Examination" | "Plan")``.

Use: ``configure(...)`` before running a script with this module importable as ``connect``; read
``CALLS`` afterwards.
"""
from __future__ import annotations

import os
import shutil
from numbers import Real
from pathlib import Path

GOAL_CRITERIA = ("AtMost", "AtLeast")
GOAL_TYPES = ("DoseAtAbsoluteVolume", "DoseAtVolume", "AverageDose", "VolumeAtDose", "AbsoluteVolumeAtDose",
              "HomogeneityIndex", "ConformityIndex")
FUNCTION_TYPES = ("MaxDose", "MinDose", "MaxDvh", "MinDvh", "MaxEud", "MinEud", "UniformDose", "TargetEud",
                  "DoseFallOff", "UniformityConstraint")
NUMBER, TEXT, BOOL, INT, TEXT_LIST, ANY = "number", "text", "bool", "int", "list of text", "any"

# version -> which AddClinicalGoal signature it has
GOAL_SIGNATURE_OF_VERSION = {"9A": "until-12A", "10B": "until-12A", "12A": "until-12A", "2024B": "from-2023B"}
ADD_CLINICAL_GOAL = {
    "until-12A": {"RoiName": (TEXT, True), "GoalCriteria": (TEXT, True), "GoalType": (TEXT, True),
                  "AcceptanceLevel": (NUMBER, True), "ParameterValue": (NUMBER, False),
                  "IsComparativeGoal": (BOOL, False), "Priority": (INT, False)},
    "from-2023B": {"RoiName": (TEXT, True), "GoalCriteria": (TEXT, True), "GoalType": (TEXT, True),
                   "PrimaryAcceptanceLevel": (NUMBER, True), "SecondaryAcceptanceLevel": (NUMBER, False),
                   "ParameterValue": (NUMBER, False), "IsComparativeGoal": (BOOL, False), "BeamSet": (ANY, False),
                   "Priority": (INT, False), "AssociateToPlan": (BOOL, False)},
}
ADD_OPTIMIZATION_FUNCTION = {"FunctionType": (TEXT, True), "RoiName": (TEXT, True), "IsConstraint": (BOOL, False),
                             "RestrictAllBeamsIndividually": (BOOL, False), "RestrictToBeam": (ANY, False),
                             "IsRobust": (BOOL, False), "RestrictToBeamSet": (ANY, False),
                             "UseRbeDose": (BOOL, False)}
SCRIPTABLE_DICOM_EXPORT = {"ExportFolderPath": (TEXT, False), "Examinations": (TEXT_LIST, False),
                           "RtStructureSetsForExaminations": (TEXT_LIST, False),
                           "RtStructureSetsReferencedFromBeamSets": (TEXT_LIST, False),
                           "BeamSets": (TEXT_LIST, False), "PhysicalBeamSetDoseForBeamSets": (TEXT_LIST, False),
                           "EffectiveBeamSetDoseForBeamSets": (TEXT_LIST, False),
                           "PhysicalBeamDosesForBeamSets": (TEXT_LIST, False), "DicomFilter": (TEXT, False),
                           "AnonymizationSettings": (ANY, False), "IgnorePreConditionWarnings": (BOOL, False),
                           "Connection": (ANY, False)}
DOSE_FUNCTION_PARAMETERS = ("DoseLevel", "PercentVolume", "EudParameterA", "Weight")

CALLS: list[tuple[str, dict]] = []
_STATE: dict = {}


def _ok(kind: str, value) -> bool:
    if kind == ANY:
        return True
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == NUMBER:
        return isinstance(value, Real) and not isinstance(value, bool)
    if kind == TEXT:
        return isinstance(value, str)
    if kind == TEXT_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise AssertionError(kind)


def _check(call: str, signature: dict, kwargs: dict, args: tuple) -> None:
    if args:
        raise TypeError(f"{call}: RayStation methods take keyword arguments only, got {len(args)} positional")
    for key, value in kwargs.items():
        if key not in signature:
            raise TypeError(f"{call}: unknown keyword {key!r}; documented: {', '.join(signature)}")
        kind, _ = signature[key]
        if not _ok(kind, value):
            raise TypeError(f"{call}: keyword {key} expects {kind}, got {type(value).__name__} {value!r}")
    missing = [k for k, (_, required) in signature.items() if required and k not in kwargs]
    if missing:
        raise TypeError(f"{call}: missing required keyword(s) {', '.join(missing)}")


def _record(call: str, kwargs: dict) -> None:
    CALLS.append((call, dict(kwargs)))


class _Named:
    def __init__(self, name: str) -> None:
        self.Name = name


class DoseFunctionParameters:
    """Only the documented parameters may be set, each to a number."""

    def __init__(self, owner: "OptimizationFunction") -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "values", {})

    def __setattr__(self, key, value) -> None:
        if key not in DOSE_FUNCTION_PARAMETERS:
            raise AttributeError(f"DoseFunctionParameters has no settable attribute {key!r}")
        if not _ok(NUMBER, value):
            raise TypeError(f"DoseFunctionParameters.{key} expects a number, got {value!r}")
        self.values[key] = value
        _record(f"DoseFunctionParameters.{key}", {"function": self._owner.index, "value": value})

    def __getattr__(self, key):
        if key in DOSE_FUNCTION_PARAMETERS:
            return self.values.get(key)
        raise AttributeError(key)


class OptimizationFunction:
    def __init__(self, index: int, kwargs: dict) -> None:
        self.index = index
        self.kwargs = kwargs
        self.DoseFunctionParameters = DoseFunctionParameters(self)


class _Objective:
    def __init__(self) -> None:
        self.ConstituentFunctions: list[OptimizationFunction] = []


class PlanOptimization:
    def __init__(self, case: "Case") -> None:
        self._case = case
        self.Objective = _Objective()

    def AddOptimizationFunction(self, *args, **kwargs):
        _check("AddOptimizationFunction", ADD_OPTIMIZATION_FUNCTION, kwargs, args)
        if kwargs["FunctionType"] not in FUNCTION_TYPES:
            raise ValueError(f"AddOptimizationFunction: FunctionType {kwargs['FunctionType']!r} is not one of "
                             f"{FUNCTION_TYPES}")
        self._case.require_roi(kwargs["RoiName"])
        _record("AddOptimizationFunction", kwargs)
        function = OptimizationFunction(len(self.Objective.ConstituentFunctions), kwargs)
        self.Objective.ConstituentFunctions.append(function)
        return function


class EvaluationSetup:
    def __init__(self, case: "Case", version: str) -> None:
        self._case = case
        self._signature = ADD_CLINICAL_GOAL[GOAL_SIGNATURE_OF_VERSION[version]]

    def AddClinicalGoal(self, *args, **kwargs):
        _check("AddClinicalGoal", self._signature, kwargs, args)
        if kwargs["GoalCriteria"] not in GOAL_CRITERIA:
            raise ValueError(f"AddClinicalGoal: GoalCriteria {kwargs['GoalCriteria']!r} is not one of {GOAL_CRITERIA}")
        if kwargs["GoalType"] not in GOAL_TYPES:
            raise ValueError(f"AddClinicalGoal: GoalType {kwargs['GoalType']!r} is not one of {GOAL_TYPES}")
        self._case.require_roi(kwargs["RoiName"])
        _record("AddClinicalGoal", kwargs)


class _TreatmentCourse:
    def __init__(self, evaluation: EvaluationSetup) -> None:
        self.EvaluationSetup = evaluation


class Plan:
    def __init__(self, case: "Case", version: str, n_optimizations: int = 1) -> None:
        self.TreatmentCourse = _TreatmentCourse(EvaluationSetup(case, version))
        self.PlanOptimizations = [PlanOptimization(case) for _ in range(n_optimizations)]


class _PatientModel:
    def __init__(self, roi_names) -> None:
        self.RegionsOfInterest = [_Named(n) for n in roi_names]


class Case:
    def __init__(self, roi_names, examination: str, beam_sets, export_files) -> None:
        self.PatientModel = _PatientModel(roi_names)
        self.Examinations = [_Named(examination)]
        self._beam_sets = list(beam_sets)
        self._export_files = [Path(p) for p in export_files]

    def require_roi(self, name: str) -> None:
        if name not in [r.Name for r in self.PatientModel.RegionsOfInterest]:
            raise ValueError(f"The specified ROI does not exist: {name!r}")

    def ScriptableDicomExport(self, *args, **kwargs):
        _check("ScriptableDicomExport", SCRIPTABLE_DICOM_EXPORT, kwargs, args)
        exams = [e.Name for e in self.Examinations]
        for key in ("Examinations", "RtStructureSetsForExaminations"):
            for name in kwargs.get(key, []):
                if name not in exams:
                    raise ValueError(f"ScriptableDicomExport: {key}: no examination {name!r}")
        for key in ("BeamSets", "PhysicalBeamSetDoseForBeamSets"):
            for name in kwargs.get(key, []):
                if name not in self._beam_sets:
                    raise ValueError(f"ScriptableDicomExport: {key}: no beam set {name!r}")
        _record("ScriptableDicomExport", kwargs)
        out = Path(kwargs["ExportFolderPath"])
        out.mkdir(parents=True, exist_ok=True)
        for path in self._export_files:   # the files a real export would write
            target = out / path.name
            try:
                os.symlink(path, target)
            except OSError:
                shutil.copyfile(path, target)


class Patient:
    def __init__(self, patient_id: str) -> None:
        self.PatientID = patient_id

    def Save(self) -> None:
        _record("Patient.Save", {})


def configure(*, version: str, roi_names, examination: str = "CT 1", beam_sets=("Prior:BS1",), export_files=(),
              patient_id: str = "FAKE01", n_optimizations: int = 1) -> None:
    """Reset the recorded calls and set up the patient, case, examination and plan the script sees."""
    if version not in GOAL_SIGNATURE_OF_VERSION:
        raise ValueError(f"fake RayStation: unknown version {version!r}")
    CALLS.clear()
    case = Case(roi_names, examination, beam_sets, export_files)
    _STATE.update(Patient=Patient(patient_id), Case=case, Examination=case.Examinations[0],
                  Plan=Plan(case, version, n_optimizations))


def get_current(kind: str):
    if kind not in _STATE:
        raise SystemError(f"No {kind} loaded")   # what RayStation raises when nothing is selected
    return _STATE[kind]
