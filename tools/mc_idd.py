"""Monte Carlo integrated depth doses (IDD) of mono-energetic proton pencil beams in water, with
MCsquare (the Monte Carlo engine shipped in the ``opentps-core`` wheel).

The engine is not a dependency of the project: install it into a separate environment, e.g.

    python3.12 -m venv /work/venv-mc                 # opentps-core 3.0.1 needs Python >= 3.12
    /work/venv-mc/bin/pip install --no-deps opentps-core==3.0.1

and point ``--mcsquare`` at that Python (or at the folder holding ``MCsquare_linux*`` and
``Materials/``). Only the binary and its material data are used, not the opentps Python code.

Set-up of every run (recorded in the output header):

* phantom: a water box, 305 x 305 mm laterally (5 mm voxels), 0.5 mm voxels along the beam, deep
  enough for the range plus 30 mm; every CT number maps to MCsquare's material 17 "Water"
  (density 1.0 g/cm^3, H 11.19 % / O 88.81 % by mass, X0 = 36.08 g/cm^2);
* water stopping power: ``--water-stopping pstar`` (default) replaces the Geant4 table of that
  material (``G4_Stop_Pow.dat``, I = 78 eV, what MCsquare reads) by the ICRU 49 / PSTAR table
  shipped beside it (``PSTAR_Stop_Pow.dat``, I = 75 eV), the I-value the project's range-energy
  relation uses; ``g4`` keeps MCsquare's default;
* beam: one spot on the central axis starting at the phantom surface, no energy spread, sigma 3 mm,
  1 mrad divergence (the IDD does not depend on them in a 305 mm wide box);
* physics: MCsquare defaults (nuclear interactions on, secondary protons transported, secondary
  deuterons and alphas deposited locally; neutrons and prompt gammas leave the phantom);
  E_Cut_Pro 0.5 MeV, D_Max 0.2 cm, Epsilon_Max 0.25, Te_Min 0.05 MeV;
* statistics: ``--batches`` independent single-thread runs (seeds ``--seed`` + k) of
  ``--primaries / --batches`` protons each; the IDD is their mean and its uncertainty the standard
  error of the batch means (per bin).

The IDD is the dose laterally integrated over the box, in MeV cm^2/g per primary proton, in
0.5 mm depth bins (bin centres in the output). Output: a CSV file with a ``#`` provenance header
and rows ``energy_mev, depth_mm, idd_mev_cm2_g, rel_unc`` (rel_unc: standard error / value).

The commands that wrote the shipped files (their headers repeat them):

    python3 tools/mc_idd.py --mcsquare /work/venv-mc/bin/python --energies 32 48 64 85 115 \\
        135 165 185 215 245 --primaries 2000000 --batches 10 --seed 1000 \\
        --out reirrad_opt/dose/data/proton_idd_mcsquare.csv
    python3 tools/mc_idd.py --mcsquare /work/venv-mc/bin/python --energies 70 100 150 200 230 \\
        --primaries 2000000 --batches 10 --seed 5000 --out tests/data/proton_idd_mcsquare_ref.csv
    python3 tools/mc_idd.py --mcsquare /work/venv-mc/bin/python --energies 150 --primaries 1000000 \\
        --batches 10 --seed 7000 --energy-spread-percent 1.0 \\
        --out tests/data/proton_idd_mcsquare_spread1pct_ref.csv
    python3 tools/mc_idd.py --mcsquare /work/venv-mc/bin/python --energies 100 150 200 \\
        --primaries 1000000 --batches 10 --seed 9000 --lateral --out tests/data/proton_lateral_mcsquare_ref.csv

On the 2-core machine, shared with other work, these took about 57 / 40 / 9 / 10 minutes
(single-thread runs, ``nice -n 19``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

@dataclass(frozen=True)
class Geometry:
    """Water box: ``nx`` x ``nz`` lateral voxels of ``dx``, ``dz`` mm, depth bins of ``dy`` mm;
    the spot's in-air sigma (mm) at the surface."""

    nx: int
    dx: float
    nz: int
    dz: float
    dy: float
    spot_sigma_mm: float


