"""Errors of the prior-course registration and dose mapping; each names the file, frame or option."""
from __future__ import annotations

from tps_adapters.dicom.errors import DicomImportError, DicomImportWarning


class RegistrationError(DicomImportError):
    """A registration object or a computed registration cannot be used (wrong frames, not rigid,
    folding, not converged, ...)."""


class RegistrationWarning(DicomImportWarning):
    """A registration result to be read with care (deformable dose mapping, large transform, ...)."""
