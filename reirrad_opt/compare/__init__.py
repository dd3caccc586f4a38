"""IMRT versus particle comparative planning on identical anatomy, prior course and protocol.

``from reirrad_opt.compare import compare`` gives :func:`reirrad_opt.compare.run.compare`; the
comparison folder is written by :func:`write_comparison_folder`.
"""
from .folder import write_comparison_folder
from .run import Comparison, compare

__all__ = ["compare", "Comparison", "write_comparison_folder"]
