"""reirrad-opt: lexicographic re-irradiation planning against cumulative EQD2 limits.

Units: Gy, mm, cc. Arrays are indexed (z, y, x); patient points are DICOM LPS (x, y, z).
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy ``reirrad_opt.compare(case, protocol, ...)`` (IMRT versus particle comparison)."""
    if name == "compare":
        from .compare.run import compare

        return compare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
