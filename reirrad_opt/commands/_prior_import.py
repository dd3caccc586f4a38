"""import-dicom's prior-course options (--prior, --registration, --prior-dose-margin-mm and the
per-course values) and the two-CT import they select: the new CT + RTSTRUCT define the case, each
prior course comes from its own folder and is mapped onto the new CT (tps_adapters.dicom.two_ct).

Several prior courses: ``--prior`` is repeated, once per course. The options that differ between
courses are repeated in the same order, one value per ``--prior``: ``--interval-months`` (always)
and ``--prior-fractions`` (when given). The options of how a course is read and mapped
(``--registration``, ``--prior-dose-margin-mm``, ``--prior-modality``, ``--prior-rbe``,
``--relative-dose-gy``) are given once for every course, or once per ``--prior``. Any other count
is a :class:`PriorOptionCountError` (exit code 2) before anything is read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._args import non_negative_float

QA_FIGURE = "registration_qa.png"

#: options with one value per prior course: (argparse dest, option)
PER_COURSE_OPTIONS = (("interval_months", "--interval-months"), ("prior_fractions", "--prior-fractions"))
#: options given once for every course or once per course
SHARED_OPTIONS = (("registration", "--registration"), ("prior_dose_margin_mm", "--prior-dose-margin-mm"),
                  ("prior_modality", "--prior-modality"), ("prior_rbe", "--prior-rbe"),
                  ("relative_dose_gy", "--relative-dose-gy"))


class PriorOptionCountError(ValueError):
    """A repeated import-dicom option whose number of values does not fit the number of --prior."""


def registration_option(text: str) -> str:
    """auto | rigid | deformable | identity, or the path of an existing REG file."""
    if text in ("auto", "rigid", "deformable", "identity"):
        return text
    if Path(text).is_file():
        return str(Path(text).resolve())
    raise argparse.ArgumentTypeError(f"{text!r}: expected auto, rigid, deformable, identity or the path of a DICOM "
                                     "Spatial Registration (REG) file")


def add_prior_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prior course(s) on their own CT (two-CT import)")
    g.add_argument("--prior", type=Path, action="append", default=None, metavar="PRIOR_DIR",
                   help="folder of a prior course (its CT, RTDOSE, optional RTSTRUCT and RTPLAN); DIR then holds "
                        "the new CT and RTSTRUCT. The prior dose is registered and mapped onto the new CT. Repeat "
                        "for several prior courses (summed in EQD2, each with its own fractionation), with "
                        "--interval-months (and --prior-fractions, if given) once per --prior, in the same order")
    g.add_argument("--registration", type=registration_option, action="append", default=None, metavar="METHOD",
                   help="auto (default: a DICOM REG linking the two frames of reference, else identity for one "
                        "shared frame, else rigid), rigid, deformable, identity, or a REG file; once for every "
                        "prior course or once per --prior")
    g.add_argument("--prior-dose-margin-mm", type=non_negative_float, action="append", default=None, metavar="MM",
                   help="replace each voxel's mapped prior dose by the maximum within MM mm (conservative for the "
                        "registration's uncertainty); default 0 for identity / REG, 2 for rigid / deformable; once "
                        "for every prior course or once per --prior")


def _times(n: int) -> str:
    return "1 time" if n == 1 else f"{n} times"


def course_options(args) -> list[dict]:
    """One dict of option values per prior course (one dict for the one-folder import), keyed by
    argparse dest; an option not given is None. Raises PriorOptionCountError on a count that does
    not fit the --prior options."""
    priors = list(args.prior or [])
    n = max(1, len(priors))
    out: list[dict] = [{} for _ in range(n)]
    for dest, flag in PER_COURSE_OPTIONS + SHARED_OPTIONS:
        values = list(getattr(args, dest, None) or [])
        shown = ", ".join(str(v) for v in values)
        if len(values) > 1 and not priors:
            raise PriorOptionCountError(f"{flag} given {_times(len(values))} ({shown}) without --prior: several values "
                                        "are for several prior courses, one per --prior PRIOR_DIR, in the same order")
        shared = (dest, flag) in SHARED_OPTIONS
        if values and len(values) != n and not (shared and len(values) == 1):
            expected = "once (for every course) or once per --prior" if shared else "once per --prior"
            raise PriorOptionCountError(
                f"{flag} given {_times(len(values))} ({shown}) for {n} prior courses "
                f"({', '.join(f'--prior {p}' for p in priors)}): give it {expected}, in the order of the --prior "
                "options")
        for k in range(n):
            out[k][dest] = values[k] if len(values) == n else (values[0] if values else None)
    return out


def priority_one_structures() -> set[str]:
    """TG-263 names of the default protocol's priority-1 structures (the registration region)."""
    from ..protocol import load_protocol

    protocol = load_protocol()
    return {g.structure for g in protocol.goals_at(1)}


def qa_figure_names(n_courses: int) -> list[str]:
    """The QA figure of each prior course: registration_qa.png, or registration_qa_course<k>.png."""
    if n_courses == 1:
        return [QA_FIGURE]
    return [f"registration_qa_course{k}.png" for k in range(1, n_courses + 1)]


def load_two_ct(args, options: list[dict], voxel, structure_map, progress, accept, bounds):
    """(case, write_qa) for ``import-dicom DIR --prior PRIOR_DIR [--prior ...]``; write_qa(folder)
    writes the QA figure of every course."""
    from tps_adapters.dicom.two_ct import PriorSource, load_prior_courses_case
    from tps_adapters.registration.qa_figure import write_qa_figure

    if args.grid != "ct":
        raise ValueError("--grid dose: with --prior the case grid is the new CT's (the RTDOSE is in the prior folder)")
    specs = [PriorSource(folder, o["interval_months"], o["registration"] or "auto", o["prior_dose_margin_mm"],
                         o["prior_fractions"], o["prior_modality"], o["prior_rbe"], o["relative_dose_gy"])
             for folder, o in zip(args.prior, options)]
    result = load_prior_courses_case(args.folder, specs, region_names=priority_one_structures(),
                                     structure_map=structure_map, voxel_mm=voxel, assume_hu=args.assume_hu,
                                     end_caps=args.end_caps, name=args.name, progress=progress, accept=accept,
                                     bounds=bounds)
    case = result.case
    targets = [s.mask for s in case.structures.values() if s.role == "target"]
    names = qa_figure_names(len(result.courses))

    def write_qa(folder: Path) -> None:
        for k, (m, png) in enumerate(zip(result.courses, names), 1):
            ct = m.opened.prior_ct
            which = "prior dose" if len(names) == 1 else f"prior course {k} dose"
            write_qa_figure(Path(folder) / png, case.grid, case.ct_hu, m.dose_gy, m.registration,
                            ct.hu if ct is not None else None, ct.grid if ct is not None else None,
                            targets[0] if targets else None, title=f"case {case.name}: {which} mapped onto the new CT",
                            dose_unit="Gy(RBE)" if m.course.modality != "photon" else "Gy")

    if len(names) == 1:
        case.source["qa_figure"] = names[0]
    else:
        case.source["qa_figures"] = names
    return case, write_qa
