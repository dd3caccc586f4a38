"""A small reader for 3-D NRRD volumes (as written by 3D Slicer / SlicerRT for dose grids).

Supports: ``dimension: 3``, ``space: left-posterior-superior`` (or ``LPS``/``RAS``), diagonal
``space directions`` (axis-aligned), ``encoding: raw`` or ``gzip``, little or big endian, the
usual scalar types. Samples are voxel centres; ``space origin`` is the centre of the first one.
"""
from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np

from reirrad_opt.geometry import Grid

from .errors import DicomFileError, GeometryError

_TYPES = {
    "float": "f4", "double": "f8", "uchar": "u1", "unsigned char": "u1", "uint8": "u1", "char": "i1", "int8": "i1",
    "signed char": "i1", "short": "i2", "int16": "i2", "signed short": "i2", "ushort": "u2", "unsigned short": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "signed int": "i4", "uint": "u4", "unsigned int": "u4", "uint32": "u4",
}


def _vector(text: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"[-+0-9.eE]+", text)], dtype=float)


def read_nrrd(path: str | os.PathLike) -> tuple[np.ndarray, Grid]:
    """Read a 3-D axis-aligned NRRD; returns ``(volume[z, y, x], grid)`` in LPS mm."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"NRRD000"):
        raise DicomFileError(f"{path}: not an NRRD file (no 'NRRD000x' magic)")
    end = data.find(b"\n\n")
    if end < 0:
        raise DicomFileError(f"{path}: NRRD header not terminated by a blank line")
    header: dict[str, str] = {}
    for line in data[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        header[key.strip().lower()] = value.lstrip("=").strip()
    payload = data[end + 2:]
    if header.get("dimension") != "3":
        raise DicomFileError(f"{path}: only 3-D NRRD volumes are supported (dimension {header.get('dimension')})")
    sizes = [int(v) for v in header["sizes"].split()]
    dtype = _TYPES.get(header.get("type", "").lower())
    if dtype is None:
        raise DicomFileError(f"{path}: NRRD type {header.get('type')!r} is not supported")
    endian = "<" if header.get("endian", "little") == "little" else ">"
    encoding = header.get("encoding", "raw").lower()
    if encoding in ("gzip", "gz"):
        payload = gzip.decompress(payload)
    elif encoding != "raw":
        raise DicomFileError(f"{path}: NRRD encoding {encoding!r} is not supported")
    count = int(np.prod(sizes))
    values = np.frombuffer(payload, dtype=endian + dtype, count=count)
    # NRRD lists the fastest axis first: sizes = (nx, ny, nz)
    volume = values.reshape(sizes[::-1]).astype(np.float64)
    directions = [_vector(v) for v in re.findall(r"\(([^)]*)\)", header.get("space directions", ""))]
    if len(directions) != 3:
        raise DicomFileError(f"{path}: NRRD 'space directions' must give three vectors")
    d = np.array(directions)
    if np.max(np.abs(d - np.diag(np.diag(d)))) > 1e-6:
        raise GeometryError(f"{path}: NRRD space directions {d.tolist()} are not axis-aligned")
    origin = _vector(header.get("space origin", "(0,0,0)"))
    space = header.get("space", "left-posterior-superior").lower()
    spacing = np.diag(d).copy()
    if space in ("right-anterior-superior", "ras"):
        spacing[:2] *= -1
        origin[:2] *= -1
    elif space not in ("left-posterior-superior", "lps"):
        raise GeometryError(f"{path}: NRRD space {space!r} is not supported")
    # Make every axis ascending in LPS (flip the array where the spacing is negative).
    for axis_xyz in range(3):
        if spacing[axis_xyz] < 0:
            arr_axis = 2 - axis_xyz
            volume = np.flip(volume, axis=arr_axis)
            origin[axis_xyz] += spacing[axis_xyz] * (sizes[axis_xyz] - 1)
            spacing[axis_xyz] = -spacing[axis_xyz]
    grid = Grid(tuple(volume.shape), (spacing[2], spacing[1], spacing[0]), (origin[2], origin[1], origin[0]))
    return np.ascontiguousarray(volume), grid
