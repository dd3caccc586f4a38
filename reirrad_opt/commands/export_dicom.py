"""``reirrad-opt export-dicom PLAN_DIR --reference DIR --out OUT``: the new course of a plan folder
as DICOM: RTDOSE of the new course (PHYSICAL, PLAN, Gy), RTDOSE of the cumulative EQD2 (EFFECTIVE,
with a DoseComment stating EQD2, the alpha/beta map and the recovery model) and an RTSTRUCT with the
generated rCTV and PTV, all in the original study and frame of reference (new UIDs).

The case must have been imported from DICOM (import-dicom); DIR is the folder it was imported from.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._help import plain_description
from ._output import add_output_arguments, prepare


def register(subparsers) -> None:
    p = subparsers.add_parser("export-dicom", help="write a plan's doses and targets as DICOM RTDOSE / RTSTRUCT",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan_dir", type=Path, metavar="PLAN_DIR", help="plan folder (reirrad-opt plan --out)")
    p.add_argument("--reference", type=Path, required=True, metavar="DIR",
                   help="the DICOM folder the case was imported from")
    add_output_arguments(p, "DICOM output folder", metavar="OUT")
    p.set_defaults(func=run)


def run(args) -> int:
    from tps_adapters.dicom import export_plan

    target = prepare(args, "export-dicom", inputs=[args.plan_dir, args.reference])
    for f in export_plan(args.plan_dir, args.reference, target):
        print(f)
    return 0
