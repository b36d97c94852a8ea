"""Reads ferrotel's console exporter output: `console_spans(text)` parses it (the tests use
it too), and running this file prints the spans of a file as one tree per trace."""

import re
import sys

IDS = r"trace_id +([0-9a-f]{32})\n +span_id +([0-9a-f]{16}) +(?:parent ([0-9a-f]{16})|\(root\))"


def console_spans(text):
    """Spans as dicts: name, trace_id/span_id/parent (hex), kind, status, attributes (raw
    text values), events (names), pid (from the resource)."""
    spans = []
    for block in re.split(r"\n(?=span \")", text):
        head = re.match(r'span "(.*)"\n', block)
        if not head:
            continue
        ids = re.search(IDS, block)
        kind = re.search(r"kind +(\w+) +status (.*)\n", block)
        duration = re.search(r"duration ([0-9.]+) ms", block)
        pid = re.search(r"process\.pid=(\d+)", block)
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
                "duration_ms": float(duration.group(1)) if duration else None,
                "events": re.findall(r"^    \S+Z (\S+)$", block, re.M),
            }
        )
    return spans


def print_trees(spans):
    traces = {}
    for span in spans:
        traces.setdefault(span["trace_id"], []).append(span)
    for trace_id, members in traces.items():
        print(f"trace {trace_id}")
        ids = {s["span_id"] for s in members}
        children = {}
        for s in members:
            children.setdefault(s["parent"] if s["parent"] in ids else None, []).append(s)

        def show(parent, depth, children=children):
            for s in children.get(parent, []):
                code = s["attributes"].get("http.response.status_code") or s["attributes"].get("http.status_code") or ""
                events = f" events: {', '.join(s['events'])}" if s["events"] else ""
                print(f"  {'  ' * depth}{s['name']}  [{s['kind']}] {code} {s['status']}{events}")
                show(s["span_id"], depth + 1)

        show(None, 0)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print_trees(console_spans(f.read()))
