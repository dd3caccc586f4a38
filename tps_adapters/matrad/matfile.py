"""Reading MATLAB files: v5 (and v4/v6) through scipy.io.loadmat, with a clear refusal of v7.3.

MATLAB's ``save -v7.3`` writes an HDF5 file behind a 128-byte MATLAB header whose text starts
``MATLAB 7.3 MAT-file``; the HDF5 signature ``\\x89HDF\\r\\n\\x1a\\n`` follows at byte 512.
scipy.io.loadmat cannot read it and would say only "Please use HDF reader for matlab v7.3
files"; we name the file and say how to re-save it.
"""
from __future__ import annotations

import os
from pathlib import Path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class MatFileError(ValueError):
    """A MATLAB file that cannot be read or lacks what a matRad structure needs (the message names it)."""


def is_v73(path: str | os.PathLike) -> bool:
    """True for a MATLAB v7.3 (HDF5) file: the header text says 7.3, or the HDF5 signature is at byte 0 or 512."""
    with open(path, "rb") as fh:
        head = fh.read(520)
    return head.startswith(b"MATLAB 7.3") or head[:8] == HDF5_SIGNATURE or head[512:520] == HDF5_SIGNATURE


def load_mat(path: str | os.PathLike, what: str) -> dict:
    """The variables of a MATLAB v5 file as scipy.io.loadmat gives them (squeezed, structs as objects).

    ``what`` says what the file should hold (for the messages, e.g. "matRad ct and cst")."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (expected a MATLAB .mat file with {what})")
    if is_v73(path):
        raise MatFileError(f"{path}: a MATLAB v7.3 (HDF5) file; reirrad-opt reads MATLAB v5 files. Re-save it in "
                           f"MATLAB with save('{path.name}', ..., '-v7') (variables under 2 GB), or in Python with "
                           f"scipy.io.savemat")
    try:
        return loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several error types for files that are not MATLAB files
        raise MatFileError(f"{path}: cannot be read as a MATLAB v5 file with {what} ({exc})") from exc


def field(struct, name: str, where: str):
    """``struct.name`` of a loaded MATLAB struct; MatFileError naming ``where.name`` if it is missing."""
    names = getattr(struct, "_fieldnames", None)
    if names is None:
        raise MatFileError(f"{where}: expected a MATLAB struct, got {type(struct).__name__}")
    if name not in names:
        raise MatFileError(f"{where}.{name} is missing (the struct has {', '.join(names)})")
    return getattr(struct, name)


def has_field(struct, name: str) -> bool:
    return name in (getattr(struct, "_fieldnames", None) or ())


def first_cell(value):
    """A MATLAB cell {A, ...} read by loadmat (object array) -> A; anything else unchanged. matRad keeps
    one entry per CT or dose scenario in such cells; reirrad-opt uses the first (nominal) scenario."""
    import numpy as np

    if isinstance(value, np.ndarray) and value.dtype == object:
        if value.size == 0:
            return None
        return value.flat[0]
    return value
