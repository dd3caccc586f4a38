"""The RayStation scripting calls the emitted script makes, keyed by RayStation version.

Only what differs between versions lives here; the script template reads one row. Sources (public
scripts that call these APIs; the signatures are checked with a test double, not in a live RayStation):

* ``EvaluationSetup.AddClinicalGoal``: up to RayStation 12 the level keyword is ``AcceptanceLevel``
  (``RoiName, GoalCriteria, GoalType, AcceptanceLevel, ParameterValue, IsComparativeGoal, Priority``;
  RnD4RT/MasterScripts2 ``DoseGoalAddon.py``, recorded in RayStation 4.99; the same keywords in
  scripts for 4.7-9A). From the 2023B/2024 releases it is ``PrimaryAcceptanceLevel`` with an optional
  ``SecondaryAcceptanceLevel``, ``BeamSet`` and ``AssociateToPlan`` (scripts written for RayStation
  2024B). ``DoseAtVolume`` takes its volume as a fraction (0.98), ``DoseAtAbsoluteVolume`` in cc,
  ``VolumeAtDose`` a dose in cGy as ``ParameterValue`` and the volume fraction as the level
  (dicom/raystation-scripts ``settings/clinical_goals.py``).
* ``PlanOptimization.AddOptimizationFunction(FunctionType, RoiName, IsConstraint, RestrictAllBeamsIndividually,
  RestrictToBeam, IsRobust, RestrictToBeamSet, UseRbeDose)`` then ``DoseFunctionParameters.DoseLevel`` (cGy),
  ``.PercentVolume`` (%), ``.EudParameterA``, ``.Weight`` on the function it returns (RnD4RT/MasterScripts2,
  RayStation 4.99; the same in 2024B scripts).
* ``Case.ScriptableDicomExport(ExportFolderPath, Examinations, RtStructureSetsForExaminations, BeamSets,
  PhysicalBeamSetDoseForBeamSets, IgnorePreConditionWarnings)`` (brianmanderson/Liver_Lobe_Segments_Dicom_
  Curation_to_Niftii ``Raystation_Code/Export_RT.py``; the keyword list of RayStation 9A-2024 exports).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RayStationCalls:
    """How one RayStation version spells the calls the script makes.

    Attributes:
        version: RayStation version key ('9A', '2024B', ...).
        goal_level_keyword: keyword of a clinical goal's level (cGy, cc or fraction by goal type).
        goal_extra: further AddClinicalGoal keywords with their values (same for every goal).
        python: the scripting interpreter the version runs ('CPython 3.6', ...).
    """

    version: str
    goal_level_keyword: str
    goal_extra: tuple[tuple[str, object], ...]
    python: str

    def as_dict(self) -> dict:
        return {"version": self.version, "goal_level_keyword": self.goal_level_keyword,
                "goal_extra": dict(self.goal_extra), "python": self.python}


CALLS: dict[str, RayStationCalls] = {
    "9A": RayStationCalls("9A", "AcceptanceLevel", (("IsComparativeGoal", False),), "CPython 3.6"),
    "10B": RayStationCalls("10B", "AcceptanceLevel", (("IsComparativeGoal", False),), "CPython 3.6"),
    "12A": RayStationCalls("12A", "AcceptanceLevel", (("IsComparativeGoal", False),), "CPython 3.8"),
    "2024B": RayStationCalls("2024B", "PrimaryAcceptanceLevel",
                             (("IsComparativeGoal", False), ("AssociateToPlan", False)), "CPython 3.8"),
}
DEFAULT_VERSION = "2024B"


def calls_for(version: str) -> RayStationCalls:
    """The row of ``version``; ValueError naming the versions the table knows."""
    try:
        return CALLS[version]
    except KeyError:
        raise ValueError(f"--raystation-version {version!r}: expected one of {', '.join(CALLS)} (the versions whose "
                         f"scripting calls are known; see tps_adapters/raystation/calls.py)") from None
