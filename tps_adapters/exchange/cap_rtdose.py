"""The new-course cap map as an RTDOSE in the case's study and frame of reference."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reirrad_opt.case import Case

from ..dicom.export import _reference_dataset, build_rtdose

CAP_FILE = "RD_new_course_cap.dcm"
COMMENT = "max new-course physical dose under cumulative limits"   # DoseComment is LO: at most 64 characters


def write_cap_rtdose(case: Case, physical_cap_gy: np.ndarray, reference_dir: str | Path, out_dir: str | Path, *,
                     description: str) -> Path:
    """Write ``physical_cap_gy`` (Gy, case grid; 0 outside the body) as ``out_dir/RD_new_course_cap.dcm``
    (DoseType PHYSICAL, PLAN summation); ``description`` goes into ImageComments (how the map was made)."""
    reference = _reference_dataset(case, Path(reference_dir))
    ds = build_rtdose(np.asarray(physical_cap_gy, dtype=np.float32), case.grid, case, reference,
                      dose_type="PHYSICAL", comment=COMMENT, image_comments=description,
                      description="reirrad-opt new-course cap map", series_number=904)
    path = Path(out_dir) / CAP_FILE
    ds.save_as(path, enforce_file_format=True)
    return path
