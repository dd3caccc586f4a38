"""``reirrad-opt import-dicom DIR --out CASE_DIR``: a folder of DICOM-RT files (CT, RTSTRUCT,
RTDOSE, RTPLAN / RT Ion Plan, any file names) -> a case folder whose prior course is the RTDOSE.

Example::

    reirrad-opt import-dicom /data/patient01 --interval-months 30 --structure-map rGTV=GTV_recur \\
        --out cases/patient01

What the folder does not say is never guessed: --interval-months is always required, and
--prior-fractions when there is no RTPLAN. Everything resampled or assumed is listed in
case.json (source.notes) and printed.

Several prior courses, each in its own folder with its own CT (summed in EQD2, each with its own
fractionation and interval)::

    reirrad-opt import-dicom /data/patient01/new --prior /data/patient01/course1 \
        --prior /data/patient01/course2 --interval-months 60 --interval-months 18 --out cases/patient01
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..geometry import parse_structure_map
from ..rbe import PRIOR_MODALITIES, is_prior_modality
from ._args import interval_months, positive_float, positive_int
from ._input_checks import add_input_check_arguments, input_checks_from_args
from ._progress import add_progress_arguments, progress_from_args
from ._help import plain_description
from ._output import add_output_arguments, prepare
from ._prior_import import add_prior_arguments, course_options, load_two_ct



def prior_modality_option(text: str) -> str:
    """A radiation type a prior course can have been (as an RT (Ion) Plan names it)."""
    if is_prior_modality(text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: expected a radiation type, one of {list(PRIOR_MODALITIES)} or "
                                     f"'ion(Z=<n>)'")

def add_recurrence_arguments(p: argparse.ArgumentParser) -> None:
    """--recurrence-near / --recurrence-radius-mm / --recurrence-target (shared with import-openkbp)."""
    g = p.add_argument_group("synthetic recurrence (cases without a recurrent GTV)")
    g.add_argument("--recurrence-near", metavar="ORGAN", default=None,
                   help="place a spherical rGTV inside the prior high-dose target at the point nearest ORGAN "
                        "(TG-263 name, e.g. Brainstem)")
    g.add_argument("--recurrence-radius-mm", type=positive_float, default=12.0, help="rGTV radius in mm (default 12)")
    g.add_argument("--recurrence-target", metavar="NAME", default=None,
                   help="the prior high-dose target (default: the prior target with the highest mean prior dose)")


def apply_recurrence(case, args):
    if not args.recurrence_near:
        return case
    from tps_adapters.recurrence import place_recurrence

    return place_recurrence(case, args.recurrence_near, args.recurrence_radius_mm, args.recurrence_target)


def case_summary(case, out: Path) -> str:
    priors = case.prior_courses
    lines = [f"case {case.name!r} written to {out}",
             f"  grid {case.grid.shape} (z, y, x) at {tuple(round(s, 4) for s in case.grid.spacing_mm)} mm"]
    for k, p in enumerate(priors, 1):
        c = p.course
        lines.append(f"  prior course{f' {k}' if len(priors) > 1 else ''}: {c.description}; {c.n_fractions} fx; "
                     f"interval {c.interval_months:g} months; max prior dose {float(p.dose_gy.max()):.2f} Gy(RBE) "
                     f"(DoseType {c.dose_type}, RBE {c.rbe})")
    which = "prior mean" if len(priors) == 1 else "prior means by course"
    for s in case.structures.values():
        means = " / ".join(f"{float(p.dose_gy[s.mask].mean()) if s.mask.any() else 0.0:6.2f}" for p in priors)
        lines.append(f"  {s.name:<20} {s.role:<8} {s.volume_cc(case.grid):10.2f} cc  {which} {means} Gy")
    overrides = case.source.get("input_overrides", [])
    if overrides:
        lines.append("input accepted by explicit flag:")
        lines.extend(f"  - {o['flag']}: {o['reason']}" for o in overrides)
    notes = case.source.get("notes", [])
    if notes:
        lines.append("notes:")
        lines.extend(f"  - {n}" for n in notes)
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("import-dicom", help="import a DICOM-RT folder (CT, RTSTRUCT, RTDOSE, RTPLAN) as a case",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, metavar="DIR", help="folder of DICOM files (searched recursively)")
    add_output_arguments(p, "case folder", metavar="CASE_DIR")
    p.add_argument("--interval-months", type=interval_months, action="append", default=None,
                   help="months from the end of the prior course to the re-irradiation (required; with several "
                        "--prior, once per --prior in the same order, each course's own interval)")
    p.add_argument("--prior-fractions", type=positive_int, action="append", default=None,
                   help="fractions of the prior course (required without RTPLAN; overrides the RTPLAN; with "
                        "several --prior, once per --prior in the same order)")
    p.add_argument("--prior-modality", type=prior_modality_option, action="append", default=None,
                   help=f"the prior course's radiation type when there is no RTPLAN: {' | '.join(PRIOR_MODALITIES)} "
                        f"| ion(Z=<n>)")
    p.add_argument("--prior-rbe", type=float, action="append", default=None, metavar="X",
                   help="constant RBE (0.5-5) applied to a PHYSICAL particle prior dose to reach Gy(RBE): default "
                        "1.1 for protons, required for carbon; refused for photons and for an EFFECTIVE "
                        "(already RBE-weighted) RTDOSE")
    p.add_argument("--structure-map", nargs="+", action="extend", default=[], metavar="CANONICAL=EXPORTED",
                   help="map exported ROI names to TG-263 names, e.g. rGTV=GTV_recur")
    p.add_argument("--grid", choices=["ct", "dose"], default="ct", help="case grid: the CT's (default) or the RTDOSE's")
    p.add_argument("--voxel-mm", type=positive_float, nargs="+", default=None, metavar="MM",
                   help="resample the case grid to this voxel size (one value, or dz dy dx)")
    p.add_argument("--relative-dose-gy", type=positive_float, action="append", default=None,
                   help="Gy per relative unit, for an RTDOSE in RELATIVE units")
    p.add_argument("--assume-hu", type=float, default=None,
                   help="HU to assume where there is no CT (no CT series, or case grid beyond the CT)")
    p.add_argument("--allow-missing-dose", action="store_true",
                   help="accept a folder without RTDOSE (prior dose 0 Gy everywhere)")
    p.add_argument("--end-caps", choices=["half", "full", "none"], default="half",
                   help="how far a structure reaches beyond its first and last contour planes: half (default: it "
                        "ends at them, as Eclipse and RayStation volumes), full (half a plane spacing beyond) or "
                        "none (half a spacing inside); recorded in case.json (source.end_caps)")
    p.add_argument("--name", default=None, help="case name (default: Patient ID)")
    add_input_check_arguments(p)
    add_progress_arguments(p)
    add_recurrence_arguments(p)
    add_prior_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from tps_adapters.dicom import DicomImportWarning, load_case

    from ..case import save_case

    voxel = args.voxel_mm
    if voxel is not None and len(voxel) not in (1, 3):
        raise ValueError(f"--voxel-mm takes one value or three (dz dy dx), got {voxel}")
    options = course_options(args)
    if args.prior is None:
        for flag, value in (("--registration", args.registration), ("--prior-dose-margin-mm", args.prior_dose_margin_mm)):
            if value:
                raise ValueError(f"{flag} applies to a prior course in its own folder (--prior PRIOR_DIR)")
    target = prepare(args, "import-dicom", inputs=[args.folder, *(args.prior or [])])
    progress = progress_from_args(args)
    accept, bounds = input_checks_from_args(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DicomImportWarning)
        write_qa = None
        if args.prior is not None:
            case, write_qa = load_two_ct(args, options, (voxel[0] if voxel and len(voxel) == 1 else voxel),
                                         parse_structure_map(args.structure_map), progress, accept, bounds)
        else:
            o = options[0]
            case = load_case(args.folder, prior_fractions=o["prior_fractions"], interval_months=o["interval_months"],
                             structure_map=parse_structure_map(args.structure_map), grid=args.grid,
                             voxel_mm=(voxel[0] if voxel and len(voxel) == 1 else voxel),
                             prior_modality=o["prior_modality"], prior_rbe=o["prior_rbe"],
                             relative_dose_reference_gy=o["relative_dose_gy"],
                             assume_hu=args.assume_hu, allow_missing_dose=args.allow_missing_dose, name=args.name,
                             end_caps=args.end_caps,
                             progress=progress, accept=accept, bounds=bounds)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    case = apply_recurrence(case, args)
    save_case(case, target, extra=write_qa)
    print(case_summary(case, args.out))
    return 0
