"""Independent plan evaluation: DVHs, dose-volume metrics (coarse and supersampled), cumulative
EQD2 of both courses, a verdict per protocol line and overall (the rule: :mod:`.rule`), the
ESTRO-EORTC reporting block and an advisory eligibility pre-check. Uses only the case, the
protocol and the final dose."""
from .cumulative import EQD2Maps, eqd2_maps, goal_dose_at
from .dvh import DVH, VolumeBeyondStructure, dvh
from .eligibility import Finding, PatientFactors, eligibility_precheck
from .metrics import DEFAULT_FINE_FACTOR, MetricValue, metric_value
from .reporting import ReirradiationType, reirradiation_type
from .sampling import SamplePoints, Samples, sample_points, structure_samples, supersampled_grid
from .rule import OVERALL_VERDICTS, ROW_VERDICTS, OverallVerdict, line_verdict, overall_verdict
from .structures import check_absent_not_contoured, find_case_structure
from .verdict import EvaluationRow, PlanEvaluation, evaluate_plan

__all__ = [
    "DVH", "dvh", "VolumeBeyondStructure", "MetricValue", "metric_value", "DEFAULT_FINE_FACTOR",
    "SamplePoints", "Samples", "sample_points", "structure_samples", "supersampled_grid", "EQD2Maps", "eqd2_maps", "goal_dose_at",
    "EvaluationRow", "PlanEvaluation", "evaluate_plan", "find_case_structure", "check_absent_not_contoured",
    "line_verdict", "overall_verdict", "OverallVerdict", "ROW_VERDICTS", "OVERALL_VERDICTS",
    "ReirradiationType", "reirradiation_type", "Finding", "PatientFactors", "eligibility_precheck",
]
