# Shared by scripts/test, scripts/demo and bench/run: a project-local venv with ferrotel
# built from this checkout. Source it; it defines functions only.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# A CPython >= 3.10 to create venvs with.
base_python() {
    for candidate in python3.11 python3.12 python3.13 python3.10 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    echo "error: CPython 3.10 or newer is needed" >&2
    return 1
}

# make_venv DIR REQUIREMENTS_FILE: create (or refresh) a venv and install pinned packages.
make_venv() {
    local dir=$1 requirements=$2
    if [ ! -x "$dir/bin/python" ]; then
        say "creating $dir"
        "$(base_python)" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
}

# Builds the ferrotel wheel for .venv's Python from this checkout as `pip install .` does (the
# extension, the launcher executables and the Python package in one wheel, by the project's
# own build backend in an isolated build environment) into dist/, and installs it into .venv.
build_ferrotel() {
    make_venv "$VENV" "$ROOT/requirements-dev.txt"
    say "building ferrotel (release)"
    rm -rf "$ROOT/dist"
    "$VENV/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$ROOT/dist" "$ROOT" >&2
    install_ferrotel "$VENV"
}

# install_ferrotel VENV: the wheel in dist/ that fits the venv's Python (pip chooses among the
# release wheels of every version and platform), replacing any earlier build of the same
# version, plus whatever it depends on that the venv lacks.
install_ferrotel() {
    local pip=("$1/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" --force-reinstall --no-deps --no-index --find-links "$ROOT/dist" ferrotel
    "${pip[@]}" --find-links "$ROOT/dist" ferrotel
}

# Debian packages the tests drive for real (the browser for the web UI tests, the Prometheus
# server), installed once when their program is missing. Needs root and apt, as on the CI
# machine.
ensure_debian_package() {
    local program=$1
    shift
    command -v "$program" >/dev/null 2>&1 && return
    say "installing $*"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
