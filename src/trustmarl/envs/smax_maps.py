"""SMAC maps from the papers trustmarl serves, expressed as JaxMARL SMAX scenarios.

SMAX (JaxMARL's SMAC re-implementation) is trustmarl's SMAC stand-in. It ships a dozen
SMAC-named maps and knows six unit types (marine, marauder, stalker, zealot, zergling,
hydralisk). The papers we reproduce use further SMAC maps:

* Sun et al., *Monotonic Improvement Guarantees under Non-stationarity for Decentralized PPO*
  (Table 1 and Sec. 6): 2s_vs_1sc, 3s_vs_5z, 2s3z, 6h_vs_8z, 1c3s5z, 10m_vs_11m, 27m_vs_30m,
  3s5z, bane_vs_bane.
* Zhang et al., *B2MAPO* (Sec. 5, Tables 1-2): MMM2, corridor, 3s5z_vs_3s6z, 27m_vs_30m,
  2c_vs_64zg, 8m_vs_9m.

:data:`SEED_MAPS` records, for each of them, whether SMAX has it built in, whether this module
registers it, or why SMAX cannot express it (a unit type or terrain it lacks) and which
registered stand-in we suggest instead. Importing this module registers the expressible maps
with SMAX's scenario registry (``jaxmarl.environments.smax.register_scenario``), so afterwards
``map_name_to_scenario("8m_vs_9m")`` works like a built-in. Registration is idempotent.

Scenario conventions follow SMAX's built-ins: ``unit_types`` is a ``uint8`` array of SMAX unit
type indices, allies first then enemies, each team listed in increasing type index (marines
before marauders, stalkers before zealots); both SMACv2 generation flags are ``False`` so the
composition is fixed and the two teams start at fixed mirrored spots with uniform noise.

SMAX uses ``max_steps=100`` for every map (one step = 8 world steps of 1/16 s). SMAC's own
episode limits (``SeedMap.smac_episode_limit``) are recorded for reference only; pass
``max_steps=`` to :func:`make_smax` if you want a different limit.
"""
from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np

__all__ = ["SeedMap", "SEED_MAPS", "SMAX_UNIT_TYPES", "register_seed_maps", "list_maps", "seed_map",
           "make_smax"]


def _smax_unit_type_names() -> tuple[str, ...]:
    # Read the order from SMAX itself so the indices we write stay right if JaxMARL reorders them.
    from jaxmarl.environments.smax.smax_env import SMAX
    return tuple(inspect.signature(SMAX.__init__).parameters["unit_type_names"].default)


#: SMAX unit type names in SMAX's index order (index = value stored in ``Scenario.unit_types``).
SMAX_UNIT_TYPES: tuple[str, ...] = _smax_unit_type_names()


@dataclasses.dataclass(frozen=True)
class SeedMap:
    """One SMAC map used by a seed paper, or one stand-in map this module adds.

    ``allies``/``enemies`` are ``((unit_type, count), ...)`` in SC2 terms, so inexpressible maps
    can name units SMAX lacks (medivac, colossus, baneling, spine_crawler). ``status`` is one of
    ``'builtin'`` (SMAX ships it), ``'registered'`` (this module adds it under its SMAC name),
    ``'substitute for X'`` (a stand-in this module adds for SMAC map X) or
    ``'inexpressible: <reason>'``; ``substitute`` names the stand-in suggested for an
    inexpressible map. ``smac_episode_limit`` is SMAC's step limit for the map if it is a SMAC
    map, else that of the SMAC map it replaces (reference only; SMAX uses ``max_steps``).
    """

    name: str
    num_allies: int
    num_enemies: int
    allies: tuple[tuple[str, int], ...]
    enemies: tuple[tuple[str, int], ...]
    source: str
    status: str
    smac_episode_limit: int | None = None
    substitute: str | None = None
    note: str = ""

    @property
    def expressible(self) -> bool:
        return not self.status.startswith("inexpressible")

    @property
    def composition(self) -> str:
        """Human-readable line, e.g. ``'7 marine + 2 marauder + 1 medivac vs 8 marine + ...'``."""
        def side(units):
            return " + ".join(f"{n} {u}" for u, n in units)
        return f"{side(self.allies)} vs {side(self.enemies)}"


_SUN = "Sun et al. (Table 1)"
_SUN_TEXT = "Sun et al. (Sec. 6, App. A)"
_B2 = "B2MAPO (Sec. 5)"

