"""Advisory eligibility pre-check from the guideline's Table 1 (patient selection for radical
re-irradiation of recurrent NPC).

It lists findings, each with the panel agreement behind it; it never blocks planning. Every
decision stays with the multidisciplinary team and the patient ("the final decision on trade-off
depends on what the patient accepts").
"""
from __future__ import annotations

from dataclasses import dataclass, field

LEVELS = ("info", "caution", "not recommended")

# Organs whose existing late toxicity (CTCAE grade) the guideline uses for exclusion, with the
# grade from which re-irradiation is not recommended and the panel agreement.
TOXICITY_RULES: dict[str, tuple[int | None, str]] = {
    "brainstem": (1, "grade >= 1 at brainstem, spinal cord or optic chiasm: 24/24, 100 % (rec. 5; GRADE high)"),
    "spinal_cord": (1, "grade >= 1 at brainstem, spinal cord or optic chiasm: 24/24, 100 % (rec. 5; GRADE high)"),
    "optic_chiasm": (1, "grade >= 1 at brainstem, spinal cord or optic chiasm: 24/24, 100 % (rec. 5; GRADE high)"),
    "temporal_lobe": (3, "grade >= 3 at temporal lobe, optic nerve or brachial plexus: 23/24, 96 % (4 % said "
                         ">= 4; rec. 5; GRADE high)"),
    "optic_nerve": (3, "grade >= 3 at temporal lobe, optic nerve or brachial plexus: 23/24, 96 % (4 % said >= 4; "
                       "rec. 5; GRADE high)"),
    "brachial_plexus": (3, "grade >= 3 at temporal lobe, optic nerve or brachial plexus: 23/24, 96 % (4 % said "
                           ">= 4; rec. 5; GRADE high)"),
    "soft_tissue": (3, "grade >= 3 soft tissue or bone: 18/24, 75 % in Table 1 (25 % said >= 4); rec. 5 text: "
                       "24/24, GRADE high"),
    "bone": (3, "grade >= 3 soft tissue or bone: 18/24, 75 % in Table 1 (25 % said >= 4); rec. 5 text: 24/24, "
                "GRADE high"),
    "xerostomia": (None, "xerostomia, hearing or endocrine toxicity: no exclusion, 24/24, 100 %"),
    "hearing": (None, "xerostomia, hearing or endocrine toxicity: no exclusion, 24/24, 100 %"),
    "endocrine": (None, "xerostomia, hearing or endocrine toxicity: no exclusion, 24/24, 100 %"),
}


