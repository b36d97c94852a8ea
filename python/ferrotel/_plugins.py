"""Components of other packages found by entry point, as upstream's SDK finds them
(`opentelemetry_traces_exporter`, `opentelemetry_traces_sampler`, `opentelemetry_propagator`,
...). Imported only when a variable names one: `importlib.metadata` costs start-up time."""

from importlib.metadata import entry_points


def load(group, name):
    """The object entry point `name` of `group` refers to. Raises LookupError naming what is
    installed when there is no such entry point."""
    found = entry_points(group=group)
    for entry_point in found:
        if entry_point.name == name:
            return entry_point.load()
    installed = ", ".join(sorted({ep.name for ep in found})) or "none"
    raise LookupError(f"no {group} entry point named {name!r} is installed (installed: {installed})")


def names(group):
    """The names of the installed entry points of `group`."""
    return sorted({entry_point.name for entry_point in entry_points(group=group)})
