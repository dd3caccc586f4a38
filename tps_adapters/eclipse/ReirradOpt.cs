// ReirradOpt.cs: Eclipse (ESAPI 15.6 to 18) single-file plug-in written by
// 'reirrad-opt tps-script eclipse'. It reads the goals reirrad-opt wrote for this case
// (EXCHANGE_DIR\result\tps_goals.json), adds them as optimization objectives to the open plan's
// OptimizationSetup and lists them for the user. Doses are new-course doses in cGy.
//
// How a case gets to reirrad-opt and back (Eclipse has no call that runs an external program
// from a plug-in with the patient's DICOM; its DICOM export does that part):
//   1. Export the planning CT, its structure set and the prior course's dose with Eclipse's DICOM
//      export (Patient Explorer > File > Export > DICOM, or the DICOM Export wizard / DICOM daemon
//      of the clinic) into EXCHANGE_DIR\dicom.
//   2. Write EXCHANGE_DIR\request.json (see docs/tps-exchange.md: protocol, fractionation,
//      modality, prior course, roi_map from these ROI names to TG-263 names).
//   3. Run:  reirrad-opt tps-run EXCHANGE_DIR    (writes EXCHANGE_DIR\result)
//   4. Run this plug-in on the plan: it adds the objectives below.
//
// Checked against the documented ESAPI signatures by compiling it against stub assemblies (C# 5,
// mono mcs), not in a live Eclipse. Settings (written by the emitter) follow.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Windows;
using VMS.TPS.Common.Model.API;
using VMS.TPS.Common.Model.Types;

[assembly: ESAPIScript(IsWriteable = true)]

namespace VMS.TPS
{
    public class Script
    {
        // ---- settings ----
        const string ExchangeDir = @"{{EXCHANGE_DIR}}";
        // Eclipse priorities (doubles, 0-1000): priority-1 caps, then by protocol priority
        const double ConstraintPriority = {{CONSTRAINT_PRIORITY}};
        static readonly double[] ObjectivePriorityByProtocolPriority = { {{OBJECTIVE_PRIORITIES}} };
        // normal tissue objective: reirrad-opt's own fall-off (Rx at the PTV surface, half of it
        // 10 mm out, 25 % floor) as Eclipse's exponential NTO: fallOff = ln(3) / 10 mm
        static readonly bool AddNto = {{ADD_NTO}};
        const double NtoPriority = {{NTO_PRIORITY}};
        const double NtoDistanceFromTargetBorderMm = {{NTO_DISTANCE_MM}};
        const double NtoStartDosePercentage = {{NTO_START_PCT}};
        const double NtoEndDosePercentage = {{NTO_END_PCT}};
        const double NtoFallOff = {{NTO_FALL_OFF}};
        static readonly bool RemoveExistingObjectives = {{REMOVE_EXISTING}};
        // ---- end of settings ----

        public void Execute(ScriptContext context)
        {
            string report;
            try
            {
                report = Run(context);
            }
            catch (ReirradException ex)
            {
                report = ex.Message;
            }
            MessageBox.Show(report, "reirrad-opt");
        }

