"""TG-263 structure names, the alias table for names found in clinical exports, and the
recognition of non-anatomical structures.

Internally reirrad-opt uses TG-263 names (AAPM Report 263). Imported names are mapped by
:func:`canonical_name`: exact TG-263 names pass through, known aliases are translated, and
anything else is kept as it is (never guessed). Comparison ignores case, spaces, '-', '_' and '.'.

Paired organs are also recognised from a base name and a side word at either end, in any
spelling: ``Lens - left``, ``Lens_L``, ``L Lens``, ``Lt Lens``, ``LensLeft``, ``OrbitRight`` (the
side words are left/right, Lt/Rt and L/R; camel case splits words).

Orbit: ``Orbit - left`` and the like map to TG-263's ``Orbit_L``, not to ``Eye_L``: clinics use the
word for the globe or for the bony cavity; map it with ``--structure-map Eye_L=<name>`` when the
globe is meant.

Non-anatomical structures (:func:`non_anatomical_reason`) get the role 'other', never 'oar' or
'target', whatever their RT ROI Interpreted Type says; the importer lists them in its notes:

* isodose structures (``Dose 5200[cGy]``, ``Dose 95[%]``, ``ISO_50Gy``, ``IDL 95%``, ``5200cGy``);
* optimisation helpers: names starting with ``opt`` (not ``optic``), ``z_``/``zz``, rings
  (a word ``ring``), and couch/table structures (``Couch*``, ``Table*``);
* PRVs (a word ``PRV``): an organ grown by a margin for planning, not tissue of its own. Their
  names are normalised to TG-263's ``<Organ>_PRV<mm>`` (``Brainstem PRV 3mm`` ->
  ``Brainstem_PRV03``, ``PRV Optic Nerve Lt`` -> ``OpticNrv_PRV_L``, the side last) when the organ
  is known, so a protocol can name them; they are never taken for the organ itself.
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
    "Eye_L": ("Globe_L", "Left Eye", "Eye Lt"),
    "Eye_R": ("Globe_R", "Right Eye", "Eye Rt"),
    "Lens_L": ("Left Lens", "Lens Lt"),
    "Lens_R": ("Right Lens", "Lens Rt"),
    "Orbit_L": ("Left Orbit", "Orbit Lt"),
    "Orbit_R": ("Right Orbit", "Orbit Rt"),
    "Lobe_Temporal_L": ("Temporal Lobe L", "TemporalLobe_L", "Temporal_Lobe_L", "Lt Temporal Lobe", "T_Lobe_L"),
    "Lobe_Temporal_R": ("Temporal Lobe R", "TemporalLobe_R", "Temporal_Lobe_R", "Rt Temporal Lobe", "T_Lobe_R"),
    "A_Carotid_L": ("Carotid L", "Carotid_L", "ICA_L", "Lt Carotid", "L Carotid Artery"),
    "A_Carotid_R": ("Carotid R", "Carotid_R", "ICA_R", "Rt Carotid", "R Carotid Artery"),
    "Parotid_L": ("LeftParotid", "Left Parotid", "Parotid Lt", "L Parotid", "PAROTID_L", "Parotid_Lt"),
    "Parotid_R": ("RightParotid", "Right Parotid", "Parotid Rt", "R Parotid", "PAROTID_R", "Parotid_Rt"),
    "Glnd_Submand_L": ("Submandibular L", "Left Submandibular Gland", "SMG_L"),
    "Glnd_Submand_R": ("Submandibular R", "Right Submandibular Gland", "SMG_R"),
    "Glnd_Lacrimal_L": ("Lacrimal L", "Left Lacrimal Gland"),
    "Glnd_Lacrimal_R": ("Lacrimal R", "Right Lacrimal Gland"),
    "Cochlea_L": ("Cochlea Lt", "L Cochlea", "COCHLEA_L"),
    "Cochlea_R": ("Cochlea Rt", "R Cochlea", "COCHLEA_R"),
    "BrachialPlex_L": ("Brachial Plexus L", "Left Brachial Plexus", "BP_L"),
    "BrachialPlex_R": ("Brachial Plexus R", "Right Brachial Plexus", "BP_R"),
    "Pituitary": ("Pituitary Gland", "Hypophysis", "PITUITARY"),
    "Esophagus": ("Oesophagus", "ESOPHAGUS"),
    "Larynx": ("LARYNX",),
    "Trachea": ("TRACHEA",),
    "Glnd_Thyroid": ("Thyroid", "Thyroid Gland", "THYROID"),
    "Bone_Mandible": ("Mandible", "MANDIBLE"),
    "Cavity_Oral": ("Oral Cavity", "OralCavity", "Oral_Cavity", "Mouth"),
    "Lips": ("Lip", "LIPS"),
    "Musc_Constrict": ("Constrictors", "Pharyngeal Constrictors", "PharConst", "Constrictor"),
    "Bladder": ("BLADDER",),
    "Rectum": ("RECTUM",),
    "Femur_Head_L": ("FemoralHead_L", "Femoral Head L", "Left Femoral Head"),
    "Femur_Head_R": ("FemoralHead_R", "Femoral Head R", "Right Femoral Head"),
    "Lung_L": ("Left Lung", "Lung Lt"),
    "Lung_R": ("Right Lung", "Lung Rt"),
    "Heart": ("HEART",),
    "rGTV": ("GTV-rP", "GTV_rP", "rGTV", "GTVr", "GTV_recur", "GTV recurrent", "rGTVp", "GTV-r"),
    "rCTV": ("CTV-rP", "CTV_rP", "rCTV"),
    "PTV": ("PTV-rP", "PTV_rP", "rPTV"),
}

# Paired organs: TG-263 base -> base words seen in exports (normalised, see _key); the side is
# read from a side word at either end of the name.
_PAIRED_BASES: dict[str, tuple[str, ...]] = {
    "OpticNrv": ("opticnrv", "opticnerve", "on", "nerveoptic"),
    "Eye": ("eye", "globe", "eyeball"),
    "Lens": ("lens",),
    "Orbit": ("orbit",),
    "Lobe_Temporal": ("lobetemporal", "temporallobe", "tlobe", "temporal"),
    "A_Carotid": ("acarotid", "carotid", "carotidartery", "ica", "internalcarotid"),
    "Parotid": ("parotid", "parotidgland", "glndparotid"),
    "Glnd_Submand": ("glndsubmand", "submandibular", "submandibulargland", "submand", "smg"),
    "Glnd_Lacrimal": ("glndlacrimal", "lacrimal", "lacrimalgland"),
    "Cochlea": ("cochlea",),
    "BrachialPlex": ("brachialplex", "brachialplexus", "bp"),
    "Femur_Head": ("femurhead", "femoralhead", "femhead", "headfemur"),
    "Lung": ("lung",),
    "Kidney": ("kidney",),
}
_SIDE_WORDS = {"l": "L", "lt": "L", "left": "L", "r": "R", "rt": "R", "right": "R"}

# Structures whose role is 'target' when found by canonical name.
TARGET_NAMES = frozenset({"rGTV", "rCTV", "PTV", "GTV", "CTV"})
EXTERNAL_NAMES = frozenset({"External"})


def _key(name: str) -> str:
    """Normalise a name for alias comparison: case, spaces, '-', '_' and '.' are ignored."""
    return re.sub(r"[\s_\-.]+", "", name).lower()


def _words(name: str) -> list[str]:
    """Lower-case words of a name: split at separators, camel case and letter/digit changes."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


