"""import-dicom's prior-course options (--prior, --registration, --prior-dose-margin-mm) and the
two-CT import they select: the new CT + RTSTRUCT define the case, the prior course comes from its
own folder and is mapped onto the new CT (tps_adapters.dicom.two_ct)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._args import non_negative_float

QA_FIGURE = "registration_qa.png"


def registration_option(text: str) -> str:
    """auto | rigid | deformable | identity, or the path of an existing REG file."""
    if text in ("auto", "rigid", "deformable", "identity"):
        return text
    if Path(text).is_file():
        return str(Path(text).resolve())
    raise argparse.ArgumentTypeError(f"{text!r}: expected auto, rigid, deformable, identity or the path of a DICOM "
                                     "Spatial Registration (REG) file")


def add_prior_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prior course on its own CT (two-CT import)")
    g.add_argument("--prior", type=Path, action="append", default=None, metavar="PRIOR_DIR",
                   help="folder of the prior course (its CT, RTDOSE, optional RTSTRUCT and RTPLAN); DIR then holds "
                        "the new CT and RTSTRUCT. The prior dose is registered and mapped onto the new CT. One prior "
                        "course: several are refused (sum them in the TPS as one plan dose)")
    g.add_argument("--registration", type=registration_option, default="auto", metavar="METHOD",
                   help="auto (default: a DICOM REG linking the two frames of reference, else identity for one "
                        "shared frame, else rigid), rigid, deformable, identity, or a REG file")
    g.add_argument("--prior-dose-margin-mm", type=non_negative_float, default=None, metavar="MM",
                   help="replace each voxel's mapped prior dose by the maximum within MM mm (conservative for the "
                        "registration's uncertainty); default 0 for identity / REG, 2 for rigid / deformable")


def priority_one_structures() -> set[str]:
    """TG-263 names of the default protocol's priority-1 structures (the registration region)."""
    from ..protocol import load_protocol

    protocol = load_protocol()
    return {g.structure for g in protocol.goals_at(1)}


def load_two_ct(args, voxel, structure_map, progress, accept, bounds):
    """(case, write_qa) for ``import-dicom DIR --prior PRIOR_DIR``; write_qa(folder) writes the QA figure."""
    from tps_adapters.dicom.two_ct import load_two_ct_case
    from tps_adapters.registration.qa_figure import write_qa_figure

    if len(args.prior) > 1:
        raise ValueError(f"--prior given {len(args.prior)} times ({', '.join(str(p) for p in args.prior)}); one prior "
                         "course can be imported: summing several courses in EQD2 is not supported yet")
    if args.grid != "ct":
        raise ValueError("--grid dose: with --prior the case grid is the new CT's (the RTDOSE is in the prior folder)")
    result = load_two_ct_case(args.folder, args.prior[0], interval_months=args.interval_months,
                              registration=args.registration, prior_dose_margin_mm=args.prior_dose_margin_mm,
                              region_names=priority_one_structures(), prior_fractions=args.prior_fractions,
                              prior_modality=args.prior_modality, prior_rbe=args.prior_rbe,
                              relative_dose_reference_gy=args.relative_dose_gy, structure_map=structure_map,
                              voxel_mm=voxel, assume_hu=args.assume_hu, end_caps=args.end_caps, name=args.name,
                              progress=progress, accept=accept, bounds=bounds)
    case = result.case
    targets = [s.mask for s in case.structures.values() if s.role == "target"]

    def write_qa(folder: Path) -> None:
        ct = result.prior_ct
        write_qa_figure(Path(folder) / QA_FIGURE, case.grid, case.ct_hu, case.prior_dose_gy, result.registration,
                        ct.hu if ct is not None else None, ct.grid if ct is not None else None,
                        targets[0] if targets else None, title=f"case {case.name}: prior dose mapped onto the new CT",
                        dose_unit="Gy(RBE)" if case.prior.modality != "photon" else "Gy")

    case.source["qa_figure"] = QA_FIGURE
    return case, write_qa