IDD_GEOMETRY = Geometry(61, 5.0, 61, 5.0, 0.5, 3.0)          # 305 x 305 mm, 0.5 mm depth bins
LATERAL_GEOMETRY = Geometry(241, 0.5, 1, 400.0, 2.0, 0.05)   # profiles across x at 0.5 mm, all z summed
WATER_LABEL = 17
NOZZLE_MM = 1.0           # nozzle exit to isocentre (mm): the spot starts at the phantom face
WHEEL_MCSQUARE = "opentps/core/processing/doseCalculation/protons/MCsquare"


def locate_mcsquare(arg: str) -> tuple[Path, str]:
    """The MCsquare folder (binaries and Materials/) and a version text, from a folder or from the
    Python of an environment where ``opentps-core`` is installed."""
    p = Path(arg)
    if p.is_dir() and (p / "Materials").is_dir():
        return p, "MCsquare folder " + str(p)
    code = ("import importlib.metadata as m, importlib.util as u; "
            "s = u.find_spec('opentps'); print(list(s.submodule_search_locations)[0]); "
            "print(m.version('opentps-core'))")
    out = subprocess.run([str(p), "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"--mcsquare {arg}: neither an MCsquare folder nor a Python with opentps-core "
                         f"installed ({out.stderr.strip()[-300:]})")
    root, version = out.stdout.split()
    folder = Path(root).parent / WHEEL_MCSQUARE
    if not folder.is_dir():
        raise SystemExit(f"--mcsquare {arg}: {folder} not found in opentps-core {version}")
    return folder, f"opentps-core {version}"


def mcsquare_binary(folder: Path) -> Path:
    """The binary the wheel's own launcher script would pick on this CPU."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "AuthenticAMD" in info:
        name = "MCsquare_linux"
    else:
        name = next((f"MCsquare_linux_{f}" for f in ("avx512", "avx2", "avx", "sse4") if f in info), "MCsquare_linux")
    return folder / name


def materials_dir(folder: Path, work: Path, water_stopping: str) -> Path:
    """A copy of MCsquare's material folder (links), water's stopping-power table per the choice."""
    dst = work / "Materials"
    dst.mkdir()
    for item in (folder / "Materials").iterdir():
        if item.name != "Water":
            os.symlink(item.resolve(), dst / item.name)
    water = dst / "Water"
    water.mkdir()
    for f in ("Material_Properties.dat", "PSTAR_Stop_Pow.dat", "G4_Stop_Pow.dat"):
        shutil.copyfile(folder / "Materials" / "Water" / f, water / f)
    if water_stopping == "pstar":
        shutil.copyfile(water / "PSTAR_Stop_Pow.dat", water / "G4_Stop_Pow.dat")
    return dst


def write_phantom(work: Path, depth_n: int, geo: Geometry) -> None:
    """CT.mhd (HU 0) of nx x depth_n x nz voxels and a scanner mapping every CT number to water of
    density 1.0."""
    shape = (geo.nz, depth_n, geo.nx)                              # (z, y, x), x fastest in the file
    np.zeros(shape, dtype="<f4").tofile(work / "CT.raw")
    (work / "CT.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = {} {} {}\nElementSpacing = {} {} {}\nOffset = 0 0 0\n"
        "BinaryData = True\nCompressedData = False\nElementByteOrderMSB = False\nElementType = MET_FLOAT\n"
        "ElementDataFile = CT.raw\n".format(geo.nx, depth_n, geo.nz, geo.dx, geo.dy, geo.dz))
    (work / "HU_Density_Conversion.txt").write_text("-5000 1.0\n5000 1.0\n")
    (work / "HU_Material_Conversion.txt").write_text(f"-5000 {WATER_LABEL}\n")


def write_beam(work: Path, energy_mev: float, depth_n: int, geo: Geometry, spread_percent: float = 0.0) -> None:
    """BDL and plan of one mono-energetic spot (1 proton per MU) on the central axis, starting
    1 um inside the phantom's y = max face (MCsquare's gantry-0 beam runs towards -y): no air gap
    (MCsquare would take an air energy loss over it).

    MCsquare's UPenn model interpolates between two table rows and samples each plane's phase
    space by diagonalising its emittance matrix, which needs a non-zero divergence and
    correlation; 1 mrad and 0.1 leave the IDD unchanged in a 305 mm wide box (spot sigma: ``geo``)."""
    def row(e: float) -> str:
        g = [geo.spot_sigma_mm, 0.001, 0.1, geo.spot_sigma_mm, 0.001, 0.1]
        return " ".join(f"{c:.6f}" for c in [e, e, spread_percent, 1.0, 1.0, *g, 0.0, *g])
    (work / "BDL.txt").write_text(
        "--UPenn beam model (double gaussian)--\n# mono-energetic pencil beam\n\n"
        f"Nozzle exit to Isocenter distance\n{NOZZLE_MM}\n\nSMX to Isocenter distance\n2000.0\n\n"
        "SMY to Isocenter distance\n2000.0\n\nBeam parameters\n2 energies\n\n"
        "NominalEnergy MeanEnergy EnergySpread ProtonsMU Weight1 SpotSize1x Divergence1x Correlation1x "
        "SpotSize1y Divergence1y Correlation1y Weight2 SpotSize2x Divergence2x Correlation2x SpotSize2y "
        f"Divergence2y Correlation2y\n{row(energy_mev)}\n{row(energy_mev + 1.0)}\n")
    iso = (geo.nx * geo.dx / 2.0, depth_n * geo.dy - NOZZLE_MM - 0.001, geo.nz * geo.dz / 2.0)
    (work / "Plan.txt").write_text(
        "#TREATMENT-PLAN-DESCRIPTION\n#PlanName\nIDD\n#NumberOfFractions\n1\n##FractionID\n1\n"
        "##NumberOfFields\n1\n###FieldsID\n1\n#TotalMetersetWeightOfAllFields\n1.0\n\n"
        "#FIELD-DESCRIPTION\n###FieldID\n1\n###FinalCumulativeMeterSetWeight\n1.0\n###GantryAngle\n0.0\n"
        "###PatientSupportAngle\n0.0\n###IsocenterPosition\n{:.4f}\t{:.4f}\t{:.4f}\n"
        "###NumberOfControlPoints\n1\n\n#SPOTS-DESCRIPTION\n####ControlPointIndex\n1\n####SpotTunnedID\n1\n"
        "####CumulativeMetersetWeight\n1.0\n####Energy (MeV)\n{:.4f}\n####NbOfScannedSpots\n1\n"
        "####X Y Weight\n0.0 0.0 1.0\n".format(*iso, energy_mev))


CONFIG_KEYS = {
    "Num_Threads": "1", "E_Cut_Pro": "0.5", "D_Max": "0.2", "Epsilon_Max": "0.25", "Te_Min": "0.05",
    "CT_File": "CT.mhd", "HU_Density_Conversion_File": "HU_Density_Conversion.txt",
    "HU_Material_Conversion_File": "HU_Material_Conversion.txt", "BDL_Machine_Parameter_File": "BDL.txt",
    "BDL_Plan_File": "Plan.txt", "Simulate_Nuclear_Interactions": "True", "Simulate_Secondary_Protons": "True",
    "Simulate_Secondary_Deuterons": "True", "Simulate_Secondary_Alphas": "True",
    "Compute_stat_uncertainty": "False", "Output_Directory": "Outputs", "Dose_MHD_Output": "True",
    "Energy_MHD_Output": "False", "Dose_to_Water_conversion": "Disabled",
}


def run_batch(binary: Path, mats: Path, work: Path, primaries: int, seed: int) -> np.ndarray:
    """One MCsquare run; the dose grid (z, y, x) in MCsquare's unit (see :func:`idd_from_dose`)."""
    keys = dict(CONFIG_KEYS, RNG_Seed=str(seed), Num_Primaries=str(int(primaries)))
    (work / "config.txt").write_text("".join(f"{k} {v}\n" for k, v in keys.items()))
    out_dir = work / "Outputs"
    shutil.rmtree(out_dir, ignore_errors=True)
    env = dict(os.environ, MCsquare_Materials_Dir=str(mats))
    res = subprocess.run([str(binary), "config.txt"], cwd=work, env=env, capture_output=True, text=True)
    if res.returncode != 0 or not (out_dir / "Dose.mhd").is_file():
        raise SystemExit(f"MCsquare failed (exit {res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    (work / "mcsquare.log").write_text(res.stdout)
    if "generated outside the geometry" in res.stdout:
        raise SystemExit("MCsquare started protons outside the phantom:\n" + res.stdout[-1000:])
    header = dict(line.split(" = ", 1) for line in (out_dir / "Dose.mhd").read_text().splitlines() if " = " in line)
    nx, ny, nz = (int(v) for v in header["DimSize"].split())
    raw = out_dir / header["ElementDataFile"].strip()
    return np.fromfile(raw, dtype="<f4").reshape(nz, ny, nx).astype(np.float64)


def idd_from_dose(dose: np.ndarray, geo: Geometry) -> np.ndarray:
    """Laterally integrated dose (MeV cm^2/g per primary) per depth bin, from the entrance face.

    MCsquare's dose unit is 1e-6 MeV/g per delivered proton (opentps multiplies it by the number
    of protons and 1.602176e-16 to get Gy); the beam enters at the y = max face (gantry 0)."""
    area_cm2 = geo.dx * geo.dz / 100.0
    return dose.sum(axis=(0, 2))[::-1] * 1e-6 * area_cm2


def lateral_sigma(dose: np.ndarray, geo: Geometry) -> np.ndarray:
    """Per depth bin (from the entrance), the sigma (mm) of the Gaussian fitted to the projected
    lateral profile where it exceeds 10 % of its maximum (the core, without the nuclear halo)."""
    x = (np.arange(geo.nx) + 0.5) * geo.dx - geo.nx * geo.dx / 2.0
    prof = dose.sum(axis=0)[::-1]                                   # (depth, x)
    out = np.full(prof.shape[0], np.nan)
    for k, p in enumerate(prof):
        if p.max() <= 0:
            continue
        core = p > 0.1 * p.max()
        if core.sum() < 5:
            continue
        # log of a Gaussian is a parabola in x: weighted least squares on the core
        c2, c1, _ = np.polyfit(x[core], np.log(p[core]), 2, w=np.sqrt(p[core]))
        if c2 < 0:
            out[k] = float(np.sqrt(-0.5 / c2))
    return out


def simulate(binary: Path, mats: Path, energy_mev: float, primaries: int, batches: int, seed: int, csda_mm: float,
             geo: Geometry, score, spread_percent: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth bin centres (mm), the mean of ``score(dose, geo)`` over the batches and its standard
    error (relative for the IDD, in mm for the lateral sigma)."""
    depth_n = int(np.ceil((csda_mm + 30.0) / geo.dy))
    runs = []
    with tempfile.TemporaryDirectory(prefix="mc_idd_") as tmp:
        work = Path(tmp)
        write_phantom(work, depth_n, geo)
        write_beam(work, energy_mev, depth_n, geo, spread_percent)
        for k in range(batches):
            runs.append(score(run_batch(binary, mats, work, primaries // batches, seed + k), geo))
            print(f"  {energy_mev:g} MeV batch {k + 1}/{batches}", file=sys.stderr, flush=True)
    runs = np.array(runs)
    mean = runs.mean(axis=0)
    sem = runs.std(axis=0, ddof=1) / np.sqrt(batches)
    if score is idd_from_dose:
        sem = np.divide(sem, mean, out=np.zeros_like(mean), where=mean > 0)
    depth = (np.arange(mean.size) + 0.5) * geo.dy
    return depth, mean, sem


def _csda_mm(energy_mev: float) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from reirrad_opt.dose.particle import csda_range_mm
    return float(csda_range_mm(energy_mev))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mcsquare", required=True, help="MCsquare folder, or a Python with opentps-core installed")
    ap.add_argument("--energies", type=float, nargs="+", required=True, help="proton energies (MeV)")
    ap.add_argument("--primaries", type=int, default=1_000_000, help="protons per energy (all batches)")
    ap.add_argument("--batches", type=int, default=10, help="independent runs per energy (>= 2)")
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first batch of each energy")
    ap.add_argument("--water-stopping", choices=("pstar", "g4"), default="pstar")
    ap.add_argument("--energy-spread-percent", type=float, default=0.0,
                    help="1-sigma energy spread of the beam, %% of the energy (MCsquare's Gaussian; default 0)")
    ap.add_argument("--lateral", action="store_true",
                    help="score the lateral spread instead: sigma of the Gaussian core of the projected profile "
                         "per 2 mm depth bin (0.5 mm lateral bins, a 0.05 mm pencil)")
    ap.add_argument("--out", required=True, type=Path, help="CSV file to write")
    args = ap.parse_args(argv)
    if args.batches < 2:
        ap.error("--batches must be >= 2 (the uncertainty is the spread of the batches)")
    geo, score = (LATERAL_GEOMETRY, lateral_sigma) if args.lateral else (IDD_GEOMETRY, idd_from_dose)
    folder, version = locate_mcsquare(args.mcsquare)
    binary = mcsquare_binary(folder)
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:16]
    rows, unc_text = [], []
    with tempfile.TemporaryDirectory(prefix="mc_mat_") as tmp:
        mats = materials_dir(folder, Path(tmp), args.water_stopping)
        runnable = Path(tmp) / binary.name          # wheels do not keep the executable bit
        shutil.copyfile(binary, runnable)
        runnable.chmod(0o755)
        for e in args.energies:
            csda = _csda_mm(e)
            depth, val, unc = simulate(runnable, mats, e, args.primaries, args.batches, args.seed, csda, geo, score,
                                       args.energy_spread_percent)
            if args.lateral:
                keep = np.isfinite(val) & (depth < csda)
                unc_text.append(f"{e:g} MeV {np.nanmax(unc[keep]):.3f} mm")
            else:
                keep = np.arange(val.size) <= int(np.flatnonzero(val > 1e-6 * val.max())[-1]) + 1
                unc_text.append(f"{e:g} MeV {100 * unc[val >= 0.5 * val.max()].max():.2f} %")
            rows += [(e, d, v, r) for d, v, r in zip(depth[keep], val[keep], unc[keep])]
    water = {"pstar": "MCsquare material 17 Water with its stopping-power table replaced by the PSTAR table "
                      "shipped beside it (ICRU 49, I = 75 eV)",
             "g4": "MCsquare material 17 Water as shipped (Geant4 G4_WATER stopping powers, I = 78 eV)"}
    what = ("Lateral spread (sigma of the Gaussian core, 10 % of the maximum and above, of the projected "
            "profile) of mono-energetic proton pencil beams in water (Monte Carlo)" if args.lateral else
            "Integrated depth dose of mono-energetic proton pencil beams in water (Monte Carlo)")
    columns = ("energy_mev, depth_mm (bin centre), sigma_mm, sigma_unc_mm (standard error)" if args.lateral else
               "energy_mev, depth_mm (bin centre), idd_mev_cm2_g (per primary), rel_unc (standard error/value)")
    header = [
        what,
        f"code: MCsquare from {version}, binary {binary.name} sha256 {digest}",
        f"material: {water[args.water_stopping]}; density 1.0 g/cm3",
        f"primaries: {args.primaries} per energy in {args.batches} single-thread batches, seeds "
        f"{args.seed}..{args.seed + args.batches - 1}",
        "physics: MCsquare defaults (nuclear interactions, secondary protons transported, secondary deuterons/"
        "alphas local, neutrons and gammas escape); E_Cut_Pro 0.5 MeV, D_Max 0.2 cm, Epsilon_Max 0.25",
        f"geometry: {geo.nx * geo.dx:g} x {geo.nz * geo.dz:g} mm water box ({geo.dx:g} x {geo.dz:g} mm lateral "
        f"voxels), depth bins {geo.dy:g} mm; one spot at the surface, sigma {geo.spot_sigma_mm:g} mm, 1 mrad, "
        + (f"energy spread {args.energy_spread_percent:g} % (1 sigma, Gaussian)" if args.energy_spread_percent
           else "no energy spread"),
        ("statistical uncertainty (max standard error of sigma before the range): " if args.lateral else
         "statistical uncertainty (max rel. standard error where IDD >= 50 % of its peak): ") + "; ".join(unc_text),
        f"date: {dt.date.today().isoformat()}",
        "command: python3 tools/mc_idd.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "columns: " + columns,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    with open(tmp_out, "w") as fh:
        fh.write("".join(f"# {h}\n" for h in header))
        fh.write(("energy_mev,depth_mm,sigma_mm,sigma_unc_mm" if args.lateral else
                  "energy_mev,depth_mm,idd_mev_cm2_g,rel_unc") + "\n")
        for e, d, v, r in rows:
            fh.write(f"{e:g},{d:.2f},{v:.6g},{r:.2g}\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
