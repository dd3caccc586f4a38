"""``reirrad-opt import-openkbp PT_DIR --out CASE_DIR``: an OpenKBP patient folder (sparse CSV on a
128^3 grid) -> a case whose prior course is the OpenKBP dose (70 Gy in 35 fractions unless told
otherwise).

Example (real anatomy, real prior dose, synthetic skull-base recurrence)::

    reirrad-opt import-openkbp openkbp/pt_201 --interval-months 24 --recurrence-near Brainstem \\
        --out cases/pt_201 && reirrad-opt plan --case cases/pt_201 \\
        --absent OpticChiasm OpticNrv_L OpticNrv_R --out plans/pt_201

OpenKBP has no optic structures: without ``--absent`` their priority-1 lines cannot be evaluated and the
plan is incomplete (exit 4).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..geometry import parse_structure_map
from ._args import MAX_INTERVAL_MONTHS, interval_months, positive_float, positive_int
from ._input_checks import add_input_check_arguments, input_checks_from_args
from ._help import plain_description
from ._output import add_output_arguments, prepare
from .import_dicom import add_recurrence_arguments, apply_recurrence, case_summary


def register(subparsers) -> None:
    p = subparsers.add_parser("import-openkbp", help="import an OpenKBP patient folder as a case",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, metavar="PT_DIR", help="OpenKBP patient folder (pt_*)")
    add_output_arguments(p, "case folder", metavar="CASE_DIR")
    p.add_argument("--interval-months", type=interval_months, default=None,
                   help=f"months since the prior course, 0 to {MAX_INTERVAL_MONTHS:g} (required; OpenKBP does not "
                        f"record it)")
    p.add_argument("--prior-fractions", type=positive_int, default=35, help="fractions of the prior course (default 35)")
    p.add_argument("--prior-prescription-gy", type=positive_float, default=70.0, help="prior prescription (default 70 Gy)")
    p.add_argument("--structure-map", nargs="+", action="extend", default=[], metavar="CANONICAL=EXPORTED",
                   help="override the TG-263 mapping of OpenKBP names")
    p.add_argument("--coarsen", type=positive_int, default=1, metavar="N",
                   help="crop to the body and coarsen the grid N times along every axis (block means; default 1: "
                        "the 128^3 grid as it is); refused if a structure would vanish")
    p.add_argument("--name", default=None, help="case name (default: the folder name)")
    add_input_check_arguments(p, ("zero_prior", "prior_off_target"))
    add_recurrence_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from tps_adapters.openkbp import coarsen, load_openkbp_case
    from tps_adapters.recurrence import check_radius_mm

    from ..case import save_case

    check_radius_mm(args.recurrence_radius_mm)   # before the CSV files are read
    target = prepare(args, "import-openkbp", inputs=[args.folder])
    accept, bounds = input_checks_from_args(args)
    case = load_openkbp_case(args.folder, interval_months=args.interval_months, prior_fractions=args.prior_fractions,
                             prior_prescription_gy=args.prior_prescription_gy,
                             structure_map=parse_structure_map(args.structure_map), name=args.name,
                             accept=accept, bounds=bounds)
    if args.coarsen != 1:
        case = coarsen(case, args.coarsen)
    case = apply_recurrence(case, args)
    save_case(case, target)
    print(case_summary(case, args.out))
    return 0
