"""The DICOM side of the TPS exchange folder: the request's ROI names checked against the TPS's
RTSTRUCT, the case imported from ``dicom/``, and the new-course cap map written as an RTDOSE."""
from .cap_rtdose import CAP_FILE, write_cap_rtdose
from .import_request import import_case, tps_roi_names

__all__ = ["CAP_FILE", "write_cap_rtdose", "import_case", "tps_roi_names"]
