"""TG-263 structure names and the alias table for names found in clinical exports.

Internally reirrad-opt uses TG-263 names (AAPM Report 263). Imported names are mapped by
:func:`canonical_name`: exact TG-263 names pass through, known aliases are translated, and
anything else is kept as it is (never guessed).
"""
from __future__ import annotations

import re

# TG-263 name -> aliases seen in clinical exports (compared after normalisation, see _key).
TG263_ALIASES: dict[str, tuple[str, ...]] = {
    "External": ("BODY", "Body", "EXTERNAL", "Skin", "Outline", "External_ROI"),
    "Brain": ("BRAIN",),
    "Brainstem": ("BRSTEM", "Brain Stem", "BrainStem", "Brain_Stem", "Stem", "BS"),
    "SpinalCord": ("Spinal Cord", "Cord", "SPINAL_CORD", "SC", "Spinal_Cord"),
    "OpticChiasm": ("Chiasm", "Optic Chiasm", "Optic_Chiasm", "CHIASM"),
    "OpticNrv_L": ("Optic Nerve - Lt", "Optic Nerve L", "OpticNerve_L", "Optic_Nerve_L", "L Optic Nerve",
                   "Lt_OpticNerve", "ON_L"),
    "OpticNrv_R": ("Optic Nerve - Rt", "Optic Nerve R", "OpticNerve_R", "Optic_Nerve_R", "R Optic Nerve",
                   "Rt_OpticNerve", "ON_R"),
    "Lobe_Temporal_L": ("Temporal Lobe L", "TemporalLobe_L", "Temporal_Lobe_L", "Lt Temporal Lobe", "T_Lobe_L"),
    "Lobe_Temporal_R": ("Temporal Lobe R", "TemporalLobe_R", "Temporal_Lobe_R", "Rt Temporal Lobe", "T_Lobe_R"),
    "A_Carotid_L": ("Carotid L", "Carotid_L", "ICA_L", "Lt Carotid", "L Carotid Artery"),
    "A_Carotid_R": ("Carotid R", "Carotid_R", "ICA_R", "Rt Carotid", "R Carotid Artery"),
    "Parotid_L": ("LeftParotid", "Left Parotid", "Parotid Lt", "L Parotid", "PAROTID_L", "Parotid_Lt"),
    "Parotid_R": ("RightParotid", "Right Parotid", "Parotid Rt", "R Parotid", "PAROTID_R", "Parotid_Rt"),
    "Cochlea_L": ("Cochlea Lt", "L Cochlea", "COCHLEA_L"),
    "Cochlea_R": ("Cochlea Rt", "R Cochlea", "COCHLEA_R"),
    "Esophagus": ("Oesophagus", "ESOPHAGUS"),
    "Larynx": ("LARYNX",),
    "Bone_Mandible": ("Mandible", "MANDIBLE"),
    "Bladder": ("BLADDER",),
    "Rectum": ("RECTUM",),
    "Femur_Head_L": ("FemoralHead_L", "Femoral Head L", "Left Femoral Head"),
    "Femur_Head_R": ("FemoralHead_R", "Femoral Head R", "Right Femoral Head"),
    "Heart": ("HEART",),
    "rGTV": ("GTV-rP", "GTV_rP", "rGTV", "GTVr", "GTV_recur", "GTV recurrent", "rGTVp", "GTV-r"),
    "rCTV": ("CTV-rP", "CTV_rP", "rCTV"),
    "PTV": ("PTV-rP", "PTV_rP", "rPTV"),
}

# Structures whose role is 'target' when found by canonical name.
TARGET_NAMES = frozenset({"rGTV", "rCTV", "PTV", "GTV", "CTV"})
EXTERNAL_NAMES = frozenset({"External"})


def _key(name: str) -> str:
    """Normalise a name for alias comparison: case, spaces, '-', '_' and '.' are ignored."""
    return re.sub(r"[\s_\-.]+", "", name).lower()


_LOOKUP: dict[str, str] = {}
for _canonical, _aliases in TG263_ALIASES.items():
    for _alias in (_canonical, *_aliases):
        _LOOKUP.setdefault(_key(_alias), _canonical)


def canonical_name(name: str, user_map: dict[str, str] | None = None) -> str:
    """Return the TG-263 name for ``name``.

    ``user_map`` maps canonical names to the name used in the export (``{"rGTV": "GTV_recur"}``,
    as given on the command line ``--structure-map rGTV=GTV_recur``); it wins over the table.
    Unknown names are returned unchanged.
    """
    if user_map:
        for canonical, exported in user_map.items():
            if name == exported or _key(name) == _key(exported):
                return canonical
    return _LOOKUP.get(_key(name), name)


def default_role(name: str) -> str:
    """Role of a structure from its canonical name: 'target', 'external' or 'oar'."""
    if name in EXTERNAL_NAMES:
        return "external"
    if name in TARGET_NAMES or name.upper().startswith(("PTV", "CTV", "GTV")):
        return "target"
    return "oar"


def parse_structure_map(items: list[str] | None) -> dict[str, str]:
    """Parse ``["rGTV=GTV_recur", ...]`` into ``{"rGTV": "GTV_recur"}`` with a clear error."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--structure-map entry {item!r}: expected CANONICAL=EXPORTED_NAME, e.g. rGTV=GTV_recur")
        canonical, exported = (s.strip() for s in item.split("=", 1))
        if not canonical or not exported:
            raise ValueError(f"--structure-map entry {item!r}: both sides of '=' must be non-empty")
        out[canonical] = exported
    return out
