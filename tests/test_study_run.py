"""Studies on a real dask.distributed LocalCluster (2 workers): end to end, one influence matrix
per (case, modality, beams), failing variants, resume, and agreement with single plan() calls.

Plans use a 3-goal excerpt of the NPC protocol on the 5 mm phantom with 3-4 beams (about 4 s a
plan), so the module stays within about two minutes on two cores.
"""
from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reirrad_opt.protocol import DEFAULT_PROTOCOL
from reirrad_opt.study import load_study, run_study
from reirrad_opt.study.results import without_timings

GOALS = ("Brainstem_D0.03cc", "rGTV_D98%", "PTV_D98%")


def small_protocol(path: Path) -> Path:
    """The NPC protocol with three of its goals (brainstem, rGTV and PTV coverage)."""
    text = DEFAULT_PROTOCOL.read_text()
    head, *goals = text.split("[[goal]]")
    kept = [g for g in goals if any(f'id = "{gid}"' in g for gid in GOALS)]
    assert len(kept) == len(GOALS)
    path.write_text(head.replace('name = "npc_reirradiation_2021"', 'name = "npc_three_goals"')
                    + "".join("[[goal]]" + g for g in kept))
    return path


def study_file(folder: Path, body: str, name: str = "study.toml") -> Path:
    small_protocol(folder / "protocol.toml")
    path = folder / name
    path.write_text('[study]\nname = "t"\nprotocol = "protocol.toml"\n' + body)
    return path


CASE = """
[[case]]
name = "npc5"
phantom = "npc"
resolution_mm = 5.0
rgtv_gap_to_brainstem_mm = 4.0
"""

SIX = CASE + """
[sweep]
beams = [3, 4]
recovery = ["none", "constant:0.3", "table:12=0.1,36=0.5"]
"""


