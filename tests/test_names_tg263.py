"""TG-263 names: the head-and-neck list, side words in any spelling, non-anatomical structures
kept out of the organ role, and the ROI names of the shipped real data."""
import json

import numpy as np
import pytest

from reirrad_opt.geometry import canonical_name, default_role, non_anatomical_reason
from tps_adapters.dicom import load_case
from tps_adapters.dicom.load import roi_role
from conftest import require

# AAPM TG-263 head-and-neck organs at risk (paired organs as _L/_R).
TG263_HEAD_NECK = [
    "Brainstem", "SpinalCord", "OpticChiasm", "Pituitary", "Larynx", "Esophagus", "Bone_Mandible", "Cavity_Oral",
    "Lips", "Musc_Constrict", "Trachea", "Glnd_Thyroid",
    *(f"{base}_{side}" for base in ("OpticNrv", "Eye", "Lens", "Cochlea", "Parotid", "Glnd_Submand",
                                    "Glnd_Lacrimal", "Lobe_Temporal", "A_Carotid", "BrachialPlex") for side in "LR"),
]


@pytest.mark.parametrize("name", TG263_HEAD_NECK)
def test_tg263_names_pass_through_as_organs(name):
    assert canonical_name(name) == name
    assert default_role(name) == "oar" and non_anatomical_reason(name) == ""


@pytest.mark.parametrize("exported,expected", [
    ("Lens - left", "Lens_L"), ("Lens - right", "Lens_R"), ("Lens_L", "Lens_L"), ("L Lens", "Lens_L"),
    ("Lt Lens", "Lens_L"), ("LensRt", "Lens_R"), ("Orbit - left", "Orbit_L"), ("OrbitRight", "Orbit_R"),
    ("Eye Lt", "Eye_L"), ("Globe R", "Eye_R"), ("RtEye", "Eye_R"),
    ("Lacrimal Gland - right", "Glnd_Lacrimal_R"), ("Glnd_Lacrimal_L", "Glnd_Lacrimal_L"),
    ("Cochlea Lt", "Cochlea_L"), ("cochlea_r", "Cochlea_R"), ("Parotid - Lt", "Parotid_L"), ("RightParotid", "Parotid_R"),
    ("Submandibular Gland L", "Glnd_Submand_L"), ("SMG_R", "Glnd_Submand_R"),
    ("Temporal Lobe - left", "Lobe_Temporal_L"), ("Carotid Artery Rt", "A_Carotid_R"),
    ("Brachial Plexus - left", "BrachialPlex_L"), ("Optic Nerve - Rt", "OpticNrv_R"), ("Optic Nerve Left", "OpticNrv_L"),
    ("Mandible", "Bone_Mandible"), ("Oral Cavity", "Cavity_Oral"), ("Thyroid", "Glnd_Thyroid"),
    ("Constrictors", "Musc_Constrict"), ("Oesophagus", "Esophagus"), ("LARYNX", "Larynx"), ("Pituitary Gland", "Pituitary"),
    ("Femoral Head Lt", "Femur_Head_L"), ("Femoral Head RT", "Femur_Head_R"), ("Lt Lung", "Lung_L"),
])
def test_aliases_and_side_words(exported, expected):
    assert canonical_name(exported) == expected


@pytest.mark.parametrize("name", ["Vessels - left", "GTV L", "PTV_R", "L", "Lens_X", "Temporal Bone L", "SomethingElse"])
def test_unknown_names_are_kept_as_they_are(name):
    assert canonical_name(name) == name


@pytest.mark.parametrize("name,kind", [
    ("Dose 5200[cGy]", "isodose structure"), ("Dose 95[%]", "isodose structure"), ("ISO_50Gy", "isodose structure"),
    ("5200cGy", "isodose structure"), ("IDL 95%", "isodose structure"),
    ("optBladder", "optimisation structure"), ("opt_PTV", "optimisation structure"),
    ("z_avoid", "optimisation structure"), ("zzHelper", "optimisation structure"),
    ("Ring_PTV", "ring"), ("PTV_ring", "ring"), ("ring 5mm", "ring"),
    ("CouchSurface", "couch/table"), ("Couch Interior", "couch/table"), ("Table", "couch/table"),
    ("Brainstem_PRV03", "PRV (organ plus margin)"), ("PRV Cord", "PRV (organ plus margin)"),
])
def test_non_anatomical_structures_are_never_organs_or_targets(name, kind):
    assert non_anatomical_reason(name) == kind
    cname = canonical_name(name)
    assert default_role(cname) == "other"
    # the RT ROI Interpreted Type of an optimisation structure is often AVOIDANCE or PTV: the name wins
    assert roi_role(cname, "AVOIDANCE") == "other" and roi_role(cname, "PTV") == "other"


