"""``reirrad-opt import-matrad FILE.mat --out CASE_DIR``: matRad's ``ct`` and ``cst`` (a MATLAB v5
file, as matRad and pyRadPlan save them) -> a case folder.

matRad holds no prior course: give the prior plan's dose with ``--prior-dose PRIOR.mat`` (matRad's
``resultGUI.physicalDose``, a dose per fraction, multiplied by ``--prior-fractions``; another
variable with ``--prior-dose-variable``), or accept a zero prior dose with ``--accept-zero-prior``
(a single-course benchmark such as TG-119). A plan on the case writes ``resultGUI.mat`` (w and
physicalDose per fraction, on matRad's CT cube) into the plan folder for matRad to load.

Example (the CORT TG-119 phantom, coarsened to 6 x 6 x 5 mm, planned with its own goals)::

    reirrad-opt import-matrad TG119.mat --structure-map PTV=OuterTarget --accept-zero-prior \\
        --interval-months 0 --coarsen 2 --out cases/tg119
    reirrad-opt plan --case cases/tg119 --protocol benchmarks/tg119_protocol.toml \\
        --settings benchmarks/tg119_settings.toml --out plans/tg119
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..geometry import parse_structure_map
from ._args import interval_months, positive_float, positive_int
from ._help import plain_description
from ._input_checks import add_input_check_arguments, input_checks_from_args
from ._output import add_output_arguments, prepare
from .import_dicom import case_summary


def register(subparsers) -> None:
    p = subparsers.add_parser("import-matrad", help="import matRad ct and cst (MATLAB v5 .mat) as a case",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, metavar="FILE.mat", help="a MATLAB v5 file holding matRad's ct and cst")
    add_output_arguments(p, "case folder", metavar="CASE_DIR")
    p.add_argument("--interval-months", type=interval_months, required=True,
                   help="months since the prior course (matRad does not record it)")
    p.add_argument("--prior-dose", type=Path, default=None, metavar="PRIOR.mat",
                   help="a .mat holding the prior course's dose per fraction (Gy) on the same CT cube")
    p.add_argument("--prior-dose-variable", default="resultGUI.physicalDose", metavar="NAME",
                   help="its variable, struct fields after dots (default resultGUI.physicalDose)")
    p.add_argument("--prior-fractions", type=positive_int, default=1,
                   help="fractions of the prior course; the prior dose per fraction is multiplied by it (default 1)")
    p.add_argument("--prior-prescription-gy", type=positive_float, default=None,
                   help="prior prescription (Gy, whole course), if known")
    p.add_argument("--structure-map", nargs="+", action="extend", default=[], metavar="CANONICAL=CST_NAME",
                   help="map cst names to TG-263 names, e.g. PTV=OuterTarget")
    p.add_argument("--coarsen", type=positive_int, default=1, metavar="N",
                   help="crop to the body and coarsen the grid N times along every axis (block means; default 1)")
    p.add_argument("--name", default=None, help="case name (default: the file name)")
    add_input_check_arguments(p, ("zero_prior", "prior_off_target"))
    p.set_defaults(func=run)


def run(args) -> int:
    from tps_adapters.matrad import load_matrad_case
    from tps_adapters.openkbp import coarsen

    from ..case import save_case

    target = prepare(args, "import-matrad", inputs=[args.file, args.prior_dose])
    accept, bounds = input_checks_from_args(args)
    case = load_matrad_case(args.file, interval_months=args.interval_months, prior_fractions=args.prior_fractions,
                            prior_prescription_gy=args.prior_prescription_gy, prior_dose=args.prior_dose,
                            prior_dose_variable=args.prior_dose_variable,
                            structure_map=parse_structure_map(args.structure_map), name=args.name,
                            accept=accept, bounds=bounds)
    if args.coarsen != 1:
        case = coarsen(case, args.coarsen)
    save_case(case, target)
    print(case_summary(case, args.out))
    return 0
