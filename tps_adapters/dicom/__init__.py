"""DICOM-RT import (CT, RTSTRUCT, RTDOSE, RTPLAN / RT Ion Plan -> Case) and export (RTDOSE,
RTSTRUCT of a new course). See docs/importing.md."""
from .errors import (DicomFileError, DicomImportError, DicomImportWarning, DoseCoverageWarning, DoseGridError,
                     ExportError, GeometryError, InvalidTagValueError, MissingDataError, MixedInputError,
                     ModalityError, PriorCourseError, SliceGapError, StructureNameError, UnsupportedDoseError)
from .export import export_plan
from .load import load_case
from .rtdose import DoseGrid, read_rtdose, resample_dose
from .rtplan import PlanInfo, read_rtplan
from .rtstruct import RoiContours, StructureSet, rasterize_polygons, rasterize_roi, read_structure_set
from .scan import DicomFolder, scan_folder
from .ct import CTVolume, read_ct_series

__all__ = [
    "load_case", "export_plan", "scan_folder", "read_ct_series", "read_structure_set", "rasterize_roi",
    "rasterize_polygons", "read_rtdose", "resample_dose", "read_rtplan", "CTVolume", "StructureSet", "RoiContours",
    "DoseGrid", "PlanInfo", "DicomFolder",
    "DicomImportError", "DicomFileError", "MissingDataError", "InvalidTagValueError", "ModalityError",
    "MixedInputError", "GeometryError", "SliceGapError", "DoseGridError", "UnsupportedDoseError", "PriorCourseError",
    "StructureNameError", "ExportError", "DicomImportWarning", "DoseCoverageWarning",
]