_LOOKUP: dict[str, str] = {}
for _canonical, _aliases in TG263_ALIASES.items():
    for _alias in (_canonical, *_aliases):
        _LOOKUP.setdefault(_key(_alias), _canonical)
_PAIRED_LOOKUP: dict[str, str] = {_key(b): base for base, words in _PAIRED_BASES.items() for b in (base, *words)}


def _paired(name: str) -> str | None:
    """``Base_L``/``Base_R`` for a paired organ with a side word at either end, else None."""
    words = _words(name)
    if len(words) < 2:
        return None
    for side_word, rest in ((words[0], words[1:]), (words[-1], words[:-1])):
        side = _SIDE_WORDS.get(side_word)
        base = _PAIRED_LOOKUP.get("".join(rest))
        if side and base:
            return f"{base}_{side}"
    return None


def _prv(name: str, user_map: dict[str, str] | None) -> str | None:
    """TG-263 ``<Organ>_PRV[mm]`` for a PRV of a known organ, else None."""
    words = _words(name)
    if "prv" not in words:
        return None
    rest = [w for w in words if w != "prv"]
    mm = None
    while rest and (rest[-1].isdigit() or rest[-1] == "mm"):
        word = rest.pop()
        if word.isdigit():
            mm = int(word)
    while rest and rest[0].isdigit():   # 'PRV 5 Brainstem'
        mm = int(rest.pop(0))
    organ = canonical_name(" ".join(rest), user_map) if rest else ""
    if organ not in _LOOKUP.values() and _PAIRED_LOOKUP.get(_key(organ.rsplit("_", 1)[0])) is None:
        return None
    margin = f"_PRV{mm:02d}" if mm is not None else "_PRV"
    if re.search(r"_[LR]$", organ):    # TG-263 puts the side last: OpticNrv_PRV03_L
        return organ[:-2] + margin + organ[-2:]
    return organ + margin


