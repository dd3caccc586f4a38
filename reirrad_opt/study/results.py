"""Study results: the columns of a plan's row, one small JSON file per finished variant (written
atomically, named by the variant's content key), and the table assembled from them.

Columns (one row per plan, tidy):

- identity: ``key`` (first 20 hex digits of the content key), ``case``, ``case_<parameter>`` for
  phantom parameters set in the study (mm, months; ``case_prior_level_<organ>_Gy``), the study
  variables (``modality``, ``fractionation``, ``recovery``, ``interval_months``, ``slip``,
  ``optic_nerve_rule``, ``beams``, ``gantry_angles_deg``, ``rbe``, ``bixel_mm``,
  ``spot_spacing_mm``, ``settings`` (the settings file's name, or 'default'), ``option_<name>``), ``status`` ('done' or 'failed'), ``error_class``,
  ``error_message``;
- verdict: ``verdict``, ``dose_unit`` (Gy for photons, Gy(RBE) for particles: the unit of every
  ``_Gy`` dose column of the row, RBE-weighted for particles), ``rbe_used``, ``engine`` (that solved the
  stages);
- evaluation: ``<Structure>_<metric>_<cumEQD2|new>_<Gy|pct|cc>`` per protocol line and
  ``<Structure>_<metric>_verdict``;
- limit_tier: ``<goal id>_tier`` ('desirable' or 'acceptable' as the optimizer used it);
- timings: ``time_influence_s`` (the shared matrix's own time, paid once per influence key),
  ``time_optimize_s``, ``time_evaluate_s``, ``time_plan_s``, ``influence_MB``,
  ``worker_peak_rss_MB``;
- notes: ``notes`` (the plan's notes, joined by ' | ').
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_file
from .spec import StudySpec
from .variants import Job

RESULTS_DIR = "results"
TIMING_COLUMNS = ("time_influence_s", "time_optimize_s", "time_evaluate_s", "time_plan_s", "worker_peak_rss_MB")
_UNIT_TOKENS = {"Gy": "Gy", "Gy(RBE)": "Gy", "%": "pct", "cc": "cc"}


def metric_stem(structure: str, metric: str) -> str:
    """``Brainstem`` + ``D0.03cc`` -> ``Brainstem_D0.03cc``."""
    return f"{structure}_{metric}"


def measured_columns(plan, record: tuple[str, ...], influence) -> tuple[dict[str, Any], dict[str, dict]]:
    """The measured columns of a plan's row (by record group) and, per evaluation value column,
    what the page needs to draw it (priority, limits, sense)."""
    cols: dict[str, Any] = {}
    lines: dict[str, dict] = {}
    if "verdict" in record:
        cols["verdict"] = plan.verdict
        cols["dose_unit"] = plan.dose_unit
        cols["rbe_used"] = float(plan.rbe)
        cols["engine"] = plan.optimization.engine
    if "evaluation" in record:
        seen: set[str] = set()
        for row in plan.evaluation.rows:
            stem = metric_stem(row.structure, row.metric)
            if stem in seen:  # two lines on one metric of one structure: tell them apart by goal id
                stem = row.goal_id
            seen.add(stem)
            value_col = f"{stem}_{'cumEQD2' if row.cumulative else 'new'}_{_UNIT_TOKENS.get(row.unit, row.unit)}"
            cols[value_col] = None if row.value is None else float(row.value)
            cols[f"{stem}_verdict"] = row.verdict
            lines[value_col] = {"structure": row.structure, "metric": row.metric, "priority": int(row.priority),
                                "cumulative": bool(row.cumulative), "sense": row.sense,
                                "desirable": row.desirable, "acceptable": row.acceptable}
    if "limit_tier" in record:
        for goal, tier in sorted(plan.optimization.tier_by_goal.items()):
            cols[f"{goal}_tier"] = tier
    if "timings" in record:
        t = plan.timing_s
        cols["time_influence_s"] = round(float(influence.meta.get("seconds", float("nan"))), 3)
        cols["time_optimize_s"] = round(float(t.get("optimize", float("nan"))), 3)
        cols["time_evaluate_s"] = round(float(t.get("evaluate", float("nan"))), 3)
        m = influence.matrix
        cols["influence_MB"] = round((m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 1e6, 1)
    if "notes" in record:
        cols["notes"] = " | ".join(str(n) for n in (*plan.notes, *plan.optimization.notes))
    return cols, lines


def identity_columns(spec: StudySpec, job: Job) -> dict[str, Any]:
    """The columns that say which plan a row is: case, case parameters and study variables."""
    v = job.variant
    cols: dict[str, Any] = {"key": job.file_stem, "case": job.case.name}
    params = dict(job.case.parameters)
    for name in case_parameter_names(spec):
        if name.startswith("prior_level_"):
            organ = name[len("prior_level_"):-len("_Gy")]
            cols[f"case_{name}"] = params.get("prior_levels_gy", {}).get(organ)
        else:
            cols[f"case_{name}"] = params.get(name)
    cols.update({"modality": v.modality, "fractionation": v.fractionation, "recovery": v.recovery,
                 "interval_months": float(job.interval_months), "slip": v.slip or "protocol",
                 "optic_nerve_rule": v.optic_nerve_rule, "beams": int(v.beams),
                 "gantry_angles_deg": " ".join(f"{a:g}" for a in v.gantry_angles_deg),
                 "rbe": v.rbe, "bixel_mm": v.bixel_mm, "spot_spacing_mm": v.spot_spacing_mm,
                 "settings": Path(v.settings).name if v.settings else "default"})
    for name in option_names(spec):
        cols[f"option_{name}"] = dict(v.options).get(name)
    return cols


def case_parameter_names(spec: StudySpec) -> list[str]:
    """Phantom parameters set by some case of the study (prior levels one column per organ)."""
    names: list[str] = []
    for case in spec.cases:
        for k, value in case.parameters:
            keys = [f"prior_level_{o}_Gy" for o in value] if k == "prior_levels_gy" else [k]
            names.extend(n for n in keys if n not in names)
    return names


def option_names(spec: StudySpec) -> list[str]:
    names: list[str] = []
    for v in spec.variants:
        names.extend(k for k, _ in v.options if k not in names)
    return names


# ------------------------------------------------------------------------------------ files

class ResultStore:
    """The folder of per-variant result files, ``results/<key20>.json``.

    A file is written once its variant has finished (done or failed), atomically (a temporary
    file renamed), so an interrupted study leaves only whole results; a study started again
    with the same output runs the variants that have none.
    """

    def __init__(self, out: Path) -> None:
        self.folder = Path(out) / RESULTS_DIR

    def path(self, job: Job) -> Path:
        return self.folder / f"{job.file_stem}.json"

    def write(self, spec: StudySpec, job: Job, record: dict) -> dict:
        """Write the result of ``job``: identity columns + the worker's record."""
        content = {"key": job.key, "influence_key": job.influence_key, "status": record["status"],
                   "columns": {**identity_columns(spec, job), "status": record["status"],
                               **_error_columns(record), **record["columns"]},
                   "lines": record.get("lines", {})}
        if record.get("traceback"):
            content["traceback"] = record["traceback"]
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path(job), "w") as fh:
            json.dump(content, fh, indent=1, sort_keys=False, default=_json_default)
            fh.write("\n")
        return content

    def read(self, job: Job) -> dict | None:
        """The stored result of ``job``, None when there is none (or it belongs to another key, or
        cannot be read: it is then run again)."""
        path = self.path(job)
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(content, dict) or content.get("key") != job.key or "columns" not in content:
            return None
        return content

    def stray(self, spec: StudySpec) -> list[Path]:
        """Result files of no job of ``spec`` (an earlier version of the study): kept, not tabled."""
        wanted = {f"{j.file_stem}.json" for j in spec.jobs}
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.json") if p.name not in wanted)


