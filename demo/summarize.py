"""Prints the spans a console exporter wrote (a stream of JSON objects) as a tree per trace."""

import json
import sys


def spans(text):
    decoder, i = json.JSONDecoder(), 0
    while (start := text.find("{", i)) != -1:
        try:
            obj, i = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict) and "context" in obj:
            yield obj


def main(path):
    by_trace = {}
    for span in spans(open(path).read()):
        by_trace.setdefault(span["context"]["trace_id"], []).append(span)
    for trace_id, members in by_trace.items():
        print(f"trace {trace_id}")
        ids = {s["context"]["span_id"] for s in members}
        children = {}
        for s in members:
            parent = s["parent_id"] if s["parent_id"] in ids else None
            children.setdefault(parent, []).append(s)

        def show(parent, depth):
            for s in sorted(children.get(parent, []), key=lambda s: s["start_time"]):
                attrs = s["attributes"]
                detail = attrs.get("http.response.status_code") or attrs.get("http.status_code") or ""
                status = s["status"]["status_code"]
                print(f"  {'  ' * depth}{s['name']}  [{s['kind'].removeprefix('SpanKind.')}] {detail} {status}")
                show(s["context"]["span_id"], depth + 1)

        show(None, 0)


if __name__ == "__main__":
    main(sys.argv[1])
