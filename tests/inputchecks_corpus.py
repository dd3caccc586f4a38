"""A corruption corpus made at test time from the real data ($REIRRAD_REALDATA), written to a
temporary folder and never stored: mini exports whose untouched files are symlinks to the real
ones and whose corrupted files are edited copies.

* :func:`pelvis_export`: 26 CT slices around the PTV of the RayStation pelvis phantom, its
  RTSTRUCT, RTPLAN (60 Gy in 20 fx) and PLAN RTDOSE;
* :func:`proton_export`: the RayStation proton water phantom's RTSTRUCT and chosen RTDOSEs
  (no CT);
* :func:`openkbp_export`: an OpenKBP patient folder (pt_201);
* :func:`edit_dicom`, :func:`rewrite_csv`: the corruptions.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom

PELVIS = "raystation_alderson_pelvis_pydosert"
PROTON = "raystation_proton_waterphantom_aptg"
OPENKBP_PATIENT = "openkbp_hn/pt_201"
PELVIS_Z_RANGE = (-640.0, -590.0)  # 26 CT slices around the PTV (z -618 .. -600 mm)


def _place(src: Path, dst: Path, copy: bool) -> Path:
    if copy:
        shutil.copyfile(src, dst)
    else:
        os.symlink(src, dst)
    return dst


def pelvis_files(realdata: Path) -> dict[str, Path]:
    """Keys 'rs', 'rp', 'rd' (the PLAN dose), 'rd_beam', 'ct0'..'ct25' (ascending z)."""
    base = realdata / PELVIS
    cts = []
    for f in sorted((base / "CT").glob("*.dcm")):
        z = float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
        if PELVIS_Z_RANGE[0] <= z <= PELVIS_Z_RANGE[1]:
            cts.append((z, f))
    if len(cts) != 26:
        raise FileNotFoundError(f"expected 26 CT slices of {base} in z {PELVIS_Z_RANGE}, found {len(cts)}")
    cts.sort()
    doses = {pydicom.dcmread(f, stop_before_pixels=True).DoseSummationType: f for f in (base / "RD").glob("*.dcm")}
    out = {"rs": next((base / "RS").glob("*.dcm")), "rp": next((base / "RP").glob("*.dcm")), "rd": doses["PLAN"],
           "rd_beam": doses["BEAM"]}
    out.update({f"ct{k}": f for k, (_, f) in enumerate(cts)})
    return out


def pelvis_export(realdata: Path, folder: Path, *, copy: tuple[str, ...] = (), drop: tuple[str, ...] = ("rd_beam",)
                  ) -> dict[str, Path]:
    """The pelvis mini export in ``folder``; ``copy`` keys become editable copies, ``drop`` keys are left out."""
    folder.mkdir(parents=True)
    return {key: _place(src, folder / f"{key}_{src.name}", key in copy)
            for key, src in pelvis_files(realdata).items() if key not in drop}


def proton_export(realdata: Path, folder: Path, *, summations: tuple[str, ...]) -> dict:
    """RTSTRUCT and the RTDOSEs of the given summation types ('PLAN', 'BEAM' = the first BEAM dose,
    'BEAM2' = the second); keys 'rs' and the summation names. (The RT Ion Plan of this export
    names another patient, so it cannot join the folder.)"""
    base = realdata / PROTON
    folder.mkdir(parents=True)
    beams, plan_dose = [], None
    for f in sorted(base.glob("RD*.dcm")):
        kind = pydicom.dcmread(f, stop_before_pixels=True).DoseSummationType
        if kind == "PLAN":
            plan_dose = f
        else:
            beams.append(f)
    available = {"PLAN": plan_dose, "BEAM": beams[0], "BEAM2": beams[1], "rs": next(base.glob("RS*.dcm"))}
    keys = ("rs", *summations)
    return {k: _place(available[k], folder / available[k].name, False) for k in keys}


def openkbp_export(realdata: Path, folder: Path, *, copy: tuple[str, ...] = ()) -> dict[str, Path]:
    """The OpenKBP patient's CSV files in ``folder``; ``copy`` names (e.g. 'dose.csv') are copies."""
    folder.mkdir(parents=True)
    return {f.name: _place(f, folder / f.name, f.name in copy)
            for f in sorted((realdata / OPENKBP_PATIENT).glob("*.csv"))}


def edit_dicom(path: Path, **attributes) -> None:
    """Set (or, with None, delete) attributes of a copied DICOM file."""
    ds = pydicom.dcmread(path)
    for key, value in attributes.items():
        if value is None:
            del ds[key]
        else:
            setattr(ds, key, value)
    ds.save_as(path)


def rewrite_csv(path: Path, header: str | None = ",data", rows: list[str] | None = None, keep_rows: bool = True) -> None:
    """Rewrite a copied OpenKBP CSV: ``header`` (None: a 0-byte file), the original rows if
    ``keep_rows``, then ``rows``."""
    lines = path.read_text().splitlines()[1:] if keep_rows else []
    if header is None:
        path.write_bytes(b"")
        return
    path.write_text("\n".join([header, *lines, *(rows or [])]) + "\n")