def _error_columns(record: dict) -> dict:
    cols = record.get("columns", {})
    return {"error_class": cols.get("error_class"), "error_message": cols.get("error_message")}


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ------------------------------------------------------------------------------------ table

def assemble(spec: StudySpec, store: ResultStore):
    """The table (pandas DataFrame) of every job that has a result, in job order; and the
    evaluation lines' metadata (column -> priority, limits)."""
    import pandas as pd

    rows, lines = [], {}
    for job in spec.jobs:
        content = store.read(job)
        if content is None:
            continue
        rows.append(content["columns"])
        for col, info in content.get("lines", {}).items():
            lines.setdefault(col, info)
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    table = pd.DataFrame(rows, columns=columns)
    return table, lines


def write_table(table, out: Path) -> list[Path]:
    """results.parquet and results.csv, each written atomically."""
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    with atomic_file(out / "results.parquet", "wb") as fh:
        fh.write(buf.getvalue())
    with atomic_file(out / "results.csv", "w") as fh:
        table.to_csv(fh, index=False, float_format="%.6g")
    return [out / "results.parquet", out / "results.csv"]


def without_timings(table):
    """The table without the columns that change from run to run (timings, memory)."""
    drop = [c for c in table.columns if c in TIMING_COLUMNS]
    return table.drop(columns=drop)