def canonical_name(name: str, user_map: dict[str, str] | None = None) -> str:
    """Return the TG-263 name for ``name``.

    ``user_map`` maps canonical names to the name used in the export (``{"rGTV": "GTV_recur"}``,
    as given on the command line ``--structure-map rGTV=GTV_recur``); it wins over the table.
    Then the alias table, then paired organs with a side word, then PRVs of known organs
    (``<Organ>_PRV<mm>``). Unknown names are returned unchanged.
    """
    if user_map:
        for canonical, exported in user_map.items():
            if name == exported or _key(name) == _key(exported):
                return canonical
    found = _LOOKUP.get(_key(name))
    if found is not None:
        return found
    if non_anatomical_reason(name) and "prv" not in _words(name):
        return name
    return _paired(name) or _prv(name, user_map) or name


_ISODOSE = (re.compile(r"^\s*(dose|iso(dose)?|idl)[\s_\-]*\d", re.I),
            re.compile(r"^\s*\d+(\.\d+)?\s*\[?\s*(c?gy|%)\s*\]?\s*$", re.I),
            re.compile(r"\[\s*(c?gy|%)\s*\]", re.I))
_HELPER = re.compile(r"^(opt(?!ic)|z[_\-\s.]|zz)", re.I)
_SUPPORT = re.compile(r"^(couch|table)", re.I)


def non_anatomical_reason(name: str) -> str:
    """What kind of non-anatomical structure ``name`` is ('' for anatomy or a target):
    'isodose structure', 'optimisation structure', 'ring', 'couch/table' or 'PRV (organ plus
    margin)'. See the module docstring for the patterns."""
    if any(p.search(name) for p in _ISODOSE):
        return "isodose structure"
    if _HELPER.match(name.strip()):
        return "optimisation structure"
    words = _words(name)
    if "ring" in words:
        return "ring"
    if _SUPPORT.match(name.strip()):
        return "couch/table"
    if "prv" in words:
        return "PRV (organ plus margin)"
    return ""


def default_role(name: str) -> str:
    """Role of a structure from its canonical name: 'external', 'other' (non-anatomical, see
    :func:`non_anatomical_reason`), 'target' or 'oar'."""
    if name in EXTERNAL_NAMES:
        return "external"
    if non_anatomical_reason(name):
        return "other"
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