        public static string Run(ScriptContext context)
        {
            PlanSetup plan = context.PlanSetup;
            if (plan == null)
                throw new ReirradException("no plan is open: open the plan that should receive the objectives");
            string resultDir = Path.Combine(ExchangeDir, "result");
            string statusPath = Path.Combine(resultDir, "status.json");
            string goalsPath = Path.Combine(resultDir, "tps_goals.json");
            if (!File.Exists(statusPath) && !File.Exists(goalsPath))
                throw new ReirradException("no result in " + resultDir + ".\n\n" + HowToRun());
            if (File.Exists(statusPath))
            {
                Dictionary<string, object> status = Json.AsObject(Json.Parse(File.ReadAllText(statusPath)), "status.json");
                string state = Json.Str(status, "state", "status.json");
                if (state != "ok")
                    throw new ReirradException("the run in " + ExchangeDir + " did not succeed (state '" + state +
                        "', exit code " + Json.Num(status, "exit_code", "status.json").ToString(CultureInfo.InvariantCulture) +
                        "): " + Json.Str(status, "message", "status.json"));
            }
            if (!File.Exists(goalsPath))
                throw new ReirradException(goalsPath + " is missing although status.json says ok");
            Dictionary<string, object> doc = Json.AsObject(Json.Parse(File.ReadAllText(goalsPath)), "tps_goals.json");
            double version = Json.Num(doc, "schema_version", "tps_goals.json");
            if (version != 1)
                throw new ReirradException("tps_goals.json schema_version " + version + "; this plug-in reads version 1");
            if (Json.Str(doc, "dose_unit", "tps_goals.json") != "cGy")
                throw new ReirradException("tps_goals.json dose_unit must be 'cGy'");

            StructureSet structures = plan.StructureSet;
            if (structures == null)
                throw new ReirradException("plan " + plan.Id + " has no structure set");
            OptimizationSetup setup = plan.OptimizationSetup;
            context.Patient.BeginModifications();
            if (RemoveExistingObjectives)
                foreach (OptimizationObjective old in setup.Objectives.ToList())
                    setup.RemoveObjective(old);

            List<string> added = new List<string>();
            List<string> notMapped = new List<string>();
            foreach (object item in Json.AsList(doc["goals"], "tps_goals.json goals"))
            {
                Dictionary<string, object> goal = Json.AsObject(item, "tps_goals.json goal");
                string outcome = AddGoal(setup, structures, goal, plan.TotalDose.Unit, notMapped);
                if (outcome != null)
                    added.Add(outcome);
            }
            foreach (object item in Json.AsList(doc["unmapped"], "tps_goals.json unmapped"))
            {
                Dictionary<string, object> u = Json.AsObject(item, "tps_goals.json unmapped");
                notMapped.Add(Json.Str(u, "line_id", "unmapped") + ": " + Json.Str(u, "reason", "unmapped"));
            }
            if (AddNto && plan is ExternalPlanSetup)
            {
                setup.AddNormalTissueObjective(NtoPriority, NtoDistanceFromTargetBorderMm, NtoStartDosePercentage,
                                               NtoEndDosePercentage, NtoFallOff);
                added.Add("normal tissue objective (priority " + Fmt(NtoPriority) + ", " + Fmt(NtoStartDosePercentage) +
                          " % to " + Fmt(NtoEndDosePercentage) + " %, fall-off " + Fmt(NtoFallOff) + ")");
            }
            else if (AddNto)
                notMapped.Add("normal tissue objective: not a photon plan; set the proton NTO by hand");

            StringBuilder sb = new StringBuilder();
            sb.AppendLine("Plan " + plan.Id + ": " + added.Count + " objectives added from " + goalsPath);
            sb.AppendLine("(new-course doses in cGy" + (Json.Str(doc, "dose_kind", "tps_goals.json") == "rbe_weighted" ? "(RBE)" : "") +
                          "; cumulative limits as the tightest new-course cap over each ROI)");
            foreach (string a in added) sb.AppendLine("  + " + a);
            sb.AppendLine("Clinical goals (enter them in the plan's clinical protocol to follow them):");
            foreach (object item in Json.AsList(doc["goals"], "tps_goals.json goals"))
                sb.AppendLine("  - " + Describe(Json.AsObject(item, "goal")));
            if (notMapped.Count > 0)
            {
                sb.AppendLine("Not mapped:");
                foreach (string n in notMapped) sb.AppendLine("  ! " + n);
            }
            return sb.ToString();
        }

        static string HowToRun()
        {
            return "1. Export the CT, structure set and prior-course dose with Eclipse's DICOM export into " +
                   Path.Combine(ExchangeDir, "dicom") + ".\n2. Write " + Path.Combine(ExchangeDir, "request.json") +
                   " (docs/tps-exchange.md).\n3. Run: reirrad-opt tps-run \"" + ExchangeDir + "\"\n4. Run this plug-in again.";
        }

        static Structure FindStructure(StructureSet structures, string id)
        {
            Structure exact = structures.Structures.FirstOrDefault(s => s.Id == id);
            if (exact != null) return exact;
            return structures.Structures.FirstOrDefault(s => string.Equals(s.Id, id, StringComparison.OrdinalIgnoreCase));
        }

        static double PriorityOf(Dictionary<string, object> goal)
        {
            if (Json.Str(goal, "role", "goal") == "constraint") return ConstraintPriority;
            int p = (int)Json.Num(goal, "priority", "goal");
            int i = Math.Min(Math.Max(p - 2, 0), ObjectivePriorityByProtocolPriority.Length - 1);
            return ObjectivePriorityByProtocolPriority[i];
        }

