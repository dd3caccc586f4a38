// Stub of ESAPI's VMS.TPS.Common.Model.API assembly: only the members the reirrad-opt plug-in uses,
// with the signatures of ESAPI 15.6-18 (sources in docs/tps-exchange.md, "Eclipse: ESAPI
// signatures"). Every OptimizationSetup call is recorded in OptimizationSetup.Calls so a test can
// compare what the plug-in asked for with tps_goals.json. Test double, not Varian's code.
using System;
using System.Collections.Generic;
using System.Globalization;
using VMS.TPS.Common.Model.Types;

namespace VMS.TPS.Common.Model.API
{
    [AttributeUsage(AttributeTargets.Assembly)]
    public class ESAPIScriptAttribute : Attribute
    {
        public bool IsWriteable { get; set; }
    }

    public class ApiDataObject
    {
        public string Id { get; set; }
    }

    public class Patient : ApiDataObject
    {
        public bool ModificationsBegun { get; private set; }
        public void BeginModifications() { ModificationsBegun = true; }
    }

    public class Structure : ApiDataObject
    {
        public string DicomType { get; set; }
        public bool IsEmpty { get; set; }
        public double Volume { get; set; }   // cc
    }

    public class StructureSet : ApiDataObject
    {
        public IEnumerable<Structure> Structures { get; set; }
    }

    public class OptimizationObjective
    {
        public Structure Structure { get; set; }
        public double Priority { get; set; }
    }

    public class OptimizationPointObjective : OptimizationObjective
    {
        public DoseValue Dose { get; set; }
        public double Volume { get; set; }
        public OptimizationObjectiveOperator Operator { get; set; }
    }

    public class OptimizationMeanDoseObjective : OptimizationObjective
    {
        public DoseValue Dose { get; set; }
    }

    public class OptimizationParameter { }

    public class OptimizationNormalTissueParameter : OptimizationParameter
    {
        public double Priority { get; set; }
        public double DistanceFromTargetBorderInMM { get; set; }
        public double StartDosePercentage { get; set; }
        public double EndDosePercentage { get; set; }
        public double FallOff { get; set; }
    }

    public class OptimizationSetup
    {
        public static readonly List<string> Calls = new List<string>();
        private readonly List<OptimizationObjective> _objectives = new List<OptimizationObjective>();
        private readonly List<OptimizationParameter> _parameters = new List<OptimizationParameter>();

        public IEnumerable<OptimizationObjective> Objectives { get { return _objectives; } }
        public IEnumerable<OptimizationParameter> Parameters { get { return _parameters; } }

        static string N(double x) { return x.ToString("R", CultureInfo.InvariantCulture); }

        public OptimizationPointObjective AddPointObjective(Structure structure, OptimizationObjectiveOperator objectiveOperator,
                                                            DoseValue dose, double volume, double priority)
        {
            Calls.Add("{\"call\": \"AddPointObjective\", \"structure\": \"" + structure.Id + "\", \"operator\": \"" +
                      objectiveOperator + "\", \"dose\": " + N(dose.Dose) + ", \"unit\": \"" + dose.UnitAsString +
                      "\", \"volume\": " + N(volume) + ", \"priority\": " + N(priority) + "}");
            OptimizationPointObjective o = new OptimizationPointObjective();
            o.Structure = structure; o.Operator = objectiveOperator; o.Dose = dose; o.Volume = volume; o.Priority = priority;
            _objectives.Add(o);
            return o;
        }

        public OptimizationMeanDoseObjective AddMeanDoseObjective(Structure structure, DoseValue dose, double priority)
        {
            Calls.Add("{\"call\": \"AddMeanDoseObjective\", \"structure\": \"" + structure.Id + "\", \"dose\": " +
                      N(dose.Dose) + ", \"unit\": \"" + dose.UnitAsString + "\", \"priority\": " + N(priority) + "}");
            OptimizationMeanDoseObjective o = new OptimizationMeanDoseObjective();
            o.Structure = structure; o.Dose = dose; o.Priority = priority;
            _objectives.Add(o);
            return o;
        }

        public OptimizationNormalTissueParameter AddNormalTissueObjective(double priority, double distanceFromTargetBorderInMM,
                                                                          double startDosePercentage, double endDosePercentage,
                                                                          double fallOff)
        {
            Calls.Add("{\"call\": \"AddNormalTissueObjective\", \"priority\": " + N(priority) + ", \"distance_mm\": " +
                      N(distanceFromTargetBorderInMM) + ", \"start_pct\": " + N(startDosePercentage) + ", \"end_pct\": " +
                      N(endDosePercentage) + ", \"fall_off\": " + N(fallOff) + "}");
            OptimizationNormalTissueParameter p = new OptimizationNormalTissueParameter();
            p.Priority = priority; p.DistanceFromTargetBorderInMM = distanceFromTargetBorderInMM;
            p.StartDosePercentage = startDosePercentage; p.EndDosePercentage = endDosePercentage; p.FallOff = fallOff;
            _parameters.Add(p);
            return p;
        }

        public void RemoveObjective(OptimizationObjective objective)
        {
            Calls.Add("{\"call\": \"RemoveObjective\"}");
            _objectives.Remove(objective);
        }
    }

    public class PlanningItem : ApiDataObject
    {
        public StructureSet StructureSet { get; set; }
    }

    public class PlanSetup : PlanningItem
    {
        public OptimizationSetup OptimizationSetup { get; set; }
        public DoseValue TotalDose { get; set; }
        public int? NumberOfFractions { get; set; }
    }

    public class ExternalPlanSetup : PlanSetup { }

    public class IonPlanSetup : PlanSetup { }

    public class ScriptContext
    {
        public Patient Patient { get; set; }
        public StructureSet StructureSet { get; set; }
        public PlanSetup PlanSetup { get; set; }
        public ExternalPlanSetup ExternalPlanSetup { get; set; }
        public IonPlanSetup IonPlanSetup { get; set; }
    }
}
