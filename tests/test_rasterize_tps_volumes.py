"""Structure volumes against the volumes the treatment-planning systems state in the shipped data.

* Eclipse 8.1 (SlicerRT prostate phantom): the volume in each column header of Eclipse's DVH table.
* The dicompyler-core breast example: the TPS's embedded DVHs (DVHData, first bin = volume in cc).
* RayStation (proton water phantom): the ROI ``Cube101010``, a 10 x 10 x 10 cm cube.

With the default end caps ('half') every structure over 1 cc is within 5 % (measured: within 1.3 %);
full end slabs overestimate small structures on few planes (Nodes +20 %, Borders +74 %)."""
from __future__ import annotations

import csv
import re

import numpy as np
import pydicom
import pytest

from reirrad_opt.geometry import Grid
from tps_adapters.dicom.rasterize import rasterize_roi
from tps_adapters.dicom.rtstruct import RoiContours, read_structure_set
from conftest import require

pytestmark = pytest.mark.realdata

ECLIPSE = "slicerrt_eclipse_prostate_phantom_partial"
BREAST = "dicompyler_core_example"
PROTON = "raystation_proton_waterphantom_aptg"


def fine_grid(roi: RoiContours, dxy_mm: float = 1.0) -> Grid:
    """1 mm in-plane, slices on the contour planes, one empty slice beyond each end."""
    z = np.array(sorted(roi.planes))
    t = roi.plane_spacing_mm(2.5)
    pts = np.concatenate([p for polys in roi.planes.values() for p in polys])
    lo, hi = pts.min(axis=0) - 3, pts.max(axis=0) + 3
    n = np.ceil((hi - lo) / dxy_mm).astype(int) + 1
    return Grid((int(round((z[-1] - z[0]) / t)) + 3, int(n[1]), int(n[0])), (t, dxy_mm, dxy_mm),
                (float(z[0] - t), float(lo[1]), float(lo[0])))


def eclipse_volumes(realdata) -> dict[str, float]:
    path = require(realdata / ECLIPSE / "from_SlicerRT_TestingData" / "EclipseProstate_DvhTable_Eclipse.csv")
    with open(path) as fh:
        header = next(csv.reader(fh))
    return {h.split("_DvhArray")[0]: float(re.search(r"of ([0-9.]+) cc", h).group(1)) for h in header if "Value" in h}


ECLIPSE_NAMES = {"BODY": "BODY", "Bladder": "Bladder", "Femoral Head Lt": "FemoralHeadLt",
                 "Femoral Head RT": "FemoralHeadRT", "PTV": "PTV", "Rectum": "Rectum"}


def test_eclipse_volumes(realdata):
    stated = eclipse_volumes(realdata)
    ss = read_structure_set(next(require(realdata / ECLIPSE).glob("RS.*.dcm")))
    for roi_name, column in ECLIPSE_NAMES.items():
        roi = ss.roi(roi_name)
        g = fine_grid(roi)
        half = rasterize_roi(roi, g)
        assert half.fraction_outside == 0.0 and half.end_caps == "half"
        assert half.volume_cc == pytest.approx(stated[column], rel=0.02), roi_name
        full = rasterize_roi(roi, g, end_caps="full").volume_cc
        none = rasterize_roi(roi, g, end_caps="none").volume_cc
        assert none < half.volume_cc < full
    # the BODY (92 planes) tells the conventions apart: Eclipse 10593.0 cc
    body = ss.roi("BODY")
    assert rasterize_roi(body, fine_grid(body)).volume_cc == pytest.approx(10593.0, rel=0.001)
    assert rasterize_roi(body, fine_grid(body), end_caps="full").volume_cc > 1.009 * 10593.0


def breast_tps_volumes(realdata) -> dict[str, float]:
    ds = pydicom.dcmread(require(realdata / BREAST / "rtdose.dcm"), stop_before_pixels=True)
    ss = pydicom.dcmread(require(realdata / BREAST / "rtss.dcm"), stop_before_pixels=True)
    names = {int(r.ROINumber): str(r.ROIName) for r in ss.StructureSetROISequence}
    out = {}
    for item in ds.DVHSequence:
        assert item.DVHType == "CUMULATIVE" and item.DVHVolumeUnits == "CM3"
        out[names[int(item.DVHReferencedROISequence[0].ReferencedROINumber)]] = float(item.DVHData[1])
    return out


def test_breast_volumes_against_the_tps_dvhs(realdata):
    stated = breast_tps_volumes(realdata)
    ss = read_structure_set(require(realdata / BREAST / "rtss.dcm"))
    # BODY: every convention is 4.6-6.7 % above the DVH's 13944 cc (the TPS's DVH body is not its
    # contour volume); Borders, Nodes, Scar are under 1 cc
    checked = []
    for name in ("Breast", "Heart", "Lt Lung", "Tumor Bed", "Tumor Bed Block"):
        roi = ss.roi(name)
        got = rasterize_roi(roi, fine_grid(roi)).volume_cc
        assert got == pytest.approx(stated[name], rel=0.05), name
        assert got == pytest.approx(stated[name], rel=0.013), name
        checked.append(name)
    assert len(checked) == 5
    # a small structure on 4 planes: half caps 0.549 cc against the TPS's 0.566; full slabs 0.678
    nodes = ss.roi("Nodes")
    assert rasterize_roi(nodes, fine_grid(nodes)).volume_cc == pytest.approx(stated["Nodes"], rel=0.05)
    assert rasterize_roi(nodes, fine_grid(nodes), end_caps="full").volume_cc > 1.15 * stated["Nodes"]


def test_raystation_cube_is_ten_centimetres(realdata):
    ss = read_structure_set(next(require(realdata / PROTON).glob("RS*.dcm")))
    cube = ss.roi("Cube101010")
    assert len(cube.planes) == 21 and np.ptp(sorted(cube.planes)) == pytest.approx(100.0)
    g = Grid((110, 110, 110), (1.0, 1.0, 1.0), (-54.5, -54.5, -54.5))
    assert rasterize_roi(cube, g).volume_cc == pytest.approx(1000.0, rel=0.002)
    assert rasterize_roi(cube, g, end_caps="full").volume_cc == pytest.approx(1050.0, rel=0.002)
