"""The TPS exchange folder: request validation, goals in the TPS's own terms, the new-course cap map
and the result folder. The JSON schemas of request.json and tps_goals.json ship with this package."""
