"""What a lexicographic stage reports, and the settings of the last (normal-tissue) stage."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class StageResult:
    """One solved stage.

    Attributes:
        priority: the protocol priority the stage optimizes (None for the normal-tissue stage).
        name: human label.
        status: solver status ('optimal', 'infeasible', ...).
        objective: the stage's objective value (dimensionless, slacks in units of Rx).
        achieved: term key -> excess over the term's level in Gy (<= 0 met; the optimizer's surrogate).
        slip_gy: what later stages may give back on this stage's goals (Gy).
        seconds: wall time (build + solve).
        notes: remarks (limit tier used, diagnosis, ...).
        evaluations: objective-and-gradient evaluations the stage took (first-order engine; 0 for an
            engine that solves each stage otherwise).
    """

    priority: int | None
    name: str
    status: str
    objective: float
    achieved: dict[str, float]
    slip_gy: float
    seconds: float
    notes: list[str] = field(default_factory=list)
    evaluations: int = 0

    def to_dict(self) -> dict:
        return {"priority": self.priority, "name": self.name, "status": self.status,
                "objective": None if not np.isfinite(self.objective) else round(float(self.objective), 6),
                "achieved": {k: round(v, 4) for k, v in self.achieved.items()},
                "slip": {"value_gy": round(self.slip_gy, 4)}, "seconds": round(self.seconds, 3),
                "evaluations": self.evaluations, "notes": self.notes}


@dataclass(frozen=True)
class NormalTissue:
    """Voxels and settings of the last (normal-tissue) stage.

    Attributes:
        body_rows: sampled body voxels away from the PTV (mean dose minimised).
        ring_rows: voxels around the PTV; ring_reference_gy: the dose fall-off they should stay under.
        roughness: sparse difference operator between neighbouring bixels (rows = pairs), or None.
        roughness_weight: weight of the mean absolute fluence difference (relative).
        time_limit_s: the stage's time budget (s). It only refines a plan that already meets every
            earlier priority; if the budget runs out, the previous stage's fluence is kept and the
            stage says so (a plan then depends on the machine's speed).
        target_rows: target voxels whose dose outside the window [``target_floor_gy``,
            ``target_reference_gy``] (Gy; the coverage isodose and the prescription) is penalised
            quadratically, ``hot_weight`` x mean(distance outside the window^2) / (1 Gy^2), by the
            first-order engine only (a homogeneity term: hot spots and cold spots, within every
            earlier result; the LP engine has no quadratic term).
    """

    body_rows: np.ndarray
    ring_rows: np.ndarray
    ring_reference_gy: np.ndarray
    roughness: sp.csr_matrix | None = None
    roughness_weight: float = 0.1
    time_limit_s: float | None = 300.0
    target_rows: np.ndarray | None = None
    target_reference_gy: float = 0.0
    hot_weight: float = 0.0
    target_floor_gy: float = 0.0
