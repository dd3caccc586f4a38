"""Sample points of a structure for dose-volume metrics: :mod:`reirrad_opt.geometry.sampling`
(shared by the optimizer and the evaluation), re-exported here for the evaluation's modules."""
from ..geometry.sampling import (DEFAULT_MAX_SAMPLES, SamplePoints, Samples, sample_points, structure_samples,
                                 supersampled_grid)

__all__ = ["DEFAULT_MAX_SAMPLES", "SamplePoints", "Samples", "sample_points", "structure_samples",
           "supersampled_grid"]
