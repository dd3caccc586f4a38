"""Eclipse: the ESAPI single-file plug-in that reads tps_goals.json into the plan's OptimizationSetup."""
from .emit import ESAPI_VERSIONS, EclipseSettings, render_plugin, render_pyesapi, write_plugin

__all__ = ["ESAPI_VERSIONS", "EclipseSettings", "render_plugin", "render_pyesapi", "write_plugin"]
