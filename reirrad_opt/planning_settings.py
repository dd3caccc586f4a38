"""How a plan is computed, apart from what the clinic asks for.

The protocol says what the clinic wants (structures, priorities, limits, alpha/beta, fractionations,
recovery, slips, evaluation rules); :class:`PlanningSettings` says how the optimizer gets there: the
engine and its constants, the truncation of the dose rows, how solved goals are held, the last
stage's homogeneity window. Defaults live here and nowhere else; a value is validated once, when
the settings are made.

Where they come from, later overriding earlier: these defaults; the protocol options that used to
carry them (``engine``, ``hold_dvh_points``, ``target_homogeneity_weight``, ``target_floor_pct_rx``;
deprecated there, see :data:`LEGACY_PROTOCOL_OPTIONS`); a settings file's ``[settings]`` table
(``reirrad-opt plan --settings FILE``, :func:`load_settings`); the ``settings=`` argument of
``plan()``; and its single keywords (``engine=``, ``engine_settings=``, ``truncation=``, ``solver=``)
or the CLI's ``--engine``.

A ``[settings]`` table, every key optional::

    [settings]
    engine = "first-order"            # or "lp", or any registered engine
    truncation = 0.01                 # dose-row entries below this fraction of their column's maximum
    hold_dvh_points = true
    target_homogeneity_weight = 1.0   # 1/Gy^2
    target_floor_pct_rx = 0.0         # % of Rx

    [settings.first-order]            # the chosen engine's constants (its Settings dataclass fields)
    max_outer = 30

    [settings.problem]                # how the problem samples the case (ProblemSettings fields)
    ring_mm = 30.0
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ENGINE = "first-order"   # TG-119 at 3 mm: 29 s for the whole plan against 408 s with the LP engine
LP_SOLVERS = ("HIGHS",)

# protocol [options] keys that are planning settings (accepted there with a deprecation warning)
LEGACY_PROTOCOL_OPTIONS = ("engine", "hold_dvh_points", "target_homogeneity_weight", "target_floor_pct_rx")


class SettingsError(ValueError):
    """Invalid planning settings; the message names the key (and the file) and what was expected."""


# Beyond these a problem setting is a typo (a ring 1e9 mm wide is the whole patient many times over); counts
# are voxel samples and voxel bands. In mm unless a count.
PROBLEM_SETTING_MAX = {"point_spacing_mm": 50.0, "exact_band_voxels": 20, "ceiling_shell_mm": 100.0,
                       "ceiling_lattice_mm": 100.0, "ring_mm": 200.0, "ring_half_dose_mm": 200.0,
                       "normal_tissue_samples": 10_000_000, "ring_samples": 10_000_000}
MIN_POINT_SPACING_MM = 0.5
# the PTV homogeneity weight (1/Gy^2) of the last stage: the TG-119 benchmark uses 100; far above, the term
# swamps every other one (and 1e300 overflows)
MAX_TARGET_HOMOGENEITY_WEIGHT = 1e4


@dataclass(frozen=True)
class ProblemSettings:
    """Where the lexicographic problem puts its points, and the normal-tissue stage's sampling: numerical
    choices of :func:`~reirrad_opt.optimize.problem.build_problem`, never clinical content.

    Attributes:
        point_spacing_mm: interior points of soft dose-volume goals this far apart for the engines that
            pay per point (LP, cvxpy); the first-order engine takes every voxel.
        exact_band_voxels: dose-volume goals keep the evaluation's sub-voxel samples exact this many voxel
            spacings deep from a structure's edge, where interpolated dose differs from the voxel centre.
        ceiling_shell_mm: the body dose ceiling is seeded with every voxel this close to a target ...
        ceiling_lattice_mm: ... and a lattice this coarse elsewhere (more points enter where the dose
            comes near the ceiling).
        ring_mm: width of the ring around the PTV whose dose fall-off the normal-tissue stage shapes.
        ring_half_dose_mm: the ring's reference fall-off: Rx at the PTV surface, Rx/2 this far out,
            never below 25 % of Rx.
        normal_tissue_samples: body voxels of the normal-tissue mean-dose term at most (a deterministic
            stride sample).
        ring_samples: ring voxels of the fall-off term at most (a deterministic stride sample).
    """

    point_spacing_mm: float = 5.0
    exact_band_voxels: int = 2
    ceiling_shell_mm: float = 5.0
    ceiling_lattice_mm: float = 6.0
    ring_mm: float = 30.0
    ring_half_dose_mm: float = 10.0
    normal_tissue_samples: int = 6000
    ring_samples: int = 2500

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            high = PROBLEM_SETTING_MAX[f.name]
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise SettingsError(f"settings problem.{f.name}: expected a whole number >= 1, got {value!r}")
                if value > high:
                    raise SettingsError(f"settings problem.{f.name}: expected at most {high:,}, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise SettingsError(f"settings problem.{f.name}: expected a number > 0 (mm), got {value!r}")
            elif value > high:
                raise SettingsError(f"settings problem.{f.name}: expected at most {high:g} mm, got {value!r}")
            elif f.name == "point_spacing_mm" and value < MIN_POINT_SPACING_MM:
                # a point every 1e-9 mm is a point at every sub-voxel sample many times over
                raise SettingsError(f"settings problem.{f.name}: expected at least {MIN_POINT_SPACING_MM:g} mm, got "
                                    f"{value!r}")


@dataclass(frozen=True)
class PlanningSettings:
    """Engine and numerical settings of a plan (never clinical content).

    Attributes:
        engine: the registered engine that solves the stages ('first-order', 'lp', ...; see
            :mod:`reirrad_opt.optimize.engines`).
        engine_settings: that engine's constants, an instance of its ``Settings`` dataclass (None: its
            defaults).
        truncation: influence entries below this fraction of their column's maximum are left out of
            the optimizer's dose rows and added back as a per-row correction (0 disables; 0 to < 1).
        lp_solver: the LP engine's solver ('HIGHS').
        hold_dvh_points: after its stage, hold each dose-volume goal at its points (all but its tail)
            instead of by its CVaR.
        target_homogeneity_weight: last stage, first-order engine: weight (1/Gy^2) of the PTV's squared
            dose outside [target_floor_pct_rx % of Rx, Rx]; >= 0.
        target_floor_pct_rx: that window's lower edge, % of Rx (0 to 100; 0: no floor).
        problem: where the problem puts its points, and the normal-tissue stage's sampling
            (:class:`ProblemSettings`).
    """

    engine: str = DEFAULT_ENGINE
    engine_settings: Any = None
    truncation: float = 0.01
    lp_solver: str = "HIGHS"
    hold_dvh_points: bool = True
    target_homogeneity_weight: float = 1.0
    target_floor_pct_rx: float = 0.0
    problem: ProblemSettings = field(default_factory=lambda: ProblemSettings())

    def __post_init__(self) -> None:
        from .optimize.engines import get_engine

        try:
            engine_cls = get_engine(self.engine)
        except ValueError as exc:
            raise SettingsError(f"settings engine: {exc}") from None
        if self.engine_settings is not None and not isinstance(self.engine_settings, engine_cls.Settings):
            raise SettingsError(f"settings engine_settings: engine {self.engine!r} takes "
                                f"{engine_cls.Settings.__name__}, got {type(self.engine_settings).__name__}")
        _number(self.truncation, "truncation", lo=0.0, hi=1.0, hi_open=True)
        if str(self.lp_solver).upper() not in LP_SOLVERS:
            raise SettingsError(f"settings lp_solver: expected one of {LP_SOLVERS}, got {self.lp_solver!r}")
        if not isinstance(self.hold_dvh_points, bool):
            raise SettingsError(f"settings hold_dvh_points: expected true or false, got {self.hold_dvh_points!r}")
        _number(self.target_homogeneity_weight, "target_homogeneity_weight", lo=0.0, hi=MAX_TARGET_HOMOGENEITY_WEIGHT)
        _number(self.target_floor_pct_rx, "target_floor_pct_rx", lo=0.0, hi=100.0)
        if not isinstance(self.problem, ProblemSettings):
            raise SettingsError(f"settings problem: expected ProblemSettings, got {type(self.problem).__name__}")

    def with_overrides(self, **values: Any) -> PlanningSettings:
        """A copy with the given fields replaced; None values are ignored (not given). A new engine
        drops engine settings that belong to another engine."""
        given = {k: v for k, v in values.items() if v is not None}
        if "engine" in given and given["engine"] != self.engine and "engine_settings" not in given:
            given["engine_settings"] = None
        return dataclasses.replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for plan.json and study rows): the engine's constants (its defaults when none
        were given) and the problem's sampling as tables."""
        from .optimize.engines import get_engine

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("engine_settings", "problem")}
        out["engine_settings"] = dataclasses.asdict(self.engine_settings or get_engine(self.engine).Settings())
        out["problem"] = dataclasses.asdict(self.problem)
        return out

    @classmethod
    def from_table(cls, table: Any, where: str = "[settings]", base: PlanningSettings | None = None
                   ) -> PlanningSettings:
        """Settings from a ``[settings]`` TOML table (keys as the fields; a sub-table named after the
        chosen engine holds its constants), over ``base`` (default: the defaults). ``where`` names
        the source in errors (e.g. 'settings.toml: [settings]')."""
        from .optimize.engines import engine_names, get_engine

        base = base or cls()
        if not isinstance(table, dict):
            raise SettingsError(f"{where}: expected a table, got {type(table).__name__}")
        scalars = {f.name for f in dataclasses.fields(cls)} - {"engine_settings", "problem"}
        engines = set(engine_names())
        unknown = sorted(set(table) - scalars - engines - {"problem"})
        if unknown:
            raise SettingsError(f"{where} {unknown[0]}: unknown key; expected one of {sorted(scalars)}, the table "
                                f"'problem' or an engine's table {sorted(engines)}")
        values = {k: table[k] for k in scalars if k in table}
        if "problem" in table:
            values["problem"] = _problem_from_table(table["problem"], f"{where} problem", base.problem)
        try:
            out = base.with_overrides(**values)
        except SettingsError as exc:
            raise SettingsError(f"{where}: {exc}") from None
        for name in sorted(engines & set(table)):   # every engine's table is checked; the chosen one's is used
            sub = table[name]
            settings_cls = get_engine(name).Settings
            if not isinstance(sub, dict):
                raise SettingsError(f"{where} {name}: expected a table of {settings_cls.__name__} fields")
            known = {f.name for f in dataclasses.fields(settings_cls)}
            for key, value in sub.items():
                if key not in known:
                    raise SettingsError(f"{where} {name}.{key}: unknown key; expected one of {sorted(known)}")
                if isinstance(getattr(settings_cls, key), str):   # a name (the cvxpy engine's solver)
                    if not isinstance(value, str):
                        raise SettingsError(f"{where} {name}.{key}: expected a name (a string), got {value!r}")
                elif isinstance(getattr(settings_cls, key), bool):   # a switch (the first-order move_held_tails)
                    if not isinstance(value, bool):
                        raise SettingsError(f"{where} {name}.{key}: expected true or false, got {value!r}")
                elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise SettingsError(f"{where} {name}.{key}: expected a finite number, got {value!r}")
                elif isinstance(getattr(settings_cls, key), int) and not (isinstance(value, int) and value >= 0):
                    raise SettingsError(f"{where} {name}.{key}: expected a whole number >= 0 (a count), got {value!r}")
            try:
                chosen = dataclasses.replace(out.engine_settings or settings_cls(), **sub) \
                    if name == out.engine else settings_cls(**sub)
            except ValueError as exc:   # the engine's own checks (e.g. a count that must be at least 1)
                raise SettingsError(f"{where} {name}.{exc}") from None
            if name == out.engine:
                out = dataclasses.replace(out, engine_settings=chosen)
        return out

    @classmethod
    def from_protocol_options(cls, options: dict[str, Any]) -> PlanningSettings:
        """The settings a protocol's (deprecated) options carry; the defaults for the others."""
        return cls().with_overrides(**{k: options[k] for k in LEGACY_PROTOCOL_OPTIONS if k in options})


