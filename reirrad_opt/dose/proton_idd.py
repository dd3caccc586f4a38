"""Proton integrated depth doses (IDD) in water from a Monte Carlo table, interpolated in range.

The table (``data/proton_idd_mcsquare.csv``, written by ``tools/mc_idd.py``; its header states
the code, material, primaries and uncertainty) holds the laterally integrated dose per primary
proton (MeV cm^2/g) of mono-energetic pencil beams in water at a set of node energies, in
0.5 mm depth bins. For an energy E between two nodes:

1. each node curve is expressed in reduced depth ``t = z / R80_node`` and scaled to
   ``f(t) = IDD(t R80_node) (R80_node / 10 mm) / E_node`` (dimensionless; its integral over t is
   the fraction of the beam energy deposited in the water);
2. ``f`` is interpolated linearly in energy between the two nodes;
3. ``R80(E) = R0(E) (R80/R0)`` with ``R0`` the project's CSDA range (Bethe, I = 75 eV; see
   :mod:`.particle`) and the ratio ``R80/R0`` of the nodes interpolated linearly in energy;
4. ``IDD(z) = f(z / R80(E)) E / (R80(E) / 10 mm)``.

So the range comes from the range-energy relation (which matches PSTAR) and the shape, the
entrance dose, the nuclear build-up and the energy balance from the Monte Carlo. Outside the
nodes' energies the nearest node's shape is used (its relative peak width and nuclear losses).
The curves are bin averages over 0.5 mm: at the lowest nodes (range straggling sigma of
0.2-0.3 mm) the peak is slightly wider than a point-wise curve.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "proton_idd_mcsquare.csv"
T_MAX = 1.6            # reduced depth covered by the interpolation table (z / R80)
T_STEP = 2e-4


@dataclass(frozen=True)
class IddCurves:
    """Monte Carlo depth doses as read from a table file.

    Attributes:
        energies_mev: node energies (MeV), increasing.
        depth_mm: per node, depth bin centres (mm).
        idd: per node, laterally integrated dose per primary (MeV cm^2/g).
        rel_unc: per node, relative statistical uncertainty of each bin.
        header: the provenance lines of the file.
    """

    energies_mev: tuple[float, ...]
    depth_mm: tuple[np.ndarray, ...]
    idd: tuple[np.ndarray, ...]
    rel_unc: tuple[np.ndarray, ...]
    header: tuple[str, ...]

    def curve(self, energy_mev: float) -> tuple[np.ndarray, np.ndarray]:
        """Depths (mm) and IDD (MeV cm^2/g) of the node at ``energy_mev`` (KeyError if absent)."""
        for e, d, v in zip(self.energies_mev, self.depth_mm, self.idd):
            if abs(e - energy_mev) < 1e-6:
                return d, v
        raise KeyError(f"no Monte Carlo curve at {energy_mev:g} MeV; the table has {list(self.energies_mev)}")


def read_idd_csv(path: str | Path) -> IddCurves:
    """Read a table written by ``tools/mc_idd.py`` (``#`` header, then
    ``energy_mev,depth_mm,idd_mev_cm2_g,rel_unc`` rows grouped by energy)."""
    path = Path(path)
    header = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            header.append(line[1:].strip())
    try:
        rows = np.loadtxt(path, delimiter=",", skiprows=len(header) + 1, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a depth-dose table ({exc})") from None
    if rows.shape[1] != 4 or rows.shape[0] == 0:
        raise ValueError(f"{path}: expected rows of energy_mev,depth_mm,idd_mev_cm2_g,rel_unc")
    energies = sorted(set(rows[:, 0].tolist()))
    depth, idd, unc = [], [], []
    for e in energies:
        sel = rows[rows[:, 0] == e]
        order = np.argsort(sel[:, 1])
        depth.append(sel[order, 1])
        idd.append(sel[order, 2])
        unc.append(sel[order, 3])
    return IddCurves(tuple(energies), tuple(depth), tuple(idd), tuple(unc), tuple(header))


def r80_of(depth_mm: np.ndarray, idd: np.ndarray) -> float:
    """Distal depth (mm) at 80 % of the maximum (linear interpolation)."""
    k = int(np.argmax(idd))
    target = 0.8 * idd[k]
    j = k + int(np.flatnonzero(idd[k:] < target)[0])
    return float(np.interp(target, [idd[j], idd[j - 1]], [depth_mm[j], depth_mm[j - 1]]))


@dataclass(frozen=True)
class IddTable:
    """Node curves on a common reduced-depth grid (see the module docstring).

    Attributes:
        energies_mev: node energies (MeV).
        r80_mm: R80 of each node curve (mm).
        r80_over_csda: R80 / CSDA range of each node.
        t: reduced depth grid (z / R80).
        f: (nodes, t) reduced curves.
        source: the table file.
    """

    energies_mev: np.ndarray
    r80_mm: np.ndarray
    r80_over_csda: np.ndarray
    t: np.ndarray
    f: np.ndarray
    source: str

    def r80_mm_at(self, energy_mev: float) -> float:
        """R80 (mm) of the curve at ``energy_mev``: CSDA range times the interpolated R80/R0."""
        from .particle import csda_range_mm
        ratio = float(np.interp(energy_mev, self.energies_mev, self.r80_over_csda))
        return float(csda_range_mm(energy_mev)) * ratio

    def idd(self, depth_mm, energy_mev: float) -> np.ndarray:
        """Laterally integrated dose per primary proton (MeV cm^2/g) at water depths (mm)."""
        e = float(energy_mev)
        if not e > 0:
            raise ValueError(f"proton energy must be > 0 MeV, got {energy_mev!r}")
        nodes = self.energies_mev
        k = int(np.clip(np.searchsorted(nodes, e) - 1, 0, nodes.size - 2))
        w = float(np.clip((e - nodes[k]) / (nodes[k + 1] - nodes[k]), 0.0, 1.0))
        f = (1.0 - w) * self.f[k] + w * self.f[k + 1]
        r80 = self.r80_mm_at(e)
        z = np.asarray(depth_mm, dtype=np.float64)
        return np.interp(z / r80, self.t, f, left=f[0], right=0.0) * e / (r80 / 10.0)


def build_table(curves: IddCurves, source: str = "") -> IddTable:
    """Reduced curves of the nodes of ``curves`` (see the module docstring)."""
    from .particle import csda_range_mm
    e = np.asarray(curves.energies_mev, dtype=np.float64)
    if e.size < 2:
        raise ValueError(f"{source}: a depth-dose table needs at least two energies, got {e.size}")
    t = np.arange(0.0, T_MAX + T_STEP / 2, T_STEP)
    r80 = np.array([r80_of(d, v) for d, v in zip(curves.depth_mm, curves.idd)])
    f = np.empty((e.size, t.size))
    for i, (d, v) in enumerate(zip(curves.depth_mm, curves.idd)):
        f[i] = np.interp(t * r80[i], d, v, left=v[0], right=0.0) * (r80[i] / 10.0) / e[i]
    return IddTable(e, r80, r80 / csda_range_mm(e), t, f, source)


@lru_cache(maxsize=2)
def idd_table(path: str = str(DATA_FILE)) -> IddTable:
    """The interpolation table of the Monte Carlo curves in ``path`` (default: the shipped table)."""
    return build_table(read_idd_csv(path), path)


def proton_idd(depth_mm, energy_mev: float) -> np.ndarray:
    """Mono-energetic proton IDD per primary (MeV cm^2/g) at water depths (mm), from the shipped
    Monte Carlo table (see the module docstring)."""
    return idd_table().idd(depth_mm, energy_mev)
