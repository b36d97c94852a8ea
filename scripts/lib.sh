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

# Builds both wheels (extension module and CLI binary) in release mode into dist/ and
# installs them into .venv.
build_ferrotel() {
    make_venv "$VENV" "$ROOT/requirements-dev.txt"
    say "building ferrotel (release)"
    rm -rf "$ROOT/dist"
    (cd "$ROOT" && "$VENV/bin/maturin" build --release --quiet --interpreter "$VENV/bin/python" -o dist) >&2
    (cd "$ROOT/crates/ferrotel-cli" && "$VENV/bin/maturin" build --release --quiet -o "$ROOT/dist") >&2
    install_ferrotel "$VENV"
}

# install_ferrotel VENV: this checkout's wheels, replacing any earlier build, plus whatever
# they depend on that the venv lacks.
install_ferrotel() {
    local pip=("$1/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" --force-reinstall --no-deps "$ROOT"/dist/*.whl
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
