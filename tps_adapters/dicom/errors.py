"""Exceptions of the DICOM-RT adapter.

Every exception is a :class:`DicomImportError` (a ``ValueError``, so the ``reirrad-opt`` command
turns it into exit code 2), and every message names the file (or folder), the tag or object
concerned, and what was expected. Warnings that do not stop an import are
:class:`DoseCoverageWarning` (the prior dose grid does not cover a structure) and
:class:`DicomImportWarning` (anything else worth reading, e.g. a BEAM/PLAN disagreement).
"""
from __future__ import annotations


class DicomImportError(ValueError):
    """Base class: a DICOM input that cannot be imported as it is."""


class DicomFileError(DicomImportError):
    """A file that starts like DICOM but cannot be parsed (truncated, corrupt, undecodable pixels)."""


class MissingDataError(DicomImportError):
    """A required object or attribute is absent (no CT, no pixel data, no ContourData, ...)."""


class InvalidTagValueError(DicomImportError):
    """An attribute holds a value of the wrong kind (e.g. non-numeric Rescale Slope)."""


class ModalityError(DicomImportError):
    """A file's SOP class or Modality is not supported, or the two disagree."""


class MixedInputError(DicomImportError):
    """The folder mixes patients, studies, frames of reference, CT series or plans."""


class GeometryError(DicomImportError):
    """An image geometry that cannot be put on an axis-aligned grid (oblique, gantry tilt,
    non-axial, duplicate slices)."""


class SliceGapError(GeometryError):
    """A CT series with a missing slice (a gap larger than the slice spacing)."""


class DoseGridError(DicomImportError):
    """An RTDOSE grid that does not overlap the case grid at all, or is inconsistent."""


class UnsupportedDoseError(DicomImportError):
    """An RTDOSE whose units, type or summation cannot be turned into physical Gy as given
    (RELATIVE without a reference dose, EFFECTIVE for photons, unknown summation type, ...)."""


class PriorCourseError(DicomImportError):
    """The prior course's fractionation or interval is unknown or contradictory; it must be
    given on the command line (``--prior-fractions``, ``--interval-months``)."""


class StructureNameError(DicomImportError):
    """Two ROIs map to the same TG-263 name (use ``--structure-map`` to separate them)."""


class ExportError(DicomImportError):
    """A plan folder or reference folder that cannot be exported to DICOM as it is."""


class DicomImportWarning(UserWarning):
    """Something imported with an assumption or a discrepancy the user should read."""


class DoseCoverageWarning(DicomImportWarning):
    """The prior dose grid does not cover (part of) a structure; the dose there is 0 Gy."""
