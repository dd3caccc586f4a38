"""RayStation: ``reirrad-opt tps-script raystation`` writes a self-contained CPython 3 script that
exports the open case into an exchange folder, runs ``reirrad-opt tps-run`` and turns
``tps_goals.json`` into clinical goals and optimization functions (see docs/tps-exchange.md)."""
from .calls import CALLS, DEFAULT_VERSION, RayStationCalls, calls_for
from .emit import ScriptSettings, emit

__all__ = ["CALLS", "DEFAULT_VERSION", "RayStationCalls", "calls_for", "ScriptSettings", "emit"]
