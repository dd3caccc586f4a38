"""Plan-quality studies: many plans (cases x variants) on Dask, one table of results.

See docs/study.md. ``load_study`` reads and checks a STUDY.toml; ``run_study`` runs it on a
dask.distributed Client (``open_client`` starts a local cluster or connects to a scheduler).
"""
from .run import ClusterSettings, StudyRun, open_client, run_study
from .spec import CaseSpec, StudyError, StudySpec, load_study
from .variants import Job, Variant

__all__ = ["CaseSpec", "ClusterSettings", "Job", "StudyError", "StudyRun", "StudySpec", "Variant", "load_study",
           "open_client", "run_study"]