class Count:
    """Counts calls of a function across the threads of the local cluster."""

    def __init__(self, fn, label):
        self.fn, self.label, self.calls, self.lock = fn, label, Counter(), threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.calls[self.label(*args, **kwargs)] += 1
        return self.fn(*args, **kwargs)


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    from threadpoolctl import threadpool_limits

    # threads, so that the test's counters see every call; the command uses processes (tested below).
    # BLAS is limited to one thread for the whole module: the first-order engine limits BLAS while it
    # optimizes, and that limit is process-wide, so two plans in two threads of one process would
    # otherwise change each other's BLAS threading (and summation order) mid-run.
    with threadpool_limits(limits=1):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
        c = Client(cluster)
        yield c
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def six(client, tmp_path_factory):
    """The 6-variant study (2 beam counts x 3 recovery models) run once, counting the influence
    computations (plan() would call the same function if it computed its own)."""
    import reirrad_opt.dose as dose

    folder = tmp_path_factory.mktemp("six")
    spec = load_study(study_file(folder, SIX))
    count = Count(dose.compute_influence, lambda grid, ct, body, beams, **kw: (grid.shape, beams[0].modality,
                                                                            len(beams)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dose, "compute_influence", count)
        run = run_study(spec, folder / "out", client)
    return spec, folder / "out", run, count.calls


def test_six_variants_end_to_end(six):
    spec, out, run, _ = six
    assert (run.n_jobs, run.n_run, run.n_done, run.n_failed, run.n_reused) == (6, 6, 6, 0, 0)
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 6 and list(table["key"]) == [j.file_stem for j in spec.jobs]
    assert list(table["beams"]) == [3, 3, 3, 4, 4, 4]
    assert list(table["recovery"]) == ["none", "constant:0.3", "table:12=0.1,36=0.5"] * 2
    assert set(table["status"]) == {"done"} and table["verdict"].notna().all()
    for col in ("Brainstem_D0.03cc_cumEQD2_Gy", "rGTV_D98%_new_Gy", "PTV_D98%_new_Gy", "Brainstem_D0.03cc_verdict",
                "Brainstem_D0.03cc_tier", "time_optimize_s", "time_influence_s", "notes"):
        assert col in table.columns, col
    assert (table["Brainstem_D0.03cc_cumEQD2_Gy"] > 40).all() and (table["rGTV_D98%_new_Gy"] > 30).all()
    # recovery lowers the cumulative brainstem dose of the same plan geometry
    by = table.set_index(["beams", "recovery"])["Brainstem_D0.03cc_cumEQD2_Gy"]
    assert by[(3, "constant:0.3")] < by[(3, "none")]
    csv = pd.read_csv(out / "results.csv")
    assert list(csv.columns) == list(table.columns) and len(csv) == 6
    np.testing.assert_allclose(csv["Brainstem_D0.03cc_cumEQD2_Gy"], table["Brainstem_D0.03cc_cumEQD2_Gy"], rtol=1e-5)
    assert len(list((out / "results").glob("*.json"))) == 6
    page = (out / "study.html").read_text()
    for png in ("figures/verdicts.png", "figures/metrics_by_beams.png", "figures/metrics_by_recovery.png"):
        assert png in page and (out / png).stat().st_size > 5000
    info = json.loads((out / "study.json").read_text())
    assert info["run"]["influence_matrices"] == 2 and info["versions"]["dask"]
    assert info["cluster"]["workers"] == 2
    marker = json.loads((out / ".reirrad-opt-output.json").read_text())
    assert marker["command"] == "study" and marker["state"] == "complete"


def test_influence_computed_once_per_case_modality_beams(six):
    _, _, _, calls = six
    assert sorted(calls.values()) == [1, 1]
    assert sorted(k[1:] for k in calls) == [("photon", 3), ("photon", 4)]


def test_table_matches_single_plan_calls(six):
    """Two rows recomputed with plain plan() calls (each computing its own matrix)."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan
    from reirrad_opt.study.variants import recovery_model

    spec, out, _, _ = six
    table = pd.read_parquet(out / "results.parquet").set_index("key")
    for job in (spec.jobs[0], spec.jobs[5]):
        case = make_npc_phantom(5.0, rgtv_gap_to_brainstem_mm=4.0, name="npc5")
        result = plan(case, out.parent / "protocol.toml", n_beams=job.variant.beams,
                      recovery=recovery_model(job.variant.recovery))
        row = table.loc[job.file_stem]
        assert row["verdict"] == result.verdict
        for r in result.evaluation.rows:
            col = f"{r.structure}_{r.metric}_{'cumEQD2' if r.cumulative else 'new'}_{'pct' if r.unit == '%' else 'Gy'}"
            assert row[col] == pytest.approx(r.value, rel=1e-6, abs=1e-6), col
            assert row[f"{r.structure}_{r.metric}_verdict"] == r.verdict


def test_a_settings_file_chooses_how_its_plans_are_computed(client, tmp_path):
    """A swept settings file reaches the plan on the worker: its row says which engine solved the stages, and
    its values are those of plan(..., settings=load_settings(file)) on the same case."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan
    from reirrad_opt.planning_settings import load_settings

    (tmp_path / "lp.toml").write_text('[settings]\nengine = "lp"\n')
    spec = load_study(study_file(tmp_path, CASE + '[defaults]\nbeams = 3\n[sweep]\nsettings = ["default", "lp.toml"]\n'))
    run = run_study(spec, tmp_path / "out", client)
    assert (run.n_done, run.n_failed) == (2, 0)
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(table["settings"]) == ["default", "lp.toml"] and list(table["engine"]) == ["first-order", "lp"]
    result = plan(make_npc_phantom(5.0, rgtv_gap_to_brainstem_mm=4.0, name="npc5"), tmp_path / "protocol.toml",
                  n_beams=3, settings=load_settings(tmp_path / "lp.toml"))
    assert result.optimization.engine == "lp"
    row = table.iloc[1]
    for r in result.evaluation.rows:
        col = f"{r.structure}_{r.metric}_{'cumEQD2' if r.cumulative else 'new'}_{'pct' if r.unit == '%' else 'Gy'}"
        assert row[col] == pytest.approx(r.value, rel=1e-6, abs=1e-6), col


def test_resume_runs_only_missing_variants(six, client, tmp_path):
    import reirrad_opt.planning as planning

    spec, out, _, _ = six
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    removed = [spec.jobs[1], spec.jobs[4]]
    for job in removed:
        (copy / "results" / f"{job.file_stem}.json").unlink()
    (copy / "results.parquet").unlink()
    kept = {p.name: p.read_bytes() for p in (copy / "results").glob("*.json")}
    count = Count(planning.plan, lambda case, protocol, **kw: kw["recovery"].kind if kw["recovery"] else "protocol")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planning, "plan", count)
        run = run_study(spec, copy, client)
    assert (run.n_reused, run.n_run, run.n_done, run.n_influence) == (4, 2, 2, 2)
    assert sum(count.calls.values()) == 2 and set(count.calls) == {"constant"}  # jobs 1 and 4: constant:0.3
    assert all((copy / "results" / name).read_bytes() == data for name, data in kept.items())
    # the same table as the uninterrupted run (timings aside): the study is deterministic
    a = without_timings(pd.read_parquet(out / "results.parquet"))
    b = without_timings(pd.read_parquet(copy / "results.parquet"))
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    # started again with every result present: nothing is planned
    again = run_study(spec, copy, client)
    assert (again.n_reused, again.n_run) == (6, 0)


