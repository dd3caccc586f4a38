"""Lexicographic optimization: protocol goals as convex terms, solved priority by priority by an
engine chosen by name (see :mod:`.engines`)."""
from .engine_cvxpy import CvxpySettings, CvxpySolver
from .engine_lp import LPSettings, LPSolver
from .engines import DEFAULT_ENGINE, engine_names, get_engine, register_engine
from .first_order import FirstOrderSettings, FirstOrderSolver
from .lexicographic import OptimizationOutcome, optimize_plan
from .problem import LexicographicProblem, build_problem
from .solver_base import SolverBase, StageSettings
from .stage import NormalTissue, StageResult
from .terms import Term, TermSet, UnsupportedGoal

__all__ = ["build_problem", "LexicographicProblem", "optimize_plan", "OptimizationOutcome",
           "DEFAULT_ENGINE", "engine_names", "get_engine", "register_engine",
           "SolverBase", "StageSettings", "LPSolver", "LPSettings", "FirstOrderSolver", "FirstOrderSettings",
           "CvxpySolver", "CvxpySettings",
           "NormalTissue", "StageResult", "Term", "TermSet", "UnsupportedGoal"]