@pytest.mark.parametrize("name", ["OpticChiasm", "Optic Nerve - Lt", "OPTIC_NERVE_R", "Spring", "Iso", "Brain", "Dosimetry Marker"])
def test_anatomy_that_looks_like_a_pattern_is_anatomy(name):
    assert non_anatomical_reason(name) == ""


@pytest.mark.parametrize("exported,expected", [
    ("Brainstem PRV 3mm", "Brainstem_PRV03"), ("PRV_SpinalCord_5mm", "SpinalCord_PRV05"),
    ("SpinalCord_PRV05", "SpinalCord_PRV05"), ("Cord PRV", "SpinalCord_PRV"),
    ("PRV Optic Nerve Lt", "OpticNrv_PRV_L"), ("OpticNrv_PRV03_R", "OpticNrv_PRV03_R"),
    ("Mystery_PRV5", "Mystery_PRV5"),   # unknown organ: kept as exported
])
def test_prv_names_follow_tg263_and_are_not_the_organ(exported, expected):
    assert canonical_name(exported) == expected
    assert default_role(canonical_name(exported)) == "other"


def test_the_structure_map_still_wins():
    assert canonical_name("optPTV", {"PTV": "optPTV"}) == "PTV"
    assert canonical_name("Lens - left", {"Lens_R": "Lens - left"}) == "Lens_R"


@pytest.mark.realdata
def test_roi_names_of_the_shipped_data(realdata):
    rows = []
    for manifest in sorted(realdata.glob("*/MANIFEST.dicom.jsonl")):
        for line in require(manifest).read_text().splitlines():
            entry = json.loads(line)
            for name_type in entry.get("roi_types", []):
                name, _, kind = name_type.rpartition(":")
                rows.append((name, kind))
    got = {name: (canonical_name(name), roi_role(canonical_name(name), kind)) for name, kind in rows}
    expected = {
        "BODY": ("External", "external"), "Body": ("External", "external"), "External": ("External", "external"),
        "Bladder": ("Bladder", "oar"), "Rectum": ("Rectum", "oar"), "Heart": ("Heart", "oar"),
        "Femoral Head Lt": ("Femur_Head_L", "oar"), "Femoral Head RT": ("Femur_Head_R", "oar"),
        "FemoralHead_L": ("Femur_Head_L", "oar"), "FemoralHead_R": ("Femur_Head_R", "oar"),
        "Lt Lung": ("Lung_L", "oar"), "PTV": ("PTV", "target"), "CTV": ("CTV", "target"),
        "optBladder": ("optBladder", "other"), "optRectum": ("optRectum", "other"),   # AVOIDANCE in Eclipse
        "Vessels - left": ("Vessels - left", "oar"), "XApprox": ("XApprox", "other"),  # MARKER
    }
    missing = sorted(set(expected) - set(got))
    assert not missing, f"names not in the manifests: {missing}"
    for name, want in expected.items():
        assert got[name] == want, name
    # no real anatomical ROI of the data is taken for a non-anatomical structure
    assert sorted(n for n in got if non_anatomical_reason(n)) == ["optBladder", "optRectum"]


def test_import_lists_non_anatomical_structures_and_maps_sides(tmp_path):
    from test_dicom_synthetic import box, write_ct, write_rtdose, write_rtplan, write_rtstruct

    write_ct(tmp_path)
    planes = (-2, 0, 2)
    write_rtstruct(tmp_path, {"BODY": [(z, box(-6.5, -7.5, 5.5, 6.5)) for z in (-4, -2, 0, 2, 4, 6)],
                              "Lens - left": [(z, box(-4, -2, -1, 2)) for z in planes],
                              "Dose 5200[cGy]": [(z, box(-3, -3, 3, 3)) for z in planes],
                              "z_ring": [(z, box(-5, -5, 5, 5)) for z in planes]},
                   types={"BODY": "EXTERNAL", "Dose 5200[cGy]": "ORGAN", "z_ring": "AVOIDANCE"})
    _, uid = write_rtplan(tmp_path)
    write_rtdose(tmp_path, plan_uid=uid)
    case = load_case(tmp_path, interval_months=12)
    roles = {n: s.role for n, s in case.structures.items()}
    assert roles == {"External": "external", "Lens_L": "oar", "Dose 5200[cGy]": "other", "z_ring": "other"}
    note = next(n for n in case.source["notes"] if "non-anatomical" in n)
    assert "'Dose 5200[cGy]' (isodose structure)" in note and "'z_ring' (optimisation structure)" in note
    assert "Lens" not in note
    assert np.any(case["Lens_L"].mask)