def test_failing_variants_are_recorded_and_the_rest_complete(client, tmp_path):
    import reirrad_opt.planning as planning

    body = CASE + CASE.replace('"npc5"', '"unreachable"').replace(
        "rgtv_gap_to_brainstem_mm = 4.0", "rgtv_radius_mm = 30.0\nrgtv_centre_z_mm = 0.0") + """
[[variant]]
beams = 3
fractionation = "bid-1.2"

[[variant]]
beams = 3
fractionation = "qd-2.0"
"""
    spec = load_study(study_file(tmp_path, body))
    real = planning.plan

    def plan_failing_qd(case, protocol, **kwargs):
        if protocol.fractionation.name == "qd-2.0":
            raise RuntimeError("solver exploded on purpose")
        return real(case, protocol, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planning, "plan", plan_failing_qd)
        run = run_study(spec, tmp_path / "out", client, plan_folders=True)
    assert (run.n_run, run.n_done, run.n_failed) == (4, 1, 3)
    # --plan-folders: the one plan that ran has its folder, named by case and key
    folders = sorted((tmp_path / "out" / "plans").iterdir())
    assert [f.name for f in folders] == [f"npc5-{spec.jobs[0].file_stem[:12]}"]
    assert json.loads((folders[0] / "plan.json").read_text())["prescription"][
        "fractionation"] == "bid-1.2"
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    status = dict(zip(zip(table["case"], table["fractionation"]), zip(table["status"], table["error_class"])))
    assert status[("npc5", "bid-1.2")][0] == "done" and pd.isna(status[("npc5", "bid-1.2")][1])
    assert status[("npc5", "qd-2.0")] == ("failed", "RuntimeError")
    # the case that cannot be built fails both its variants, with the phantom's own message
    assert status[("unreachable", "bid-1.2")] == ("failed", "ValueError")
    msg = table.loc[table["case"] == "unreachable", "error_message"].iloc[0]
    assert msg.startswith("case unreachable: rGTV (radius 30.0 mm") and "overlaps OpticChiasm" in msg
    assert table.loc[table["status"] == "failed", "Brainstem_D0.03cc_cumEQD2_Gy"].isna().all()
    qd = next(j for j in spec.jobs if j.case.name == "npc5" and j.variant.fractionation == "qd-2.0")
    stored = json.loads((tmp_path / "out" / "results" / f"{qd.file_stem}.json").read_text())
    assert stored["status"] == "failed" and "solver exploded on purpose" in stored["columns"]["error_message"]
    assert "plan_failing_qd" in stored["traceback"]
    assert (tmp_path / "out" / "study.html").read_text().count("<tr class='failed'>") == 3


def test_interrupted_study_keeps_finished_results_and_resumes(client, tmp_path):
    """Ctrl-C in the study process after the first plan: its result stays, the rest is cancelled;
    started again, the study plans only the others."""
    import reirrad_opt.planning as planning

    spec = load_study(study_file(tmp_path, CASE + '[sweep]\nbeams = [3]\nrecovery = ["none", "constant:0.3", '
                                           '"constant:0.5"]\n'))
    out = tmp_path / "out"

    def interrupt(message: str) -> None:
        if message.startswith("study: 1/3 done"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(spec, out, client, progress=interrupt)
    have = sorted(p.stem for p in (out / "results").glob("*.json"))
    assert len(have) == 1 and not (out / "results.parquet").exists()
    assert json.loads((out / ".reirrad-opt-output.json").read_text())["state"] == "writing"
    count = Count(planning.plan, lambda case, protocol, **kw: kw["recovery"].fraction)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planning, "plan", count)
        run = run_study(spec, out, client)
    assert (run.n_reused, run.n_run, run.n_done) == (1, 2, 2) and sum(count.calls.values()) == 2
    assert len(pd.read_parquet(out / "results.parquet")) == 3


def test_command_on_a_process_cluster_and_resume(tmp_path, capsys):
    """The command as a user runs it: a local cluster of 2 worker processes; started again, it
    keeps every result."""
    from reirrad_opt.cli import main

    path = study_file(tmp_path, CASE + '[sweep]\nbeams = [3]\nrecovery = ["none", "constant:0.3"]\n')
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out), "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert "study written to" in captured.out and "2 plans (0 kept, 2 run, 0 failed)" in captured.out
    assert "study: 2/2 done (0 failed" in captured.err and "about" in captured.err
    assert main(["study", str(path), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "2 plans (2 kept, 0 run, 0 failed)" in captured.out and captured.err == ""
    assert len(pd.read_parquet(out / "results.parquet")) == 2


def test_command_exit_code_when_plans_fail(tmp_path, capsys):
    """Every plan of a case that cannot be built fails: rows written, exit code 5."""
    from reirrad_opt.cli import main

    body = CASE.replace("rgtv_gap_to_brainstem_mm = 4.0", "rgtv_radius_mm = 30.0\nrgtv_centre_z_mm = 0.0")
    path = study_file(tmp_path, body + '[sweep]\nbeams = [3]\n')
    assert main(["study", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 5
    assert "1 plans (0 kept, 1 run, 1 failed)" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(table["status"]) == ["failed"] and list(table["error_class"]) == ["ValueError"]
