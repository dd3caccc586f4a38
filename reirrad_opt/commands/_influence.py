"""``plan --influence FILE``: an external dose-influence matrix (matRad ``dij``, or CSR arrays in
an .npz) read onto the case's grid, and the matRad result file of a plan on a matRad case."""
from __future__ import annotations

import argparse
from pathlib import Path

INFLUENCE_HELP = ("plan on an external dose-influence matrix instead of computing one: a matRad .mat with "
                  "dij.physicalDose (Gy per fraction per unit weight) or an .npz with CSR arrays data, indices, "
                  "indptr, shape (rows in C order z, y, x of the case grid); its grid is checked against the "
                  "case's (see docs/matrad.md)")


def add_influence_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--influence", type=Path, default=None, metavar="FILE", help=INFLUENCE_HELP)


def influence_from_args(args, case):
    """The InfluenceMatrix of ``--influence`` on ``case.grid``, or None without the option."""
    if getattr(args, "influence", None) is None:
        return None
    from tps_adapters.matrad import read_influence

    from ..cli import InputError
    from ..protocol import load_protocol

    for option, value in (("--beams", args.beams), ("--gantry-angles", args.gantry_angles)):
        if value is not None:
            raise InputError(f"{option} does not apply with --influence {args.influence}: the matrix's columns are "
                             f"the plan's beams (set them where the matrix is computed)")

    protocol = load_protocol(args.protocol, optic_nerve_rule=args.optic_nerve_rule, fractionation=args.fractionation)
    modality = {"particle": "proton"}.get(args.modality, args.modality)
    return read_influence(args.influence, case, modality, protocol.prescription.fractionation.n_fractions)


def matrad_result_writer(result):
    """A function writing ``resultGUI.mat`` into a plan folder when the case came from matRad, else None."""
    if result.case.source.get("kind") != "matrad":
        return None
    from tps_adapters.matrad import write_result_gui

    return lambda folder: write_result_gui(Path(folder) / "resultGUI.mat", result)
