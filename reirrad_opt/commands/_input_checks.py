"""Command-line options of the import checks (shared by import-dicom and import-openkbp):
``--max-voxels`` and the ``--accept-...`` flags that confirm a suspicious but possible input.
See docs/input-checks.md."""
from __future__ import annotations

import argparse
from dataclasses import replace

from ..plausibility import DEFAULT_BOUNDS, OVERRIDE_FLAGS, PlausibilityBounds
from ._args import positive_int

_HELP = {
    "zero_prior": "accept a prior dose that is zero or nearly zero (maximum below 10 %% of the prescription)",
    "prior_off_target": "accept a prior dose that covers none of the contoured targets",
    "partial_beam_dose": "accept BEAM doses summed without the PLAN dose or the RT Plan that lists the beams "
                         "(their completeness cannot be checked)",
}


def add_input_check_arguments(p: argparse.ArgumentParser, keys: tuple[str, ...] = tuple(OVERRIDE_FLAGS)) -> None:
    """Add --max-voxels and the --accept-... flags of ``keys`` (see OVERRIDE_FLAGS)."""
    g = p.add_argument_group("input checks (each accepted flag is recorded in the case and every report)")
    g.add_argument("--max-voxels", type=positive_int, default=DEFAULT_BOUNDS.max_voxels, metavar="N",
                   help=f"largest grid an import may allocate, in voxels (default {DEFAULT_BOUNDS.max_voxels:,})")
    for key in keys:
        g.add_argument(OVERRIDE_FLAGS[key], dest=f"accept_{key}", action="store_true", help=_HELP[key])


def input_checks_from_args(args) -> tuple[frozenset[str], PlausibilityBounds]:
    """(accepted override keys, bounds) from the parsed options."""
    accept = frozenset(key for key in OVERRIDE_FLAGS if getattr(args, f"accept_{key}", False))
    return accept, replace(DEFAULT_BOUNDS, max_voxels=int(args.max_voxels))
