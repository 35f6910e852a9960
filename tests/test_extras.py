"""The optional extras import, so that a missing module is a failure here and not a skipped test elsewhere.

The GRF and PettingZoo tests skip when their packages are absent, which is right on a machine that never
installed them and wrong where the install went wrong: gfootball went in with --no-deps and without `six`, and
its tests skipped in every environment whose Python did not happen to carry six (issue 14). Here each extra's
modules must import, and each requirement must be installed at its pin, whenever

* CI is true and the extra is one the README's test command installs (test, which pulls host, and grf), or
* the extra is installed, meaning some distribution that only this extra brings (not the core install nor
  another extra) is installed, or
* the requirement's own distribution is installed (installed but unimportable is a failure).

Otherwise the test skips, saying which extra is missing and how to install it.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# `bash scripts/install_gfootball.sh && pip install -e '.[test,grf]'`; "test" requires trustmarl[host].
TEST_COMMAND_EXTRAS = ("test", "host", "grf")
# The module each extra's distribution provides (what its users import).
MODULES = {
    "pettingzoo": "pettingzoo.sisl",  # pettingzoo[sisl]: the SISL envs are the point of the host extra
    "pygame-ce": "pygame",
    "pymunk": "pymunk",
    "box2d": "Box2D",
    "scipy": "scipy",
    "gym": "gym",
    "opencv-python-headless": "cv2",
    "absl-py": "absl",
    "psutil": "psutil",
    "six": "six",
    "wheel": "wheel",
    "pytest": "pytest",
    "pytest-timeout": "pytest_timeout",
    "pytest-xdist": "xdist",
    "hydra-core": "hydra",
    "wandb": "wandb",
    "pyyaml": "yaml",
    "ray": "ray.tune",  # ray[tune]: Tune is what trustmarl sweep uses
    "mkdocs": "mkdocs",
    "mkdocs-material": "material",
    "mkdocstrings": "mkdocstrings",
    "mkdocstrings-python": "mkdocstrings_handlers.python",
}
# gfootball's metadata names distributions that the grf extra replaces by ones with the same module
# (scripts/install_gfootball.sh installs gfootball with --no-deps for this reason).
GFOOTBALL_SUBSTITUTES = {"pygame": "pygame-ce", "opencv-python": "opencv-python-headless"}


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@cache
def _project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _extra(name: str) -> list[Requirement]:
    """The extra's requirements as pyproject.toml gives them (the installed metadata may be older)."""
    reqs = [Requirement(r) for r in _project()["optional-dependencies"][name]]
    return [r for r in reqs if canonicalize_name(r.name) != "trustmarl"]


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


