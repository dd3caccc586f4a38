"""Synthetic cases made from code (deterministic, any resolution).

* :func:`phantoms.npc.make_npc_phantom`: the recurrent nasopharyngeal-carcinoma head with a prior
  course (see docs/phantom.md).
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "make_npc_phantom":
        from .npc import make_npc_phantom

        return make_npc_phantom
    raise AttributeError(f"module 'phantoms' has no attribute {name!r}")