        // One tps_goals.json goal -> one ESAPI objective; returns its description, or null (reason in notMapped).
        // The level in cGy, or in Gy when the plan's doses are in Gy (Eclipse's dose unit is a system
        // setting; a DoseValue in the other unit is refused by some ESAPI calls)
        static DoseValue DoseIn(double levelCgy, DoseValue.DoseUnit unit)
        {
            if (unit == DoseValue.DoseUnit.Gy) return new DoseValue(levelCgy / 100.0, DoseValue.DoseUnit.Gy);
            return new DoseValue(levelCgy, DoseValue.DoseUnit.cGy);
        }

        static string AddGoal(OptimizationSetup setup, StructureSet structures, Dictionary<string, object> goal,
                              DoseValue.DoseUnit unit, List<string> notMapped)
        {
            string line = Json.Str(goal, "line_id", "goal");
            string roi = Json.Str(goal, "roi_name", "goal " + line);
            Structure s = FindStructure(structures, roi);
            if (s == null || s.IsEmpty)
            {
                bool generated = goal.ContainsKey("roi_generated") && goal["roi_generated"] is bool && (bool)goal["roi_generated"];
                notMapped.Add(line + ": ROI '" + roi + "' " + (s == null ? "is not in the structure set" : "is empty") +
                              (generated ? " (made by reirrad-opt: import result\\dicom's RTSTRUCT first)" : ""));
                return null;
            }
            string type = Json.Str(goal, "goal_type", "goal " + line);
            bool atMost = Json.Str(goal, "direction", "goal " + line) == "at_most";
            OptimizationObjectiveOperator op = atMost ? OptimizationObjectiveOperator.Upper : OptimizationObjectiveOperator.Lower;
            double levelCgy = Json.Num(goal, "level_cgy", "goal " + line);
            DoseValue dose = DoseIn(levelCgy, unit);
            double priority = PriorityOf(goal);
            double volumePct;
            if (type == "dose_at_absolute_volume")
            {
                // a volume in cc as the point objective's % of the ROI (Structure.Volume is in cc)
                double cc = Json.Num(goal, "volume_cc", "goal " + line);
                volumePct = s.Volume > 0 ? Math.Min(100.0, 100.0 * cc / s.Volume) : 0.0;
            }
            else if (type == "dose_at_volume" || type == "volume_at_dose")
                volumePct = Json.Num(goal, "volume_pct", "goal " + line);
            else if (type == "average_dose")
            {
                if (!atMost)
                {
                    notMapped.Add(line + ": a minimum mean dose has no ESAPI objective (AddMeanDoseObjective is an upper mean)");
                    return null;
                }
                setup.AddMeanDoseObjective(s, dose, priority);
                return "mean dose " + roi + " <= " + Fmt(levelCgy) + " cGy, priority " + Fmt(priority);
            }
            else
            {
                notMapped.Add(line + ": goal type '" + type + "' has no ESAPI objective here");
                return null;
            }
            setup.AddPointObjective(s, op, dose, volumePct, priority);
            return "point " + roi + (atMost ? " upper " : " lower ") + Fmt(levelCgy) + " cGy at " + Fmt(volumePct) +
                   " %, priority " + Fmt(priority) + (priority == ConstraintPriority ? " (priority-1 cap)" : "");
        }

        static string Describe(Dictionary<string, object> goal)
        {
            string type = Json.Str(goal, "goal_type", "goal");
            string metric = type == "dose_at_absolute_volume" ? "D" + Fmt(Json.Num(goal, "volume_cc", "goal")) + "cc"
                          : type == "dose_at_volume" ? "D" + Fmt(Json.Num(goal, "volume_pct", "goal")) + "%"
                          : type == "average_dose" ? "Dmean"
                          : "V" + Fmt(Json.Num(goal, "level_cgy", "goal")) + "cGy";
            string op = Json.Str(goal, "direction", "goal") == "at_most" ? "<=" : ">=";
            string level = type == "volume_at_dose" ? Fmt(Json.Num(goal, "volume_pct", "goal")) + " %"
                                                    : Fmt(Json.Num(goal, "level_cgy", "goal")) + " cGy";
            return Json.Str(goal, "roi_name", "goal") + " " + metric + " " + op + " " + level + " (P" +
                   Fmt(Json.Num(goal, "priority", "goal")) + ", " + Json.Str(goal, "level_basis", "goal") + ")";
        }

        static string Fmt(double x)
        {
            return x.ToString("0.##", CultureInfo.InvariantCulture);
        }
    }

    public class ReirradException : Exception
    {
        public ReirradException(string message) : base(message) { }
    }

