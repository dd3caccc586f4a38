"""A request's ``dicom/`` folder as a case, with its ROI names checked against the RTSTRUCT."""
from __future__ import annotations

import warnings

import numpy as np

from reirrad_opt.case import Case
from reirrad_opt.tps.request import RequestError, TpsRequest

from ..dicom import DicomImportWarning, load_case, read_structure_set, scan_folder
from reirrad_opt.safe_names import printable


def rtstruct_roi_names(request: TpsRequest) -> list[str]:
    """The ROI names of the RTSTRUCT in ``dicom/``, as the TPS wrote them."""
    folder = scan_folder(request.dicom_dir)
    if not folder.rtstruct:
        raise RequestError("(folder)", f"{request.dicom_dir} holds no RTSTRUCT: export the structure set with the CT")
    entry = folder.rtstruct[0]
    return [roi.name for roi in read_structure_set(entry.path, entry.ds).rois]


def check_roi_map(request: TpsRequest, names: list[str]) -> None:
    """Every key of ``roi_map`` must be an ROI of the RTSTRUCT (exact spelling)."""
    for roi in request.roi_map:
        if roi not in names:
            close = [n for n in names if n.lower() == roi.lower()]
            hint = f" (did you mean {printable(close[0])}? names are case-sensitive)" if close else ""
            raise RequestError(f"roi_map[{roi!r}]", f"no ROI named {printable(roi)} in the RTSTRUCT{hint}; its ROIs: "
                                                    f"{', '.join(printable(n) for n in names)}")


def import_case(request: TpsRequest, progress=None) -> tuple[Case, list[str]]:
    """The case of ``request`` (its roi_map checked first) and the importer's warnings."""
    check_roi_map(request, rtstruct_roi_names(request))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DicomImportWarning)
        case = load_case(request.dicom_dir, prior_fractions=request.prior.n_fractions,
                         interval_months=request.prior.interval_months, structure_map=request.structure_map(),
                         voxel_mm=request.voxel_mm, prior_modality=request.prior.modality,
                         prior_rbe=request.prior.rbe, progress=progress)
    return case, [str(w.message) for w in caught]


def tps_roi_names(imported: Case, final: Case) -> dict[str, str | None]:
    """Case structure name -> the TPS ROI it came from, for every structure of ``final`` (the case
    as planned). A structure reirrad-opt made or changed (rCTV, PTV, a synthetic rGTV) maps to
    None: it is not the TPS's ROI of that name."""
    exported = {r["name"]: r["exported_name"] for r in imported.source.get("rois", [])}
    out: dict[str, str | None] = {}
    for name, structure in final.structures.items():
        before = imported.structures.get(name)
        same = before is not None and np.array_equal(before.mask, structure.mask)
        out[name] = exported.get(name) if same else None
    return out
