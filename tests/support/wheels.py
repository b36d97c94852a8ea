"""Builds small real wheels (zip + dist-info) so tests can pip-install throwaway packages
with entry points and requirements, offline and without a build backend."""

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(out_dir, name, version, files, requires=(), entry_points=None):
    """files: {relative path: source}; entry_points: {group: {name: "module:attr"}}."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    contents = {path: text.encode() for path, text in files.items()}
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    if any("extra ==" in r for r in requires):
        extras = sorted({r.split("extra ==")[1].strip().strip("'\"") for r in requires if "extra ==" in r})
        metadata += "".join(f"Provides-Extra: {e}\n" for e in extras)
    contents[f"{info}/METADATA"] = metadata.encode()
    contents[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: ferrotel-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points:
        text = "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in entry_points.items()
        )
        contents[f"{info}/entry_points.txt"] = text.encode()
    record = [_record_line(path, data) for path, data in contents.items()] + [f"{info}/RECORD,,"]
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = Path(out_dir) / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in contents.items():
            zf.writestr(path, data)
    return wheel
