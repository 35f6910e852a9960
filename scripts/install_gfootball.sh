#!/usr/bin/env bash
# Install Google Research Football (gfootball 2.10.2) for trustmarl's GRF environments.
#
# Why a script and not just an extra: gfootball ships only a source distribution whose build compiles the
# C++ game engine with cmake against SDL2/Boost/OpenGL, so Debian development packages must be present
# before `pip install` can succeed.
#
# gfootball goes in with --no-deps (see below), so pip installs none of its dependencies: this script
# installs every one of them itself, from the project's "grf" extra in pyproject.toml (the one list of
# pins). That list is gfootball's setup.py install_requires plus `six`, which gfootball.env imports but
# setup.py does not declare; a Python that happens to carry six already (pyenv's, most system Pythons)
# hides its absence, a new virtual environment does not.
#
# Idempotent: the Python dependencies are (re)installed every time (a no-op for pip when they are there,
# and it repairs an environment where gfootball went in without them); the Debian packages and the engine
# build are skipped when gfootball $GFOOTBALL_VERSION is already installed.
# Non-interactive: apt-get runs with DEBIAN_FRONTEND=noninteractive; needs root (or sudo) for apt-get.
#
# Usage: bash scripts/install_gfootball.sh            (uses the python3 on PATH, e.g. an activated venv)
#        PYTHON=/path/to/python bash scripts/install_gfootball.sh
set -euo pipefail

PYTHON="${PYTHON:-python3}"
GFOOTBALL_VERSION="2.10.2"
PYPROJECT="$(cd "$(dirname "$0")/.." && pwd)/pyproject.toml"

# The "grf" extra's requirements, one per line (tomllib: Python >= 3.11, which the project requires).
mapfile -t GRF_REQUIREMENTS < <("$PYTHON" - "$PYPROJECT" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["grf"]))
EOF
)
if [ "${#GRF_REQUIREMENTS[@]}" -eq 0 ]; then
    echo "install_gfootball.sh: no 'grf' extra found in $PYPROJECT" >&2
    exit 1
fi

# Runtime dependencies of gfootball, installed here because gfootball itself goes in with --no-deps: its
# metadata asks for `pygame` and `opencv-python`, but pettingzoo[sisl] brings pygame-ce, which ships the
# same `pygame` module (the two distributions overwrite each other's files), and the headless OpenCV wheel
# is the same `cv2` without GUI libraries. The extra therefore names pygame-ce and opencv-python-headless
# instead, and `pip check` lists pygame and opencv-python as missing for gfootball: expected.
# psutil is also a build dependency (see below); wheel is in gfootball's install_requires and builds it.
echo "==> pip install gfootball's dependencies: ${GRF_REQUIREMENTS[*]}"
"$PYTHON" -m pip install -q "${GRF_REQUIREMENTS[@]}"

installed_version() {
    "$PYTHON" -c "import importlib.metadata as m; print(m.version('gfootball'))" 2>/dev/null || true
}

if [ "$(installed_version)" = "$GFOOTBALL_VERSION" ]; then
    echo "gfootball $GFOOTBALL_VERSION already installed for $PYTHON: engine build skipped"
else
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        # apt-get needs root; use sudo when we are not root (CI runners have password-less sudo).
        # -E keeps DEBIAN_FRONTEND=noninteractive across sudo.
        SUDO=(sudo -E)
    fi

    # Build and runtime dependencies of the game engine (list from gfootball's README, Linux section).
    APT_PACKAGES=(cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev
                  libsdl2-gfx-dev libboost-all-dev libdirectfb-dev libst-dev mesa-utils xvfb)
    echo "==> apt-get install ${APT_PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"

    # gfootball's build script (gfootball/build_game_engine.sh) runs `python3 -c 'import psutil'` to pick
    # its parallelism, so psutil must be importable by the python3 on PATH as well as by $PYTHON (which got
    # it from the extra above). In an activated venv the two are the same.
    if [ "$(command -v python3)" != "$(command -v "$PYTHON")" ]; then
        python3 -m pip install -q psutil || true
    fi

    # --no-build-isolation: the engine build runs with this environment's setuptools/wheel/psutil rather
    # than a throw-away build environment (gfootball's sdist declares no build requirements of its own).
    echo "==> pip install gfootball==$GFOOTBALL_VERSION (compiles the C++ engine, several minutes)"
    "$PYTHON" -m pip install -q setuptools
    "$PYTHON" -m pip install --no-deps --no-build-isolation "gfootball==$GFOOTBALL_VERSION"
fi

# gfootball.env imports the engine and every module the environments need (six, gym, cv2, absl): a missing
# dependency stops the script here, naming the module.
"$PYTHON" -c "import gfootball.env; print('gfootball', '$GFOOTBALL_VERSION', 'installed and importable')"