SEED_MAPS: tuple[SeedMap, ...] = (
    # --- maps SMAX ships -----------------------------------------------------------------------
    SeedMap("3s_vs_5z", 3, 5, (("stalker", 3),), (("zealot", 5),), _SUN, "builtin", 250),
    SeedMap("2s3z", 5, 5, (("stalker", 2), ("zealot", 3)), (("stalker", 2), ("zealot", 3)), _SUN,
            "builtin", 120),
    SeedMap("6h_vs_8z", 6, 8, (("hydralisk", 6),), (("zealot", 8),), _SUN, "builtin", 150),
    SeedMap("3s5z", 8, 8, (("stalker", 3), ("zealot", 5)), (("stalker", 3), ("zealot", 5)), _SUN_TEXT,
            "builtin", 150),
    SeedMap("10m_vs_11m", 10, 11, (("marine", 10),), (("marine", 11),), _SUN, "builtin", 150),
    SeedMap("27m_vs_30m", 27, 30, (("marine", 27),), (("marine", 30),), f"{_SUN_TEXT} + {_B2}",
            "builtin", 180),
    SeedMap("3s5z_vs_3s6z", 8, 9, (("stalker", 3), ("zealot", 5)), (("stalker", 3), ("zealot", 6)),
            _B2, "builtin", 170),
    # --- expressible, missing from SMAX: registered under the SMAC name ------------------------
    SeedMap("8m_vs_9m", 8, 9, (("marine", 8),), (("marine", 9),), _B2, "registered", 120),
    # --- not expressible ---------------------------------------------------------------------
    SeedMap("2s_vs_1sc", 2, 1, (("stalker", 2),), (("spine_crawler", 1),), _SUN,
            "inexpressible: the enemy is a spine crawler, an immobile static-defence structure; "
            "SMAX has no such unit and every SMAX unit moves", 300, substitute="2m_vs_1z"),
    SeedMap("1c3s5z", 9, 9, (("colossus", 1), ("stalker", 3), ("zealot", 5)),
            (("colossus", 1), ("stalker", 3), ("zealot", 5)), _SUN,
            "inexpressible: SMAX has no colossus (long-range splash unit)", 180,
            substitute="1c3s5z_like"),
    SeedMap("bane_vs_bane", 24, 24, (("zergling", 20), ("baneling", 4)),
            (("zergling", 20), ("baneling", 4)), _SUN_TEXT,
            "inexpressible: SMAX has no baneling (suicide splash unit)", 200,
            substitute="bane_vs_bane_like"),
    SeedMap("MMM2", 10, 12, (("marine", 7), ("marauder", 2), ("medivac", 1)),
            (("marine", 8), ("marauder", 3), ("medivac", 1)), _B2,
            "inexpressible: SMAX has no medivac (healer) and no heal action", 180,
            substitute="MMM2_like"),
    SeedMap("corridor", 6, 24, (("zealot", 6),), (("zergling", 24),), _B2,
            "inexpressible: the units exist but the map's narrow corridor does not; SMAX maps are "
            "an open walled square", 400, substitute="corridor_like"),
    SeedMap("2c_vs_64zg", 2, 64, (("colossus", 2),), (("zergling", 64),), _B2,
            "inexpressible: SMAX has no colossus, nor the map's cliff terrain (colossi can walk "
            "up cliffs, zerglings cannot)", 400, substitute="2m_vs_1z"),
    # --- stand-ins this module registers ------------------------------------------------------
    SeedMap("2m_vs_1z", 2, 1, (("marine", 2),), (("zealot", 1),), f"{_SUN} + {_B2}",
            "substitute for 2s_vs_1sc", 150,
            note="a genuine SMAC map with the same agent count (2) and a single tougher enemy; also "
                 "the closest 2-agent map for 2c_vs_64zg"),
    SeedMap("1c3s5z_like", 9, 9, (("marauder", 1), ("stalker", 3), ("zealot", 5)),
            (("marauder", 1), ("stalker", 3), ("zealot", 5)), _SUN,
            "substitute for 1c3s5z", 180,
            note="the colossus becomes a marauder, SMAX's other heavy ranged unit; keeps 9 agents of "
                 "3 types"),
    SeedMap("bane_vs_bane_like", 24, 24, (("zergling", 20), ("hydralisk", 4)),
            (("zergling", 20), ("hydralisk", 4)), _SUN_TEXT,
            "substitute for bane_vs_bane", 200,
            note="banelings become hydralisks; keeps 24 zerg agents of 2 types, but there is no "
                 "splash/suicide mechanic"),
    SeedMap("MMM2_like", 10, 12, (("marine", 8), ("marauder", 2)), (("marine", 9), ("marauder", 3)),
            _B2, "substitute for MMM2", 180,
            note="each side's medivac becomes one more marine; keeps 10 vs 12 agents"),
    SeedMap("corridor_like", 6, 24, (("zealot", 6),), (("zergling", 24),), _B2,
            "substitute for corridor", 400,
            note="same units in the open: without the choke point the zealots can be surrounded, so "
                 "it is much harder than SMAC's corridor"),
)

_BY_NAME = {m.name: m for m in SEED_MAPS}


