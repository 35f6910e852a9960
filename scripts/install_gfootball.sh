#!/usr/bin/env bash
# Install Google Research Football (gfootball 2.10.2) for trustmarl's GRF environments.
#
# Why a script and not just an extra: gfootball ships only a source distribution whose build compiles the
# C++ game engine with cmake against SDL2/Boost/OpenGL, so Debian development packages must be present
# before `pip install` can succeed. The Python pins (gym==0.23.1, opencv-python-headless, gfootball==2.10.2)
# are also the project's "grf" extra.
#
# Idempotent: does nothing when `python3 -c "import gfootball"` already works.
# Non-interactive: apt-get runs with DEBIAN_FRONTEND=noninteractive; needs root (or sudo) for apt-get.
#
# Usage: bash scripts/install_gfootball.sh            (uses the python3 on PATH)
#        PYTHON=/path/to/python bash scripts/install_gfootball.sh
set -euo pipefail

PYTHON="${PYTHON:-python3}"
GFOOTBALL_VERSION="2.10.2"
GYM_VERSION="0.23.1"
OPENCV_VERSION="5.0.0.93"

if "$PYTHON" -c "import gfootball.env" >/dev/null 2>&1; then
    echo "gfootball already importable by $PYTHON: nothing to do"
    exit 0
fi

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
# its parallelism, so psutil must be importable by the python3 on PATH, and by $PYTHON.
echo "==> pip install build and runtime dependencies, gym==$GYM_VERSION"
"$PYTHON" -m pip install -q psutil setuptools wheel
if [ "$(command -v python3)" != "$(command -v "$PYTHON")" ]; then
    python3 -m pip install -q psutil || true
fi
# Runtime dependencies of gfootball, installed here because gfootball itself goes in with --no-deps:
# its metadata asks for `pygame` and `opencv-python`, but pettingzoo[sisl] brings pygame-ce, which ships
# the same `pygame` module (the two distributions overwrite each other's files), and the headless OpenCV
# wheel is the same `cv2` without GUI libraries. pygame is only used by gfootball's keyboard/gamepad
# players; cv2 by its observation wrappers. `pip check` therefore lists pygame and opencv-python as
# missing for gfootball: expected.
"$PYTHON" -m pip install -q "gym==$GYM_VERSION" "opencv-python-headless==$OPENCV_VERSION" absl-py scipy

# --no-build-isolation: the engine build runs with this environment's setuptools/wheel/psutil rather than
# a throw-away build environment.
echo "==> pip install gfootball==$GFOOTBALL_VERSION (compiles the C++ engine, several minutes)"
"$PYTHON" -m pip install --no-deps --no-build-isolation "gfootball==$GFOOTBALL_VERSION"

"$PYTHON" -c "import gfootball.env; print('gfootball', '$GFOOTBALL_VERSION', 'installed')"
