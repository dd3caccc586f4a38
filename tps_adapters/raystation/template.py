'''The body of the emitted RayStation script (after its settings block).

It is plain CPython 3 with only the standard library and RayStation's ``connect`` module; the
settings it reads (upper-case names) are written above it by :func:`tps_adapters.raystation.emit.emit`.
'''

BODY = r'''
import datetime
import json
import os
import subprocess
import sys
import threading

from connect import get_current

GOAL_TYPES = {
    # tps_goals.json goal_type -> RayStation GoalType
    "dose_at_absolute_volume": "DoseAtAbsoluteVolume",
    "dose_at_volume": "DoseAtVolume",
    "average_dose": "AverageDose",
    "volume_at_dose": "VolumeAtDose",
}
CRITERIA = {"at_most": "AtMost", "at_least": "AtLeast"}


def say(text):
    print("[reirrad-opt] " + text)
    sys.stdout.flush()


def new_exchange_folder(patient, examination):
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(patient.PatientID))
    folder = os.path.join(EXCHANGE_ROOT, safe + "_" + stamp)
    os.makedirs(os.path.join(folder, "dicom"))
    return folder


def export_case(case, examination, folder):
    """CT, its structure set and the prior dose, as the TPS writes them (ScriptableDicomExport)."""
    kwargs = {"ExportFolderPath": os.path.join(folder, "dicom"),
              "Examinations": [examination.Name],
              "RtStructureSetsForExaminations": [examination.Name],
              "PhysicalBeamSetDoseForBeamSets": [PRIOR_BEAM_SET],
              "IgnorePreConditionWarnings": True}
    if EXPORT_PRIOR_PLAN:
        kwargs["BeamSets"] = [PRIOR_BEAM_SET]
    case.ScriptableDicomExport(**kwargs)


def write_request(folder, patient, examination):
    request = {
        "schema_version": 1,
        "protocol": PROTOCOL,
        "fractionation": FRACTIONATION,
        "modality": MODALITY,
        "beams": {"gantry_angles_deg": list(GANTRY_ANGLES_DEG)} if GANTRY_ANGLES_DEG else {"count": BEAM_COUNT},
        "prior_course": {"n_fractions": PRIOR_N_FRACTIONS, "modality": PRIOR_MODALITY,
                         "interval_months": INTERVAL_MONTHS},
        "roi_map": dict(ROI_MAP),
        "absent": list(ABSENT),
        "limit_level": LIMIT_LEVEL,
        "tps": {"system": "RayStation", "raystation_version": CALLS["version"], "patient_id": str(patient.PatientID),
                "examination": examination.Name, "prior_beam_set": PRIOR_BEAM_SET},
    }
    if RBE is not None:
        request["rbe"] = RBE
    if PRIOR_RBE is not None:
        request["prior_course"]["rbe"] = PRIOR_RBE
    if VOXEL_MM is not None:
        request["voxel_mm"] = VOXEL_MM
    if SYNTHETIC_RECURRENCE is not None:
        request["synthetic_recurrence"] = dict(SYNTHETIC_RECURRENCE)
    with open(os.path.join(folder, "request.json"), "w") as f:
        json.dump(request, f, indent=2)


def run_reirrad(folder):
    """reirrad-opt tps-run, its output shown line by line; the status it wrote (or why there is none)."""
    command = list(REIRRAD_COMMAND) + ["tps-run", folder]
    say("running " + " ".join(command))
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True)
    except OSError as exc:
        return {"state": "failed", "exit_code": -1,
                "message": "cannot start " + str(command[0]) + ": " + str(exc) + " (set REIRRAD_COMMAND)"}
    timed_out = []

    def stop():   # a watchdog: the run may also hang without printing anything
        timed_out.append(True)
        process.kill()

    watchdog = threading.Timer(TIMEOUT_S, stop)
    watchdog.start()
    try:
        for line in process.stdout:
            print(line.rstrip())
        process.wait()
    finally:
        watchdog.cancel()
    if timed_out:
        return {"state": "failed", "exit_code": -1,
                "message": "reirrad-opt did not finish within " + str(TIMEOUT_S) + " s (TIMEOUT_S); stopped"}
    path = os.path.join(folder, "result", "status.json")
    if not os.path.isfile(path):
        return {"state": "failed", "exit_code": process.returncode,
                "message": "reirrad-opt ended with exit code " + str(process.returncode) + " and wrote no status.json"}
    with open(path) as f:
        return json.load(f)


def clinical_goal_kwargs(goal):
    """AddClinicalGoal keywords of one tps_goals.json entry (levels in cGy, volumes as RayStation takes them)."""
    kind = goal["goal_type"]
    kwargs = {"RoiName": goal["roi_name"], "GoalCriteria": CRITERIA[goal["direction"]],
              "GoalType": GOAL_TYPES[kind], "Priority": int(goal["priority"])}
    level_key = CALLS["goal_level_keyword"]
    if kind == "dose_at_absolute_volume":
        kwargs[level_key] = float(goal["level_cgy"])
        kwargs["ParameterValue"] = float(goal["volume_cc"])
    elif kind == "dose_at_volume":
        kwargs[level_key] = float(goal["level_cgy"])
        kwargs["ParameterValue"] = float(goal["volume_pct"]) / 100.0
    elif kind == "average_dose":
        kwargs[level_key] = float(goal["level_cgy"])
        kwargs["ParameterValue"] = 0.0
    else:  # volume_at_dose: the dose is the parameter, the volume fraction the level
        kwargs[level_key] = float(goal["volume_pct"]) / 100.0
        kwargs["ParameterValue"] = float(goal["level_cgy"])
    kwargs.update(CALLS["goal_extra"])
    return kwargs


def optimization_function(goal):
    """(FunctionType, IsConstraint, DoseLevel cGy, PercentVolume %, EudParameterA) of one goal, or a reason
    why it has none. Priority-1 caps are constraints at their level; coverage and hotspot are objectives
    at the level the reirrad-opt plan achieved, so RayStation's optimizer starts from that result."""
    kind, direction = goal["goal_type"], goal["direction"]
    if goal["role"] == "constraint":
        if kind == "dose_at_absolute_volume":
            return ("MaxDose", True, goal["level_cgy"], None, None)
        return "a constraint of type " + kind + " has no RayStation constraint function here"
    if kind == "dose_at_volume" and direction == "at_least":
        level = goal["achieved_cgy"] if goal.get("achieved_cgy") is not None else goal["level_cgy"]
        return ("MinDvh", False, level, goal["volume_pct"], None)
    if kind == "volume_at_dose" and direction == "at_most":
        volume = goal["achieved_pct"] if goal.get("achieved_pct") is not None else goal["volume_pct"]
        return ("MaxDvh", False, goal["level_cgy"], volume, None)
    if kind == "dose_at_absolute_volume" and direction == "at_most":
        return ("MaxDose", False, goal["level_cgy"], None, None)
    if kind == "average_dose" and direction == "at_most":
        return ("MaxEud", False, goal["level_cgy"], None, 1.0)
    return "no optimization function for " + kind + " " + direction


def apply_goals(plan, case, goals_doc):
    """Clinical goals and optimization functions on ``plan``; returns (done, skipped) lines."""
    roi_names = set(r.Name for r in case.PatientModel.RegionsOfInterest)
    evaluation = plan.TreatmentCourse.EvaluationSetup
    optimization = plan.PlanOptimizations[OPTIMIZATION_INDEX]
    done, skipped = [], []
    for item in goals_doc["unmapped"]:
        skipped.append(item["line_id"] + ": " + item["reason"])
    for goal in goals_doc["goals"]:
        label = goal["line_id"] + " on " + goal["roi_name"]
        if goal.get("roi_generated") and not USE_GENERATED_ROIS:
            skipped.append(label + ": ROI made by reirrad-opt; import result/dicom/RS_new_course_targets.dcm and set "
                                   "USE_GENERATED_ROIS = True (mind a same-named ROI already in the case)")
            continue
        if goal["roi_name"] not in roi_names:
            skipped.append(label + ": no ROI of that name in the case")
            continue
        kwargs = clinical_goal_kwargs(goal)
        evaluation.AddClinicalGoal(**kwargs)
        done.append("clinical goal " + label + ": " + kwargs["GoalCriteria"] + " " + kwargs["GoalType"] + " "
                    + str(kwargs[CALLS["goal_level_keyword"]])
                    + " (ParameterValue " + str(kwargs["ParameterValue"]) + ")")
        spec = optimization_function(goal)
        if isinstance(spec, str):
            skipped.append(label + ": " + spec)
            continue
        function_type, is_constraint, dose_level, percent_volume, eud_a = spec
        function = optimization.AddOptimizationFunction(FunctionType=function_type, RoiName=goal["roi_name"],
                                                        IsConstraint=is_constraint, IsRobust=False,
                                                        UseRbeDose=MODALITY != "photon")
        if function is None:  # older versions: the new function is the last constituent
            function = list(optimization.Objective.ConstituentFunctions)[-1]
        parameters = function.DoseFunctionParameters
        parameters.DoseLevel = float(dose_level)
        if percent_volume is not None:
            parameters.PercentVolume = float(percent_volume)
        if eud_a is not None:
            parameters.EudParameterA = float(eud_a)
        if not is_constraint:
            parameters.Weight = float(WEIGHT_BY_PRIORITY.get(int(goal["priority"]), 1.0))
        done.append(("constraint " if is_constraint else "objective ") + function_type + " " + label + " at "
                    + str(round(float(dose_level), 1)) + " cGy"
                    + ("" if percent_volume is None else ", " + str(round(float(percent_volume), 2)) + " %"))
    return done, skipped


def main():
    missing = [name for name in ("PRIOR_BEAM_SET", "PRIOR_N_FRACTIONS", "INTERVAL_MONTHS") if globals()[name] is None]
    if missing:
        say("set " + ", ".join(missing) + " in the settings at the top of this script")
        return 2
    patient = get_current("Patient")
    case = get_current("Case")
    examination = get_current("Examination")
    plan = get_current("Plan")
    folder = new_exchange_folder(patient, examination)
    say("exchange folder " + folder)
    export_case(case, examination, folder)
    write_request(folder, patient, examination)
    status = run_reirrad(folder)
    if status.get("state") != "complete":
        say("reirrad-opt did not plan (exit code " + str(status.get("exit_code")) + "): " + str(status.get("message")))
        if status.get("key"):
            say("fix request key " + str(status["key"]) + " (settings at the top of this script)")
        return 2
    say("reirrad-opt: " + str(status.get("message")))
    with open(os.path.join(folder, "result", "tps_goals.json")) as f:
        goals_doc = json.load(f)
    done, skipped = apply_goals(plan, case, goals_doc)
    say("done (" + str(len(done)) + "):")
    for line in done:
        print("  " + line)
    say("not mapped (" + str(len(skipped)) + "):")
    for line in skipped:
        print("  " + line)
    say("the cap map is result/dicom/RD_new_course_cap.dcm: import it to see where the cumulative budget is tight")
    return 0


if __name__ == "__main__":
    main()
'''