def seed_map(name: str) -> SeedMap:
    """The :data:`SEED_MAPS` row for ``name``."""
    if name not in _BY_NAME:
        raise ValueError(f"map={name!r} is not in SEED_MAPS; allowed: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def _scenario_for(m: SeedMap):
    from jaxmarl.environments.smax import Scenario
    import jax.numpy as jnp

    def team(units):
        idx = []
        for unit, count in units:
            if unit not in SMAX_UNIT_TYPES:
                raise ValueError(f"unit type {unit!r} in map {m.name!r} is not a SMAX unit; "
                                 f"allowed: {', '.join(SMAX_UNIT_TYPES)}")
            idx += [SMAX_UNIT_TYPES.index(unit)] * count
        # Built-in maps list each team by increasing type index; matching it keeps agent ids
        # (ally_0 ...) meaning the same kind of unit as in the built-ins.
        return sorted(idx)

    types = team(m.allies) + team(m.enemies)
    if len(types) != m.num_allies + m.num_enemies:
        raise ValueError(f"map {m.name!r}: composition has {len(types)} units, expected "
                         f"{m.num_allies} + {m.num_enemies}")
    return Scenario(jnp.array(types, dtype=jnp.uint8), m.num_allies, m.num_enemies, False, False)


def _same_scenario(a, b) -> bool:
    return (int(a.num_allies) == int(b.num_allies) and int(a.num_enemies) == int(b.num_enemies)
            and bool(a.smacv2_position_generation) == bool(b.smacv2_position_generation)
            and bool(a.smacv2_unit_type_generation) == bool(b.smacv2_unit_type_generation)
            and np.array_equal(np.asarray(a.unit_types), np.asarray(b.unit_types)))


def _registry() -> dict:
    from jaxmarl.environments.smax import smax_env
    return smax_env.MAP_NAME_TO_SCENARIO


def register_seed_maps(overwrite: bool = False) -> tuple[str, ...]:
    """Register every expressible, non-built-in map of :data:`SEED_MAPS` with SMAX.

    Idempotent: a name already holding the identical scenario is left alone. A name holding a
    *different* scenario (e.g. a later JaxMARL adds its own version) is kept and a warning is
    issued, unless ``overwrite=True``. Returns the names that now hold this module's scenario.
    """
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite={overwrite!r} must be True or False")
    from jaxmarl.environments.smax import register_scenario
    registry = _registry()
    done = []
    for m in SEED_MAPS:
        if not m.expressible or m.status == "builtin":
            continue
        scenario = _scenario_for(m)
        existing = registry.get(m.name)
        if existing is not None and not _same_scenario(existing, scenario) and not overwrite:
            warnings.warn(f"SMAX already has a different map named {m.name!r}; keeping it "
                          f"(pass overwrite=True to replace it)", stacklevel=2)
            continue
        if existing is None or not _same_scenario(existing, scenario):
            register_scenario(m.name, scenario)
        done.append(m.name)
    return tuple(done)


def _describe(scenario) -> str:
    if scenario.smacv2_unit_type_generation:
        return f"{int(scenario.num_allies)} vs {int(scenario.num_enemies)} random unit types"
    types = np.asarray(scenario.unit_types)
    na = int(scenario.num_allies)

    def side(t):
        counts = np.bincount(t, minlength=len(SMAX_UNIT_TYPES))
        return " + ".join(f"{c} {SMAX_UNIT_TYPES[i]}" for i, c in enumerate(counts) if c)
    return f"{side(types[:na])} vs {side(types[na:])}"


def list_maps() -> list[tuple[str, int, int, str]]:
    """Every map SMAX knows (built-ins plus this module's), sorted by name.

    Returns ``[(name, num_allies, num_enemies, note), ...]`` where ``note`` gives the unit
    composition and where the map comes from (SMAX built-in or this module, and for stand-ins
    which SMAC map they replace).
    """
    register_seed_maps()
    out = []
    for name, sc in sorted(_registry().items(), key=lambda kv: kv[0].lower()):
        row = _BY_NAME.get(name)
        if row is not None and row.status != "builtin" and _same_scenario(sc, _scenario_for(row)):
            origin = f"trustmarl {row.status} (seed paper: {row.source})"
        else:
            origin = "SMAX built-in"
            if sc.smacv2_position_generation:
                origin += ", SMACv2-style random start positions"
        out.append((name, int(sc.num_allies), int(sc.num_enemies), f"{_describe(sc)}; {origin}"))
    return out


def make_smax(map_name: str, **env_kwargs):
    """``HeuristicEnemySMAX`` on ``map_name`` with trustmarl's defaults.

    Defaults: ``see_enemy_actions=True, walls_cause_death=True, attack_mode="closest"``; any
    SMAX/HeuristicEnemySMAX keyword (e.g. ``max_steps``) in ``env_kwargs`` overrides them.
    """
    from jaxmarl.environments.smax import HeuristicEnemySMAX
    registry = _registry()
    if map_name not in registry:
        raise ValueError(f"map_name={map_name!r} is not a SMAX map; allowed: {', '.join(sorted(registry))}")
    kwargs = dict(see_enemy_actions=True, walls_cause_death=True, attack_mode="closest")
    kwargs.update(env_kwargs)
    return HeuristicEnemySMAX(scenario=registry[map_name], **kwargs)


register_seed_maps()
