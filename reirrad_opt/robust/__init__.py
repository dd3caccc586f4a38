"""Robustness of a plan against setup and range errors: scenarios and robust evaluation
(see docs/robustness.md)."""
from .evaluation import RobustEvaluation, RobustRow, robust_evaluation, scenario_dose
from .scenarios import NOMINAL, Scenario, ScenarioSettings, scenario_set, shifted_beams

__all__ = ["RobustEvaluation", "RobustRow", "robust_evaluation", "scenario_dose", "NOMINAL", "Scenario",
           "ScenarioSettings", "scenario_set", "shifted_beams"]
