"""Typed surface of the Rust extension module (crates/ferrotel-python)."""

from typing import Literal, TypedDict

__version__: str

_Level = Literal["debug", "info", "warning", "error"]
# (entry-point name, module, attribute or None, distribution)
EntryPointSpec = tuple[str, str, str | None, str]

class Plan(TypedDict):
    gevent_patch: bool
    distro: EntryPointSpec | None
    configurator: EntryPointSpec | None
    pre_instrument: list[EntryPointSpec]
    # modules whose import activates the instrumentor; None means at start
    instrumentors: list[tuple[EntryPointSpec, list[str] | None]]
    post_instrument: list[EntryPointSpec]

def initialize(sys_path: list[str]) -> Plan | None:
    """Initialise this process once; None if already done or OTEL_SDK_DISABLED is true."""

def is_initialized() -> bool: ...
def log(level: _Level, message: str) -> None: ...
def log_enabled(level: _Level) -> bool: ...
