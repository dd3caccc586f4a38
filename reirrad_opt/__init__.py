"""reirrad-opt: lexicographic re-irradiation planning against cumulative EQD2 limits.

Units: Gy, mm, cc. Arrays are indexed (z, y, x); patient points are DICOM LPS (x, y, z).
"""
__version__ = "0.1.0"

