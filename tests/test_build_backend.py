"""The build backend's own logic: which options of a wheel build reach the launcher's build, and
when it is linked statically."""

import sys

from support.processes import ROOT

sys.path.insert(0, str(ROOT / "build-backend"))
from ferrotel_build import launcher_options, static_glibc_options  # noqa: E402


def test_a_plain_build_is_a_release_build_tagged_for_this_machine():
    assert launcher_options([]) == ["--release", "--compatibility", "off"]


def test_target_libc_and_checks_reach_the_launcher_but_interpreter_and_features_do_not():
    args = ["--zig", "--target", "x86_64-unknown-linux-musl", "--compatibility", "musllinux_1_2"]
    args += ["--interpreter", "python3.12", "--features", "x", "-j", "2", "--auditwheel=check"]
    assert launcher_options(args) == [
        "--target",
        "x86_64-unknown-linux-musl",
        "--auditwheel",
        "check",
        "--jobs",
        "2",
        "--compatibility",
        "musllinux_1_2",
        "--zig",
        "--release",
    ]


def test_an_explicit_profile_or_manylinux_replaces_the_defaults():
    assert launcher_options(["--profile", "dev", "--manylinux", "2_28"]) == ["--profile", "dev", "--manylinux", "2_28"]
    assert launcher_options(["-r"]) == ["--release", "--compatibility", "off"]


def test_a_glibc_launcher_is_linked_statically_without_zig_and_for_a_named_target():
    gnu, musl = "x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"
    release = ["--zig", "--target", gnu, "--compatibility", "manylinux2014", "--release"]
    assert static_glibc_options(release, gnu) == ["--target", gnu, "--compatibility", "manylinux2014", "--release"]
    # Without --target the build is for the host; naming it keeps the flag off build scripts.
    assert static_glibc_options(["--release", "--compatibility", "off"], gnu) == [
        "--release",
        "--compatibility",
        "off",
        "--target",
        gnu,
    ]
    # musl's target is static already; other systems are left as they are.
    assert static_glibc_options(["--zig", "--target", musl], gnu) is None
    assert static_glibc_options(["--release"], musl) is None
    assert static_glibc_options(["--release"], "aarch64-apple-darwin") is None
