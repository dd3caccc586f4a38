"""Figures of a plan: cumulative-EQD2 DVHs with the protocol limits, and dose slices."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..evaluate import dvh  # noqa: E402

PALETTE = plt.get_cmap("tab20").colors


def structure_colours(names: list[str]) -> dict[str, tuple]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def dvh_figure(plan, path: Path, cumulative_eqd2_gy: np.ndarray) -> None:
    """Left: cumulative EQD2 DVHs of the organs with their desirable (dashed) and acceptable
    (dotted) limits; right: the targets' new-course physical-dose DVHs with the prescription."""
    case, grid = plan.case, plan.case.grid
    rows = [r for r in plan.evaluation.rows if r.verdict != "not evaluated"]
    organ_names = list(dict.fromkeys(r.structure for r in rows if r.cumulative and r.structure in case.structures))
    target_names = [n for n in ("rGTV", "rCTV", "PTV") if n in case.structures]
    colours = structure_colours(organ_names + target_names)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    for name in organ_names:
        h = dvh(cumulative_eqd2_gy, case.structures[name].mask, grid)
        ax1.plot(h.dose_gy, h.volume_pct, color=colours[name], label=name, lw=1.6)
        for r in rows:
            if r.structure == name and r.cumulative and r.unit == "Gy":
                if r.desirable is not None:
                    ax1.axvline(r.desirable, color=colours[name], ls="--", lw=0.8)
                if r.acceptable is not None:
                    ax1.axvline(r.acceptable, color=colours[name], ls=":", lw=0.8)
    ax1.set(xlabel="cumulative EQD2 (Gy)", ylabel="volume (%)", ylim=(0, 102),
            title="Organs: cumulative EQD2 (prior + new); limits: -- desirable, : acceptable")
    if organ_names:
        ax1.legend(fontsize=7, ncol=2)
    ax1.grid(alpha=0.3)
    rx = float(plan.fractionation.total_gy)
    for name in target_names:
        h = dvh(plan.new_dose_gy, case.structures[name].mask, grid)
        ax2.plot(h.dose_gy, h.volume_pct, color=colours[name], label=name, lw=1.8)
    for pct, style in ((95, ":"), (100, "-"), (107, "--")):
        ax2.axvline(rx * pct / 100, color="k", ls=style, lw=0.7)
    ax2.set(xlabel="new-course physical dose (Gy)", ylabel="volume (%)", ylim=(0, 102),
            title=f"Targets: new course ({plan.fractionation.name}, Rx {rx:.1f} Gy; lines 95/100/107 %)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _slices(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    k, j, i = centre
    return [volume[k], volume[:, j, :], volume[:, :, i]]


def dose_figure(plan, path: Path, cumulative_eqd2_gy: np.ndarray) -> None:
    """Axial, coronal and sagittal slices through the rGTV centre: new-course dose (top) and
    cumulative EQD2 (bottom) as colour washes on the CT, with structure outlines."""
    case, grid = plan.case, plan.case.grid
    key = "rGTV" if "rGTV" in case.structures else "PTV"
    centre = tuple(int(round(c)) for c in np.argwhere(case.structures[key].mask).mean(axis=0))
    dz, dy, dx = grid.spacing_mm
    aspects = [dy / dx, dz / dx, dz / dy]
    titles = ["axial", "coronal", "sagittal"]
    outlines = [n for n in ("rGTV", "PTV", "Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R",
                            "Lobe_Temporal_L", "Lobe_Temporal_R", "A_Carotid_L", "A_Carotid_R")
                if n in case.structures]
    colours = structure_colours(outlines)
    rx = float(plan.fractionation.total_gy)
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.5))
    for row, (volume, label, vmax) in enumerate(((plan.new_dose_gy, "new course (Gy)", 1.1 * rx),
                                                (cumulative_eqd2_gy, "cumulative EQD2 (Gy)",
                                                 float(np.percentile(cumulative_eqd2_gy[case.body], 99.9))))):
        ct = _slices(case.ct_hu, centre)
        dose = _slices(volume, centre)
        for col in range(3):
            ax = axes[row, col]
            ax.imshow(ct[col], cmap="gray", vmin=-300, vmax=1200, origin="lower" if col else "upper",
                      aspect=aspects[col])
            wash = np.ma.masked_less(dose[col], 0.1 * vmax)
            im = ax.imshow(wash, cmap="jet", alpha=0.45, vmin=0, vmax=vmax, origin="lower" if col else "upper",
                           aspect=aspects[col])
            for name in outlines:
                m = _slices(case.structures[name].mask, centre)[col]
                if m.any():
                    # indices as coordinates: the axes already carry the image's orientation
                    ax.contour(m, levels=[0.5], colors=[colours[name]], linewidths=0.9)
            ax.set_title(f"{titles[col]}: {label}")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.8, label=label)
    handles = [plt.Line2D([], [], color=colours[n], label=n) for n in outlines]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
