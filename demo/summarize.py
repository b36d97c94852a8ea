"""Prints what a `ferrotel view` received from the demo app: each trace as a tree of spans
(name, kind, HTTP status, span status, events), then the log records and metric series.

Usage: python demo/summarize.py UI_PORT SERVICE"""

import json
import sys
import urllib.request


def get(ui_port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}{path}", timeout=5) as response:
        return json.load(response)


def tags(span):
    return {t["key"]: t["value"] for t in span["tags"]}


def print_tree(trace):
    spans = trace["spans"]
    ids = {s["spanID"] for s in spans}
    children = {}
    for span in sorted(spans, key=lambda s: s["startTime"]):
        parents = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF" and r["spanID"] in ids]
        children.setdefault(parents[0] if parents else None, []).append(span)

    def show(parent, depth):
        for span in children.get(parent, []):
            t = tags(span)
            status = t.get("otel.status_code", "UNSET")
            events = [log["fields"][0]["value"] for log in span["logs"] if log["fields"]]
            code = t.get("http.response.status_code", "")
            shown_events = f" events: {', '.join(map(str, events))}" if events else ""
            print(f"  {'  ' * depth}{span['operationName']}  [{t.get('span.kind', '')}] {code} {status}{shown_events}")
            show(span["spanID"], depth + 1)

    print(f"trace {trace['traceID']}")
    show(None, 0)


def main(ui_port, service):
    traces = get(ui_port, f"/api/traces?service={service}&limit=50")["data"]
    for trace in sorted(traces, key=lambda t: min(s["startTime"] for s in t["spans"])):
        print_tree(trace)
    status = get(ui_port, "/api/status")
    print(f"and {status['logRecords']} log records, {status['metricSeries']} metric series")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
