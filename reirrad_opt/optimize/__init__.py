"""Lexicographic optimization: protocol goals as convex terms, solved priority by priority."""
from .driver import OptimizationOutcome, optimize_plan
from .lexicographic import LexicographicSolver
from .stage import NormalTissue, StageResult
from .terms import Term, TermSet, UnsupportedGoal

__all__ = ["optimize_plan", "OptimizationOutcome", "LexicographicSolver", "NormalTissue", "StageResult", "Term",
           "TermSet", "UnsupportedGoal"]
