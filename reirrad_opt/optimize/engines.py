"""The engines that solve the lexicographic stages, registered by name.

An engine is a :class:`~reirrad_opt.optimize.solver_base.SolverBase` subclass with its own frozen
``Settings`` class; adding one is its module plus one :func:`register_engine` line below.
:func:`get_engine` is how the lexicographic loop (:mod:`.lexicographic`) finds it.
"""
from __future__ import annotations

import dataclasses

from ..planning_settings import DEFAULT_ENGINE
from .engine_cvxpy import CvxpySolver
from .engine_lp import LPSolver
from .first_order import FirstOrderSolver
from .solver_base import SolverBase, StageSettings

__all__ = ["DEFAULT_ENGINE", "register_engine", "get_engine", "engine_names"]

_ENGINES: dict[str, type[SolverBase]] = {}


def register_engine(name: str, engine: type[SolverBase]) -> None:
    """Make ``engine`` available as ``name``. Refuses a class that is not a SolverBase with every
    abstract method implemented, or whose ``Settings`` is not a frozen StageSettings dataclass."""
    if not (isinstance(engine, type) and issubclass(engine, SolverBase)) or getattr(engine, "__abstractmethods__", ()):
        raise TypeError(f"engine {name!r}: {engine!r} does not implement SolverBase (solve_priority, "
                        f"solve_normal_tissue)")
    settings = getattr(engine, "Settings", None)
    if not (isinstance(settings, type) and issubclass(settings, StageSettings)
            and dataclasses.is_dataclass(settings) and settings.__dataclass_params__.frozen):
        raise TypeError(f"engine {name!r}: its Settings must be a frozen dataclass derived from StageSettings")
    if name in _ENGINES and _ENGINES[name] is not engine:
        raise ValueError(f"engine {name!r} is already registered ({_ENGINES[name].__name__})")
    _ENGINES[name] = engine


def get_engine(name: str) -> type[SolverBase]:
    """The engine class registered as ``name``; ValueError naming the known engines otherwise."""
    try:
        return _ENGINES[name]
    except KeyError:
        raise ValueError(f"engine must be one of {engine_names()}, got {name!r}") from None


def engine_names() -> tuple[str, ...]:
    return tuple(_ENGINES)


register_engine("lp", LPSolver)
register_engine("first-order", FirstOrderSolver)
register_engine("cvxpy", CvxpySolver)
