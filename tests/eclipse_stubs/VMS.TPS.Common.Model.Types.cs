// Stub of ESAPI's VMS.TPS.Common.Model.Types assembly: only the types the reirrad-opt plug-in uses,
// with the documented signatures (sources in docs/tps-exchange.md, "Eclipse: ESAPI signatures").
// Test double: compiles the emitted plug-in; it is not Varian's code.
namespace VMS.TPS.Common.Model.Types
{
    // ESAPI DoseValue: a struct with constructors (double, DoseUnit) and (double, string unitName);
    // read-only Dose and Unit; DoseUnit { Unknown, Gy, cGy, Percent }. Source: ESAPIX's facade of it
    // (rexcardan/ESAPIX, ESAPIX.Facade.Types.DoseValue).
    public struct DoseValue
    {
        public enum DoseUnit { Unknown, Gy, cGy, Percent }

        private readonly double _dose;
        private readonly DoseUnit _unit;

        public DoseValue(double value, DoseUnit unit)
        {
            _dose = value;
            _unit = unit;
        }

        public DoseValue(double value, string unitName)
        {
            _dose = value;
            _unit = unitName == "cGy" ? DoseUnit.cGy : unitName == "Gy" ? DoseUnit.Gy
                  : unitName == "%" ? DoseUnit.Percent : DoseUnit.Unknown;
        }

        public double Dose { get { return _dose; } }
        public DoseUnit Unit { get { return _unit; } }
        public string UnitAsString { get { return _unit == DoseUnit.Percent ? "%" : _unit.ToString(); } }
    }

    // ESAPI OptimizationObjectiveOperator: Upper (0), Lower (1), Exact (2), None (99).
    public enum OptimizationObjectiveOperator { Upper = 0, Lower = 1, Exact = 2, None = 99 }
}