def load_settings(path: str | Path, base: PlanningSettings | None = None) -> PlanningSettings:
    """The ``[settings]`` table of the TOML file ``path`` over ``base`` (default: the defaults).
    SettingsError names the file and the key (or says the path is a folder); FileNotFoundError if there
    is no such file."""
    path = Path(path)
    if path.is_dir():
        raise SettingsError(f"{path}: a folder, not a settings file (expected a TOML file with a [settings] table)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: settings file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: not a TOML file ({exc})") from None
    if "settings" not in data:
        raise SettingsError(f"{path}: no [settings] table (found {sorted(data) or 'nothing'})")
    extra = sorted(set(data) - {"settings"})
    if extra:
        raise SettingsError(f"{path}: unknown table(s) {extra}; a settings file holds [settings] only")
    return PlanningSettings.from_table(data["settings"], f"{path}: [settings]", base)


def _problem_from_table(table: Any, where: str, base: ProblemSettings) -> ProblemSettings:
    if not isinstance(table, dict):
        raise SettingsError(f"{where}: expected a table of ProblemSettings fields")
    known = {f.name for f in dataclasses.fields(ProblemSettings)}
    for key in table:
        if key not in known:
            raise SettingsError(f"{where}.{key}: unknown key; expected one of {sorted(known)}")
    try:
        return dataclasses.replace(base, **table)
    except SettingsError as exc:
        raise SettingsError(f"{where}: {exc}") from None


def _number(value: Any, key: str, lo: float, hi: float | None = None, hi_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"settings {key}: expected a finite number, got {value!r}")
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if value < lo or too_high:
        upper = "" if hi is None else f" {'below' if hi_open else 'up to'} {hi:g}"
        raise SettingsError(f"settings {key}: expected a number from {lo:g}{upper}, got {value!r}")
