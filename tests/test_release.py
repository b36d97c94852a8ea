"""The release artefacts scripts/release leaves in dist/: one sdist that builds everything, and a
wheel per supported CPython for manylinux2014 and musllinux_1_2, each holding what the README
promises (the launcher executables, the extension, the Python package, the entry points)."""

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import zipfile

import pytest
import tomllib
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from support.dist import VERSION, release_wheel
from support.processes import BIN, ROOT, run

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
# The tag auditwheel reports for each libc's wheels.
PLATFORMS = {"gnu": "manylinux_2_17_x86_64", "musl": "musllinux_1_2_x86_64"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DIST = ROOT / "dist"
DF_STATIC_TLS = 0x10  # the ELF dynamic section's DT_FLAGS bit


def tracked(pattern):
    """Files git tracks under the checkout matching a pathspec."""
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


# The CPython versions scripts/release built musl wheels for: all unless told fewer (scripts/test
# builds one, see there).
MUSL_PYTHONS = os.environ.get("FERROTEL_RELEASE_MUSL_PYTHONS", " ".join(PYTHONS)).split()
WHEELS = [(python, "gnu") for python in PYTHONS] + [(python, "musl") for python in MUSL_PYTHONS]


def test_dist_holds_exactly_the_sdist_and_a_wheel_per_python_and_platform():
    expected = {f"ferrotel-{VERSION}.tar.gz"} | {release_wheel(p, t).name for p, t in WHEELS}
    assert {f.name for f in DIST.iterdir()} == expected


def test_the_sdist_holds_every_crate_the_lock_file_and_the_build_backend():
    with tarfile.open(DIST / f"ferrotel-{VERSION}.tar.gz") as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    # Every workspace crate is needed (the extension's and the launcher's), whole.
    assert set(tracked("crates")) | set(tracked("python")) <= names
    assert {"Cargo.toml", "Cargo.lock", "pyproject.toml", "build-backend/ferrotel_build.py"} <= names


@pytest.mark.parametrize("python", PYTHONS)
def test_auditwheel_confirms_the_manylinux_tag(python):
    # No symbol newer than glibc 2.17, no library outside the manylinux2014 set.
    report = json.loads(run(BIN / "auditwheel", "show", "--json", release_wheel(python, "gnu")).stdout)
    assert (report["overall_tag"], report["external_libs"], report["unsupported_isa"]) == (PLATFORMS["gnu"], {}, False)


def elf_links(data):
    """(DT_NEEDED names, versioned symbol requirements, program interpreter) of an ELF file."""
    elf = ELFFile(io.BytesIO(data))
    needed, versions = [], set()
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            needed += [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
        elif isinstance(section, GNUVerNeedSection):
            versions |= {aux.name for _, auxes in section.iter_versions() for aux in auxes}
    interpreter = [s.get_interp_name() for s in elf.iter_segments() if s.header.p_type == "PT_INTERP"]
    return needed, versions, interpreter


def dynamic_imports(data):
    """Names of the undefined (imported) dynamic symbols of an ELF file."""
    elf = ELFFile(io.BytesIO(data))
    table = elf.get_section_by_name(".dynsym")
    return {s.name for s in table.iter_symbols() if s["st_shndx"] == "SHN_UNDEF" and s.name}


@pytest.mark.parametrize("python", PYTHONS)
def test_the_manylinux_extension_unwinds_with_the_systems_libgcc_s(python):
    # glibc's pthread_exit (how CPython ends a thread wanting the GIL during finalization)
    # unwinds with libgcc_s; the extension's frames must be unwound by that same unwinder,
    # not by one zig linked in statically (tests/test_exit_and_accounting.py shows the crash).
    with zipfile.ZipFile(release_wheel(python, "gnu")) as archive:
        (extension,) = [n for n in archive.namelist() if n.startswith("ferrotel/_native.") and n.endswith(".so")]
        data = archive.read(extension)
    needed, _, _ = elf_links(data)
    assert "libgcc_s.so.1" in needed
    assert {"_Unwind_RaiseException", "_Unwind_Resume", "_Unwind_GetIP"} <= dynamic_imports(data)


@pytest.mark.parametrize("python,libc", WHEELS)
def test_the_extension_takes_no_static_tls(python, libc):
    # DF_STATIC_TLS: loaded with dlopen, the extension would take its whole TLS block from
    # the libc's small static reserve, which other libraries the app loads later may need
    # (tests/test_transparency.py shows the failure).
    with zipfile.ZipFile(release_wheel(python, libc)) as archive:
        (extension,) = [n for n in archive.namelist() if n.startswith("ferrotel/_native.") and n.endswith(".so")]
        elf = ELFFile(io.BytesIO(archive.read(extension)))
    dynamic = next(s for s in elf.iter_sections() if isinstance(s, DynamicSection))
    flags = sum(tag.entry.d_val for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_FLAGS")
    assert not flags & DF_STATIC_TLS


@pytest.mark.parametrize("python", MUSL_PYTHONS)
def test_the_musllinux_wheel_needs_nothing_but_musl(python):
    # auditwheel judges musl wheels only on a musl machine (here it resolves `libc.so` to
    # glibc's linker script, or accepts only Alpine's file name for musl's libc), so the
    # musllinux_1_2 policy is checked on the ELF files directly: musl's libc is the only
    # library (zig records it as `libc.so`, which musl's loader resolves to itself), and no
    # glibc symbol version is referenced. maturin's own musllinux check passed at build time.
    with zipfile.ZipFile(release_wheel(python, "musl")) as archive:
        elves = {n: archive.read(n) for n in archive.namelist() if archive.read(n)[:4] == b"\x7fELF"}
    assert len(elves) == 3
    for name, data in elves.items():
        needed, versions, interpreter = elf_links(data)
        if "/scripts/" in name:
            # The launcher is static: it runs on any Linux.
            assert (needed, versions, interpreter) == ([], set(), []), name
        else:
            assert (needed, versions, interpreter) == (["libc.so"], set(), []), name


@pytest.mark.parametrize("python,libc", WHEELS)
def test_the_wheel_holds_launcher_extension_package_and_entry_points(python, libc):
    wheel = release_wheel(python, libc)
    cp = python.replace(".", "")
    data, info = f"ferrotel-{VERSION}.data", f"ferrotel-{VERSION}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        entries = {i.filename: i for i in archive.infolist()}
        read = archive.read

        # RECORD lists every other file with its real hash and size.
        record = {}
        for line in read(f"{info}/RECORD").decode().splitlines():
            name, digest, size = line.rsplit(",", 2)
            record[name] = (digest, size)
        assert record.pop(f"{info}/RECORD") == ("", "")
        assert record.keys() == entries.keys() - {f"{info}/RECORD"}
        for name, (digest, size) in record.items():
            data_bytes = read(name)
            actual = base64.urlsafe_b64encode(hashlib.sha256(data_bytes).digest()).rstrip(b"=").decode()
            assert (digest, size) == (f"sha256={actual}", str(len(data_bytes))), name

        # The launcher: two native executables installed on PATH, no Python console scripts.
        scripts = {n for n in entries if n.startswith(f"{data}/")}
        assert scripts == {f"{data}/scripts/ferrotel", f"{data}/scripts/ferrotel-instrument"}
        for name in scripts:
            assert read(name)[:4] == b"\x7fELF"
            assert entries[name].external_attr >> 16 & 0o777 == 0o755
        assert "console_scripts" not in read(f"{info}/entry_points.txt").decode()

        # The extension for this CPython and libc, and the Python package as in the checkout.
        # (CPython before 3.11 spelled its musl extension suffix like glibc's.)
        suffix = "gnu" if libc == "gnu" or python == "3.10" else "musl"
        assert f"ferrotel/_native.cpython-{cp}-x86_64-linux-{suffix}.so" in entries
        package = {name.removeprefix("python/") for name in tracked("python/ferrotel")}
        assert package <= entries.keys()
        top = {name.split("/")[0] for name in entries}
        assert top == {"ferrotel", data, info}

        # Metadata: the one dependency, the versions, the entry points the loader relies on.
        metadata = read(f"{info}/METADATA").decode()
        assert re.findall(r"^Requires-Dist: (.*)$", metadata, re.M) == PYPROJECT["project"]["dependencies"]
        assert f"Requires-Python: {PYPROJECT['project']['requires-python']}" in metadata
        assert f"Programming Language :: Python :: {python}" in metadata
        wheel_tags = re.findall(r"^Tag: (.*)$", read(f"{info}/WHEEL").decode(), re.M)
        assert {t.split("-")[2] for t in wheel_tags} == set(wheel.name.removesuffix(".whl").split("-")[4].split("."))
        entry_points = {}
        group = None
        for line in read(f"{info}/entry_points.txt").decode().splitlines():
            if line.startswith("["):
                group = line.strip("[]")
            elif "=" in line:
                key, value = (part.strip() for part in line.split("=", 1))
                entry_points.setdefault(group, {})[key] = value
        assert entry_points == PYPROJECT["project"]["entry-points"]


@pytest.mark.parametrize("python,libc", WHEELS)
def test_the_launcher_is_statically_linked_on_every_platform(python, libc):
    # Nothing for the dynamic loader to do before the launcher execs Python (a third of its
    # cost when it was linked dynamically), and no libc version it depends on.
    with zipfile.ZipFile(release_wheel(python, libc)) as archive:
        for name in (
            f"ferrotel-{VERSION}.data/scripts/ferrotel",
            f"ferrotel-{VERSION}.data/scripts/ferrotel-instrument",
        ):
            assert elf_links(archive.read(name)) == ([], set(), []), name


@pytest.mark.parametrize("libc", PLATFORMS)
def test_the_launcher_of_each_platform_runs_here(libc, tmp):
    # Both launchers are statically linked, so the musl one runs on this glibc machine too.
    python = next(p for p, built_for in WHEELS if built_for == libc)
    with zipfile.ZipFile(release_wheel(python, libc)) as archive:
        archive.extract(f"ferrotel-{VERSION}.data/scripts/ferrotel", tmp)
    launcher = tmp / f"ferrotel-{VERSION}.data/scripts/ferrotel"
    launcher.chmod(0o755)
    result = run(launcher, "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"ferrotel {VERSION}")
