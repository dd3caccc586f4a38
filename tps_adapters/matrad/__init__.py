"""matRad / pyRadPlan in and out: ``ct`` and ``cst`` from MATLAB v5 files, external dose-influence
matrices (matRad ``dij.physicalDose``, CSR arrays in .npz), and results written back as ``resultGUI``."""
from .ct_cst import case_to_matrad_axes, load_matrad_case, matrad_to_case_axes, read_cube
from .dij import read_influence
from .matfile import MatFileError, is_v73, load_mat
from .result import write_result_gui

__all__ = ["MatFileError", "case_to_matrad_axes", "is_v73", "load_mat", "load_matrad_case", "matrad_to_case_axes",
           "read_cube", "read_influence", "write_result_gui"]