    // A small JSON reader (objects, arrays, strings, numbers, true/false/null): the plug-in must
    // not depend on assemblies that Eclipse's script compiler may not reference.
    public static class Json
    {
        public static object Parse(string text)
        {
            int i = 0;
            object value = Value(text, ref i);
            Skip(text, ref i);
            if (i != text.Length) throw Error(text, i, "end of text");
            return value;
        }

        public static Dictionary<string, object> AsObject(object value, string what)
        {
            Dictionary<string, object> d = value as Dictionary<string, object>;
            if (d == null) throw new ReirradException(what + ": expected a JSON object");
            return d;
        }

        public static List<object> AsList(object value, string what)
        {
            List<object> l = value as List<object>;
            if (l == null) throw new ReirradException(what + ": expected a JSON array");
            return l;
        }

        public static string Str(Dictionary<string, object> d, string key, string what)
        {
            object v;
            if (!d.TryGetValue(key, out v) || !(v is string))
                throw new ReirradException(what + ": key '" + key + "' must be a string");
            return (string)v;
        }

        public static double Num(Dictionary<string, object> d, string key, string what)
        {
            object v;
            if (!d.TryGetValue(key, out v) || !(v is double))
                throw new ReirradException(what + ": key '" + key + "' must be a number");
            return (double)v;
        }

        static ReirradException Error(string t, int i, string expected)
        {
            return new ReirradException("JSON: expected " + expected + " at character " + i);
        }

        static void Skip(string t, ref int i)
        {
            while (i < t.Length && char.IsWhiteSpace(t[i])) i++;
        }

        static object Value(string t, ref int i)
        {
            Skip(t, ref i);
            if (i >= t.Length) throw Error(t, i, "a value");
            char c = t[i];
            if (c == '{')
            {
                Dictionary<string, object> d = new Dictionary<string, object>();
                i++;
                Skip(t, ref i);
                if (i < t.Length && t[i] == '}') { i++; return d; }
                while (true)
                {
                    Skip(t, ref i);
                    string key = Text(t, ref i);
                    Skip(t, ref i);
                    if (i >= t.Length || t[i] != ':') throw Error(t, i, "':'");
                    i++;
                    d[key] = Value(t, ref i);
                    Skip(t, ref i);
                    if (i < t.Length && t[i] == ',') { i++; continue; }
                    if (i < t.Length && t[i] == '}') { i++; return d; }
                    throw Error(t, i, "',' or '}'");
                }
            }
            if (c == '[')
            {
                List<object> l = new List<object>();
                i++;
                Skip(t, ref i);
                if (i < t.Length && t[i] == ']') { i++; return l; }
                while (true)
                {
                    l.Add(Value(t, ref i));
                    Skip(t, ref i);
                    if (i < t.Length && t[i] == ',') { i++; continue; }
                    if (i < t.Length && t[i] == ']') { i++; return l; }
                    throw Error(t, i, "',' or ']'");
                }
            }
            if (c == '"') return Text(t, ref i);
            if (Word(t, ref i, "true")) return true;
            if (Word(t, ref i, "false")) return false;
            if (Word(t, ref i, "null")) return null;
            int start = i;
            while (i < t.Length && "+-0123456789.eE".IndexOf(t[i]) >= 0) i++;
            double number;
            if (i == start || !double.TryParse(t.Substring(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out number))
                throw Error(t, start, "a value");
            return number;
        }

        static bool Word(string t, ref int i, string w)
        {
            if (string.CompareOrdinal(t, i, w, 0, w.Length) != 0) return false;
            i += w.Length;
            return true;
        }

        static string Text(string t, ref int i)
        {
            if (i >= t.Length || t[i] != '"') throw Error(t, i, "a string");
            StringBuilder sb = new StringBuilder();
            i++;
            while (i < t.Length && t[i] != '"')
            {
                char c = t[i++];
                if (c != '\\') { sb.Append(c); continue; }
                if (i >= t.Length) break;
                char e = t[i++];
                if (e == 'n') sb.Append('\n');
                else if (e == 't') sb.Append('\t');
                else if (e == 'r') sb.Append('\r');
                else if (e == 'b') sb.Append('\b');
                else if (e == 'f') sb.Append('\f');
                else if (e == 'u' && i + 4 <= t.Length)
                {
                    sb.Append((char)Convert.ToInt32(t.Substring(i, 4), 16));
                    i += 4;
                }
                else sb.Append(e);
            }
            if (i >= t.Length) throw Error(t, i, "'\"'");
            i++;
            return sb.ToString();
        }
    }
}
