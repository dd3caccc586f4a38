// Runs the plug-in's Script.Execute on a fake ScriptContext and prints every recorded ESAPI call
// (one JSON object a line), then the message shown to the user after a line "---MESSAGE---".
// Usage: mono Harness.exe STRUCTURE_ID=VOLUME_CC ... [ion] [gy]  (gy: the plan's doses are in Gy)
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Windows;
using VMS.TPS.Common.Model.API;

public static class Harness
{
    public static int Main(string[] args)
    {
        List<Structure> structures = new List<Structure>();
        bool ion = false, gy = false;
        foreach (string a in args)
        {
            if (a == "ion") { ion = true; continue; }
            if (a == "gy") { gy = true; continue; }
            string[] kv = a.Split('=');
            Structure s = new Structure();
            s.Id = kv[0];
            s.Volume = double.Parse(kv[1], CultureInfo.InvariantCulture);
            s.IsEmpty = s.Volume <= 0;
            structures.Add(s);
        }
        StructureSet ss = new StructureSet();
        ss.Id = "RS"; ss.Structures = structures;
        PlanSetup plan = ion ? (PlanSetup)new IonPlanSetup() : new ExternalPlanSetup();
        plan.Id = "ReIrr1"; plan.StructureSet = ss; plan.OptimizationSetup = new OptimizationSetup();
        plan.TotalDose = gy ? new VMS.TPS.Common.Model.Types.DoseValue(60.0, "Gy")
                            : new VMS.TPS.Common.Model.Types.DoseValue(6000.0, "cGy");
        ScriptContext ctx = new ScriptContext();
        ctx.Patient = new Patient(); ctx.PlanSetup = plan; ctx.StructureSet = ss;
        new VMS.TPS.Script().Execute(ctx);
        foreach (string c in OptimizationSetup.Calls) Console.WriteLine(c);
        Console.WriteLine("---MESSAGE---");
        foreach (string m in MessageBox.Shown) Console.WriteLine(m);
        return ctx.Patient.ModificationsBegun || OptimizationSetup.Calls.Count == 0 ? 0 : 3;
    }
}
