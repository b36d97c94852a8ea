"""AWS X-Ray propagation (`X-Amzn-Trace-Id`), native: ferrotel's propagator reads and writes
the header as upstream's opentelemetry-propagator-aws-xray does for the same inputs (a table
and thousands of mutations of it). (`OTEL_PROPAGATORS=xray` joining two real processes into
one trace is tests/test_propagation.py's.)"""

import json
import random
import textwrap

from support.processes import PYTHON, clean_env, run

VALID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

TABLE = [
    VALID,
    VALID.replace("Sampled=1", "Sampled=0"),
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
    " Parent = 53995c3f42cd8ad8 ; Self=1-abc ;Root=1-5759e988-bd862e3fe1be46a994272793 ;Lineage=a:1|b:2",
    "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000001;Parent=53995c3f42cd8ad8",
    "Root=1-5759e988-bd862e3fe1be46a994272793",
    "Parent=53995c3f42cd8ad8;Sampled=1",
    VALID + ";",
    VALID.replace("Sampled=1", "Sampled=?"),
    VALID + "=1",
    VALID.replace("Root=1", "Root=2"),
    VALID.replace("793;", "79;"),
    VALID.replace("1-5759", "1_5759"),
    VALID.replace("e988-", "e98g-"),
    VALID.replace("ad8;", "ad;"),
    "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
    VALID.replace("53995c3f42cd8ad8", "0000000000000000"),
    VALID.lower(),
    VALID.replace("Root=1-5759e988-bd862e3fe1be46a994272793", "Root=1-5759e988-bd862e3fe1be46a99427279é"),
    "",
    ";",
    "garbage",
]

# Mutations keep away from what Python's int() takes besides hex digits (signs, underscores,
# whitespace, a 0x prefix): upstream parses the ids with it, ferrotel takes hex digits only.
ALPHABET = "0123456789abcdefABCDEF-=;:|RPSLootpaedl?é"

COMPARE = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.propagators.aws import AwsXRayPropagator as Upstream
    from ferrotel.propagate import AwsXRayPropagator as Ours, Propagator

    def read(propagator, header):
        context = trace.get_current_span(propagator.extract({"X-Amzn-Trace-Id": header})).get_span_context()
        return [context.trace_id, context.span_id, int(context.trace_flags)] if context.is_valid else None

    def written(propagator, trace_id, span_id, flags):
        context = trace.SpanContext(trace_id, span_id, True, trace.TraceFlags(flags))
        carrier = {}
        propagator.inject(carrier, trace.set_span_in_context(trace.NonRecordingSpan(context)))
        return carrier

    inputs = json.load(open(sys.argv[1]))
    print(json.dumps({
        "read": [[read(Upstream(), h), read(Ours(), h), read(Propagator(["xray"]), h)] for h in inputs["headers"]],
        "written": [[written(Upstream(), *c), written(Ours(), *c)] for c in inputs["contexts"]],
        "fields": [sorted(Upstream().fields), sorted(Ours().fields)],
    }))
    """
)


def mutations(rng, count):
    found = []
    for _ in range(count):
        text = list(rng.choice(TABLE[:6]))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            action = rng.randrange(3)
            if action == 0 and text:
                del text[min(at, len(text) - 1)]
            elif action == 1:
                text.insert(at, rng.choice(ALPHABET))
            elif at < len(text):
                text[at] = rng.choice(ALPHABET)
        found.append("".join(text))
    return found


def test_headers_read_and_write_as_upstreams(open_sdk_python, tmp):
    rng = random.Random(13)
    headers = TABLE + mutations(rng, 5000)
    contexts = [[rng.getrandbits(128) or 1, rng.getrandbits(64) or 1, rng.randrange(2)] for _ in range(200)]
    (tmp / "inputs.json").write_text(json.dumps({"headers": headers, "contexts": contexts}))
    (tmp / "compare.py").write_text(COMPARE)
    result = run(open_sdk_python, "compare.py", "inputs.json", cwd=tmp)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)

    differ = [
        (h, theirs, ours) for h, (theirs, ours, composite) in zip(headers, found["read"], strict=True) if theirs != ours
    ]
    assert differ == [], differ[:5]
    assert all(ours == composite for _, ours, composite in found["read"])
    assert [w for w in found["written"] if w[0] != w[1]] == []
    assert found["fields"] == [["X-Amzn-Trace-Id"], ["X-Amzn-Trace-Id"]]

    # The table's verdicts, so agreeing is not agreeing on nothing.
    valid = [h for h, (_, ours, _) in zip(TABLE, found["read"][: len(TABLE)], strict=True) if ours is not None]
    assert valid == TABLE[:6]
    assert found["read"][0][1] == [0x5759E988BD862E3FE1BE46A994272793, 0x53995C3F42CD8AD8, 1]
    assert sum(ours is not None for _, ours, _ in found["read"]) > 500, "mutations that stay valid are compared too"
    trace_id, span_id, sampled = contexts[0]
    trace_hex = f"{trace_id:032x}"
    header = f"Root=1-{trace_hex[:8]}-{trace_hex[8:]};Parent={span_id:016x};Sampled={sampled}"
    assert found["written"][0][1] == {"X-Amzn-Trace-Id": header}


def test_the_apis_own_loader_finds_xray_without_other_packages():
    # The API loads OTEL_PROPAGATORS names by entry point when opentelemetry.propagate is
    # first imported, and raises for a name nothing provides: ferrotel provides `xray`.
    source = "from opentelemetry import propagate; print(type(propagate.get_global_textmap()._propagators[0]))"
    result = run(PYTHON, "-c", source, env=clean_env(OTEL_PROPAGATORS="xray"))
    assert result.stdout == "<class 'ferrotel.propagate.AwsXRayPropagator'>\n", result.stderr