@dataclass
class PatientFactors:
    """What is known about the patient; None = not known (reported as such).

    Attributes:
        latency_months: time from the end of the first course to the recurrence (months).
        toxicity_grades: existing late RT toxicity, CTCAE grade per organ (keys of TOXICITY_RULES).
        resectable: the recurrence is resectable; ``clear_margin_achievable`` a clear margin likely;
            ``surgical_expertise`` expertise available.
        operated: salvaged by surgery already; ``resection_margin`` 'positive' | 'close' | 'clear';
            ``margin_mm`` the closest margin (mm).
        rT, rN: restaging of the recurrence (rT 1-4, rN 0-3).
        rgtv_cc: recurrent GTV volume (cc).
    """

    latency_months: float | None = None
    toxicity_grades: dict[str, int] = field(default_factory=dict)
    resectable: bool | None = None
    clear_margin_achievable: bool | None = None
    surgical_expertise: bool | None = None
    operated: bool | None = None
    resection_margin: str | None = None
    margin_mm: float | None = None
    rT: int | None = None
    rN: int | None = None
    rgtv_cc: float | None = None

    def __post_init__(self) -> None:
        for organ, grade in self.toxicity_grades.items():
            if organ not in TOXICITY_RULES:
                raise ValueError(f"toxicity_grades: unknown organ {organ!r}; expected one of {sorted(TOXICITY_RULES)}")
            if not isinstance(grade, int) or not 0 <= grade <= 5:
                raise ValueError(f"toxicity_grades[{organ!r}]: CTCAE grade must be a whole number 0-5, got {grade!r}")
        if self.resection_margin not in (None, "positive", "close", "clear"):
            raise ValueError(f"resection_margin must be 'positive', 'close' or 'clear', got {self.resection_margin!r}")
        if self.rT is not None and self.rT not in (1, 2, 3, 4):
            raise ValueError(f"rT must be 1-4, got {self.rT!r}")
        if self.rN is not None and self.rN not in (0, 1, 2, 3):
            raise ValueError(f"rN must be 0-3, got {self.rN!r}")
        for name in ("latency_months", "margin_mm", "rgtv_cc"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")


@dataclass
class Finding:
    """One advisory finding: ``topic``, ``level`` ('info' | 'caution' | 'not recommended'),
    ``message`` and the panel ``agreement`` / source behind it."""

    topic: str
    level: str
    message: str
    agreement: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def eligibility_precheck(factors: PatientFactors) -> list[Finding]:
    """Advisory findings from the guideline's Table 1 for ``factors``; never raises on clinical
    content and never blocks planning."""
    out: list[Finding] = []
    lat = factors.latency_months
    if lat is None:
        out.append(Finding("latency", "info", "latency from the end of the first course not given",
                           "rec. 4: re-RT not recommended for latency <= 6 months (23/24, 96 %); 15/24 (63 %) use <= 12 months"))
    elif lat <= 6:
        out.append(Finding("latency", "not recommended",
                           f"latency {lat:g} months <= 6 months: radical re-RT not recommended (early recurrence in the "
                           f"high-dose zone suggests radio-resistance; little time for normal-tissue recovery)",
                           "rec. 4: 23/24, 96 % (8/24 exclude <= 6 months, 15/24 <= 12 months); GRADE moderate"))
    elif lat <= 12:
        out.append(Finding("latency", "caution",
                           f"latency {lat:g} months <= 12 months: many panel members would not re-irradiate; consider "
                           f"induction systemic therapy to gain time if proceeding",
                           "Table 1: exclusion if latency <= 12 months 15/24, 63 %; <= 6 months 8/24, 33 %"))
    else:
        out.append(Finding("latency", "info", f"latency {lat:g} months > 12 months: no latency concern",
                           "rec. 4 / Table 1"))

    for organ, grade in sorted(factors.toxicity_grades.items()):
        threshold, agreement = TOXICITY_RULES[organ]
        if threshold is None:
            out.append(Finding(f"toxicity:{organ}", "info",
                               f"existing {organ} toxicity grade {grade}: not a reason for exclusion", agreement))
        elif grade >= threshold:
            out.append(Finding(f"toxicity:{organ}", "not recommended",
                               f"existing {organ.replace('_', ' ')} toxicity grade {grade} >= {threshold}: re-RT not "
                               f"recommended", agreement))
        else:
            out.append(Finding(f"toxicity:{organ}", "info",
                               f"existing {organ.replace('_', ' ')} toxicity grade {grade} < {threshold}", agreement))
    if not factors.toxicity_grades:
        out.append(Finding("toxicity", "info", "existing late toxicity not given (brainstem, spinal cord, optic chiasm, "
                                               "temporal lobe, optic nerve, brachial plexus, soft tissue, bone)",
                           "rec. 5"))

    if factors.resectable and factors.clear_margin_achievable and factors.surgical_expertise is not False:
        out.append(Finding("surgery", "caution",
                           "resectable recurrence with a clear margin likely: surgical resection is the preferred option "
                           "(if expertise is available)", "rec. 1: 24/24, 100 %; GRADE high"))
    if factors.operated:
        if factors.resection_margin == "positive":
            out.append(Finding("post-operative", "info", "positive resection margin: re-RT should be considered",
                               "rec. 2: 24/24, 100 %; GRADE high"))
        elif factors.resection_margin == "close":
            mm = factors.margin_mm
            if mm is not None and mm >= 2:
                out.append(Finding("post-operative", "caution",
                                   f"close margin of {mm:g} mm (>= 2 mm): the panel's threshold for re-RT is < 2 mm "
                                   f"(67 %); 12.5 % use < 5 mm", "Table 1: < 2 mm 16/24, 67 %; < 5 mm 3/24, 12.5 %"))
            else:
                out.append(Finding("post-operative", "info", "close resection margin (< 2 mm): re-RT should be considered",
                                   "rec. 3 / Table 1: < 2 mm 16/24, 67 %"))
        elif factors.resection_margin == "clear":
            out.append(Finding("post-operative", "caution", "clear resection margin: re-RT is not indicated by the "
                                                            "margin alone", "rec. 2-3"))

    if factors.rT is not None and factors.rN is not None:
        if factors.rN > 0 or factors.rT >= 3:
            out.append(Finding("systemic therapy", "info",
                               f"rT{factors.rT}N{factors.rN}: add systemic therapy (irrespective of sequence)",
                               "rec. 7: rT3-4N0 23/24, 96 %; rT1-4N+ 23/24, 96 %; GRADE moderate"))
        else:
            out.append(Finding("systemic therapy", "info",
                               f"rT{factors.rT}N0: re-RT alone is adequate for most of the panel",
                               "rec. 7: adding systemic therapy for rT1-2N0 agreed by 9/24 (37 %), 15/24 (63 %) disagree"))

    if factors.rgtv_cc is not None:
        v = factors.rgtv_cc
        if v > 80:
            level, msg = "caution", f"rGTV {v:g} cc > 80 cc: local control fell below 10 % in the HKNPCSG series"
        elif v > 30:
            level, msg = "caution", f"rGTV {v:g} cc > 30-38 cc: a negative prognostic factor in published series"
        else:
            level, msg = "info", f"rGTV {v:g} cc"
        out.append(Finding("tumour bulk", level, msg + "; bulk alone is not an exclusion criterion",
                           "rec. 6: 19/24, 79 %; GRADE moderate"))
    return out