@cache
def _core_closure() -> frozenset[str]:
    """Canonical names of the core dependencies and, through installed metadata, everything they need."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in _project()["dependencies"]]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for spec in map(Requirement, needs):
            if spec.marker is None or spec.marker.evaluate({"extra": ""}):
                todo.append(spec)
    return frozenset(seen)


# Installed for reasons of their own (packaging tools; the runner of these very tests): they say nothing about
# whether an extra was installed.
NOT_DISTINCTIVE = {"pip", "setuptools", "wheel", "pytest"}


def _pulls(extra: str) -> set[str]:
    """The extras that ``extra`` pulls in through a trustmarl[...] requirement ("test" pulls "host")."""
    reqs = [Requirement(r) for r in _project()["optional-dependencies"][extra]]
    return {e for r in reqs if canonicalize_name(r.name) == "trustmarl" for e in r.extras}


def _extra_installed(name: str) -> bool:
    """Whether a distribution that only this extra brings is installed, or an extra that pulls this one is."""
    extras = _project()["optional-dependencies"]
    others = {canonicalize_name(r.name) for extra in extras if extra != name for r in _extra(extra)}
    own = [canonicalize_name(r.name) for r in _extra(name)]
    distinctive = [d for d in own if d not in others | _core_closure() | NOT_DISTINCTIVE]
    return (any(_version(d) is not None for d in distinctive)
            or any(name in _pulls(extra) and _extra_installed(extra) for extra in extras if extra != name))


def _required(extra: str, dist: str | None = None) -> bool:
    return ((_ci() and extra in TEST_COMMAND_EXTRAS) or _extra_installed(extra)
            or (dist is not None and _version(dist) is not None))


def _how(extra: str) -> str:
    if extra == "grf":
        return "bash scripts/install_gfootball.sh && pip install -e '.[grf]'"
    return f"pip install -e '.[{extra}]'"


def _import(module: str, fix: str):
    try:
        return importlib.import_module(module)
    except Exception as err:  # ImportError, or a compiled library that fails to load
        pytest.fail(f"`import {module}` failed: {type(err).__name__}: {err}. Install: {fix}", pytrace=False)


REQUIREMENTS = [(extra, req) for extra in _project()["optional-dependencies"] for req in _extra(extra)]


def test_every_extra_requirement_names_its_module():
    unknown = sorted({canonicalize_name(r.name) for _, r in REQUIREMENTS} - set(MODULES))
    assert not unknown, f"add the module these extras' distributions provide to MODULES: {unknown}"


@pytest.mark.parametrize("extra,req", REQUIREMENTS, ids=[f"{e}:{r.name}" for e, r in REQUIREMENTS])
def test_extra_requirement_installed_at_its_pin_and_importable(extra, req):
    dist = canonicalize_name(req.name)
    if not _required(extra, dist):
        pytest.skip(f"extra {extra!r} is not installed ({_how(extra)} installs it)")
    version = _version(dist)
    assert version is not None, f"{req} (extra {extra!r}) is not installed. Install: {_how(extra)}"
    assert req.specifier.contains(version, prereleases=True), \
        f"{dist} {version} is installed, extra {extra!r} pins {req}. Install: {_how(extra)}"
    _import(MODULES[dist], _how(extra))


def test_gfootball_env_imports():
    if not _required("grf", "gfootball"):
        pytest.skip("extra 'grf' and gfootball are not installed (bash scripts/install_gfootball.sh installs "
                    "them; CI does)")
    env = _import("gfootball.env", _how("grf"))
    assert callable(env.create_environment)


def test_gfootball_declared_dependencies_installed():
    """Every runtime requirement in gfootball's own metadata is installed (pygame and opencv-python as their
    substitutes) and is in the grf extra, which is what scripts/install_gfootball.sh installs."""
    if _version("gfootball") is None:
        if _required("grf"):
            pytest.fail(f"gfootball is not installed. Install: {_how('grf')}", pytrace=False)
        pytest.skip("gfootball is not installed (bash scripts/install_gfootball.sh installs it; CI does)")
    grf = {canonicalize_name(r.name) for r in _extra("grf")}
    for spec in map(Requirement, md.requires("gfootball") or []):
        if spec.marker is not None and not spec.marker.evaluate({"extra": ""}):
            continue
        dist = GFOOTBALL_SUBSTITUTES.get(canonicalize_name(spec.name), canonicalize_name(spec.name))
        assert dist in grf, f"gfootball needs {spec}: add {dist} to the grf extra in pyproject.toml"
        version = _version(dist)
        assert version is not None and spec.specifier.contains(version, prereleases=True), \
            f"gfootball needs {spec}; installed {dist}: {version}. Install: {_how('grf')}"


def test_pettingzoo_sisl_envs_import_and_reset():
    if not _required("host"):
        pytest.skip(f"extra 'host' is not installed ({_how('host')} installs it; so does '.[test]')")
    sisl = _import("pettingzoo.sisl", _how("host"))
    for name in ("pursuit_v5", "multiwalker_v9"):  # the two trustmarl uses; pygame and Box2D underneath
        env = getattr(sisl, name).parallel_env()
        try:
            obs, _ = env.reset(seed=0)
            assert set(obs) == set(env.agents) and env.agents, name
        finally:
            env.close()
