"""ferrotel's console exporter output, parsed: what tests running an app with
`--traces_exporter console` assert on."""

import re

IDS = r"trace_id +([0-9a-f]{32})\n +span_id +([0-9a-f]{16}) +(?:parent ([0-9a-f]{16})|\(root\))"


def console_spans(text):
    """Spans as dicts: name, trace_id/span_id/parent (hex), kind, status, attributes (raw
    text values), events (names), pid (from the resource), scope (its name)."""
    spans = []
    for block in re.split(r"\n(?=span \")", text):
        head = re.match(r'span "(.*)"\n', block)
        if not head:
            continue
        ids = re.search(IDS, block)
        kind = re.search(r"kind +(\w+) +status (.*)\n", block)
        duration = re.search(r"duration ([0-9.]+) ms", block)
        pid = re.search(r"process\.pid=(\d+)", block)
        scope = re.search(r"^  scope +(\S+)", block, re.M)
        attributes = dict(re.findall(r"^    ([\w.-]+) = (.*)$", block.split("  events\n")[0], re.M))
        spans.append(
            {
                "name": head.group(1),
                "trace_id": ids.group(1),
                "span_id": ids.group(2),
                "parent": ids.group(3),
                "kind": kind.group(1),
                "status": kind.group(2),
                "attributes": attributes,
                "pid": int(pid.group(1)) if pid else None,
                "scope": scope.group(1) if scope else None,
                "duration_ms": float(duration.group(1)) if duration else None,
                "events": re.findall(r"^    \S+Z (\S+)$", block, re.M),
            }
        )
    return spans
