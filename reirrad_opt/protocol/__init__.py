"""Re-irradiation protocols as data.

- :mod:`.model`: the loaded objects (metrics, limits, goals, fractionations, prescription, slips, Protocol);
- :mod:`.options`: the known [options], their defaults and checks;
- :mod:`.loader`: reading and validating a protocol TOML file (:func:`load_protocol`).

The schema is described in ``docs/protocol.md``; the NPC re-irradiation consensus ships as
``protocols/npc_reirradiation_2021.toml`` and is the default.
"""
from .loader import DEFAULT_PROTOCOL, PROTOCOL_DIR, SCHEMA_VERSION, load_protocol, shipped_protocols
from .model import (DOSE_UNITS, SENSES, SLIP_UNITS, VOLUME_UNITS, Fractionation, Goal, Limit, MetricSpec,
                    Prescription, Protocol, ProtocolError, Slip, parse_metric)
from .options import MAX_EVALUATION_FINE_FACTOR, OPTION_CHOICES, OPTION_DEFAULTS

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOL_DIR", "SCHEMA_VERSION", "load_protocol", "shipped_protocols", "DOSE_UNITS",
           "SENSES", "SLIP_UNITS", "VOLUME_UNITS", "Fractionation", "Goal", "Limit", "MetricSpec", "Prescription",
           "Protocol", "ProtocolError", "Slip", "parse_metric", "MAX_EVALUATION_FINE_FACTOR", "OPTION_CHOICES",
           "OPTION_DEFAULTS"]
