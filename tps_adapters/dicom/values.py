"""Reading DICOM files and attribute values with errors that name the file and the tag."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from .errors import DicomFileError, InvalidTagValueError, MissingDataError

_MISSING = object()


def is_dicom_file(path: Path) -> bool:
    """True when the file carries the DICOM Part 10 preamble ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00", b"\x7f\xe0\x00\x10")


def _check_complete(path: Path, ds: Dataset, stop_before_pixels: bool) -> None:
    """pydicom stops silently at the end of a truncated file: check that the last element read
    ends exactly at the end of the file (or, when pixel data were skipped, where they begin)."""
    keys = list(ds.keys())
    if not keys:
        raise DicomFileError(f"{path}: no data elements after the file meta information (truncated)")
    raw = ds.get_item(max(keys))
    length = getattr(raw, "length", None)
    tell = getattr(raw, "value_tell", None)
    if length is None or tell is None or length == 0xFFFFFFFF:
        return  # undefined length (sequence / encapsulated pixels): checked by parsing
    end = tell + length
    size = path.stat().st_size
    if end == size:
        return
    if end < size and stop_before_pixels:
        with open(path, "rb") as fh:
            fh.seek(end)
            if fh.read(4) in _PIXEL_TAGS:
                return
    missing = f"{end - size} byte(s) missing" if end > size else f"{size - end} byte(s) left unparsed"
    raise DicomFileError(f"{path}: the file is truncated or corrupt ({missing} at the end of element "
                         f"{pydicom.tag.Tag(max(keys))})")


def read_dataset(path: str | os.PathLike, stop_before_pixels: bool = False) -> Dataset:
    """Read a Part 10 DICOM file; DicomFileError names the file when it is truncated or corrupt."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
            _check_complete(path, ds, stop_before_pixels)
            # Touch every element now so that a corrupt value fails here, naming the file.
            for _elem in ds.iterall():
                pass
    except DicomFileError:
        raise
    except InvalidDicomError as exc:
        raise DicomFileError(f"{path}: not a DICOM file ({exc})") from exc
    except (EOFError, OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, NotImplementedError) as exc:
        raise DicomFileError(f"{path}: cannot be read as DICOM, the file is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if "SOPClassUID" not in ds:
        raise MissingDataError(f"{path}: no SOP Class UID (0008,0016); cannot tell what this object is")
    return ds


def get_str(ds: Dataset, keyword: str, default: str = "") -> str:
    """A string attribute (stripped); ``default`` when absent or empty."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = ds.get(keyword, None)
    if value is None:
        return default
    text = str(value).strip()
    return text if text else default


def _to_float(value: Any, path: Path | str, keyword: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidTagValueError(f"{path}: {keyword} holds {value!r}, expected a number") from None
    if not np.isfinite(out):
        raise InvalidTagValueError(f"{path}: {keyword} holds {value!r}, expected a finite number")
    return out


def _present(ds: Dataset, keyword: str, path: Path | str, default: Any) -> tuple[bool, Any]:
    """(True, value) when the attribute holds something; (False, default) when it is absent or
    blank and a default is given; MissingDataError otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = ds.get(keyword, None)
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is _MISSING:
            raise MissingDataError(f"{path}: {keyword} is missing")
        return False, default
    return True, value


def get_float(ds: Dataset, keyword: str, path: Path | str, default: Any = _MISSING) -> float:
    """A single numeric attribute; MissingDataError if absent and no default,
    InvalidTagValueError if not a number."""
    found, value = _present(ds, keyword, path, default)
    if not found:
        return value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        if len(value) != 1:
            raise InvalidTagValueError(f"{path}: {keyword} holds {len(value)} values, expected one number")
        value = value[0]
    return _to_float(value, path, keyword)


def get_floats(ds: Dataset, keyword: str, path: Path | str, n: int | None = None,
               default: Any = _MISSING) -> np.ndarray:
    """A multi-valued numeric attribute as a float array (``n`` values if given)."""
    found, value = _present(ds, keyword, path, default)
    if not found:
        return value
    if isinstance(value, str):
        items = value.split("\\")
    elif isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        items = list(value)
    else:
        items = [value]
    out = np.array([_to_float(v, path, keyword) for v in items], dtype=float)
    if n is not None and out.size != n:
        raise InvalidTagValueError(f"{path}: {keyword} holds {out.size} values, expected {n}")
    return out


def get_int(ds: Dataset, keyword: str, path: Path | str, default: Any = _MISSING) -> int:
    """A single integer attribute (IS/US); InvalidTagValueError if not an integer."""
    value = get_float(ds, keyword, path, default=default)
    if value is default and default is not _MISSING:
        return default
    if abs(value - round(value)) > 1e-6:
        raise InvalidTagValueError(f"{path}: {keyword} holds {value!r}, expected an integer")
    return int(round(value))


def fmt_values(values, digits: int = 6) -> str:
    """A list of numbers as plain text for messages: ``[1, 0, 0.9962]``."""
    return "[" + ", ".join(f"{round(float(v), digits):g}" for v in np.ravel(values)) + "]"
