//! `OTEL_PROPAGATORS`: several formats applied in order.

use crate::{b3, baggage, jaeger, traceparent, tracestate, xray, Carrier, RemoteContext};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    TraceContext,
    Baggage,
    B3Single,
    B3Multi,
    Jaeger,
    XRay,
}

impl Format {
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "tracecontext" => Format::TraceContext,
            "baggage" => Format::Baggage,
            "b3" => Format::B3Single,
            "b3multi" => Format::B3Multi,
            "jaeger" => Format::Jaeger,
            "xray" => Format::XRay,
            _ => return None,
        })
    }

    /// The header names this format reads or writes (Jaeger's baggage keys are prefixed,
    /// so only the trace header is listed, as upstream does).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Format::TraceContext => &["traceparent", "tracestate"],
            Format::Baggage => &["baggage"],
            Format::B3Single => &[b3::SINGLE],
            Format::B3Multi => &[b3::TRACE_ID, b3::SPAN_ID, b3::SAMPLED, b3::FLAGS],
            Format::Jaeger => &[jaeger::HEADER],
            Format::XRay => &[xray::HEADER],
        }
    }
}

/// What extraction found. `baggage` is `None` when no baggage format found any header,
/// so the caller keeps the baggage it already has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    pub context: Option<RemoteContext>,
    pub baggage: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Composite {
    pub formats: Vec<Format>,
}

impl Composite {
    pub fn new(formats: Vec<Format>) -> Composite {
        Composite { formats }
    }

    /// Applies each format in order; a later span context overrides an earlier one, and
    /// later baggage entries override earlier ones of the same key.
    pub fn extract(&self, carrier: &dyn Carrier) -> Extracted {
        let mut out = Extracted::default();
        let merge = |entries: Vec<(String, String)>, out: &mut Extracted| {
            let bag = out.baggage.get_or_insert_with(Vec::new);
            for (k, v) in entries {
                bag.retain(|(existing, _)| *existing != k);
                bag.push((k, v));
            }
        };
        for format in &self.formats {
            match format {
                Format::TraceContext => {
                    let parent = carrier.get("traceparent");
                    // More than one traceparent is ambiguous: ignored, as the spec says.
                    if let [value] = parent.as_slice() {
                        if let Some((trace_id, span_id, trace_flags)) = traceparent::parse(value) {
                            let trace_state = tracestate::parse(&carrier.get("tracestate")).unwrap_or_default();
                            out.context = Some(RemoteContext {
                                trace_id,
                                span_id,
                                trace_flags,
                                trace_state,
                            });
                        }
                    }
                }
                Format::Baggage => {
                    let values = carrier.get("baggage");
                    if !values.is_empty() {
                        let entries = baggage::parse(&values).into_iter().map(|e| (e.key, e.value)).collect();
                        merge(entries, &mut out);
                    }
                }
                Format::B3Single | Format::B3Multi => {
                    if let Some(ctx) = b3::extract(carrier) {
                        out.context = Some(ctx);
                    }
                }
                Format::XRay => {
                    if let Some(ctx) = xray::extract(carrier) {
                        out.context = Some(ctx);
                    }
                }
                Format::Jaeger => {
                    if let Some(ctx) = jaeger::extract(carrier) {
                        out.context = Some(ctx);
                    }
                    let bag = jaeger::extract_baggage(carrier);
                    if !bag.is_empty() {
                        merge(bag, &mut out);
                    }
                }
            }
        }
        out
    }

    /// Writes every format's headers for `context` (if valid) and `baggage`.
    pub fn inject(&self, context: Option<&RemoteContext>, bag: &[(String, String)], carrier: &mut dyn Carrier) {
        for format in &self.formats {
            match (format, context) {
                (Format::TraceContext, Some(ctx)) => {
                    carrier.set(
                        "traceparent",
                        traceparent::format(ctx.trace_id, ctx.span_id, ctx.trace_flags),
                    );
                    if !ctx.trace_state.is_empty() {
                        carrier.set("tracestate", tracestate::format(&ctx.trace_state));
                    }
                }
                (Format::Baggage, _) if !bag.is_empty() => {
                    let entries: Vec<baggage::Entry> = bag
                        .iter()
                        .map(|(k, v)| baggage::Entry {
                            key: k.clone(),
                            value: v.clone(),
                            properties: String::new(),
                        })
                        .collect();
                    let header = baggage::format(&entries);
                    if !header.is_empty() {
                        carrier.set("baggage", header);
                    }
                }
                (Format::B3Single, Some(ctx)) => b3::inject_single(ctx, carrier),
                (Format::B3Multi, Some(ctx)) => b3::inject_multi(ctx, carrier),
                (Format::Jaeger, Some(ctx)) => jaeger::inject(ctx, bag, carrier),
                (Format::XRay, Some(ctx)) => xray::inject(ctx, carrier),
                _ => {}
            }
        }
    }

    pub fn fields(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for f in &self.formats {
            for field in f.fields() {
                if !out.contains(field) {
                    out.push(field);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Headers;

    fn all() -> Composite {
        Composite::new(vec![
            Format::TraceContext,
            Format::Baggage,
            Format::B3Multi,
            Format::Jaeger,
        ])
    }

    #[test]
    fn inject_then_extract_round_trips_every_format() {
        let ctx = RemoteContext {
            trace_id: 0x0af7651916cd43dd8448eb211c80319c,
            span_id: 0xb7ad6b7169203331,
            trace_flags: 1,
            trace_state: vec![("congo".into(), "t61rcWkgMzE".into())],
        };
        let bag = vec![("user".to_string(), "alice smith".to_string())];
        for format in [
            Format::TraceContext,
            Format::B3Single,
            Format::B3Multi,
            Format::Jaeger,
            Format::XRay,
        ] {
            let composite = Composite::new(vec![format, Format::Baggage]);
            let mut headers = Headers::default();
            composite.inject(Some(&ctx), &bag, &mut headers);
            let got = composite.extract(&headers);
            let expected_state = if format == Format::TraceContext {
                ctx.trace_state.clone()
            } else {
                vec![]
            };
            assert_eq!(
                got.context,
                Some(RemoteContext {
                    trace_state: expected_state,
                    ..ctx.clone()
                }),
                "{format:?}"
            );
            assert_eq!(got.baggage, Some(bag.clone()), "{format:?}");
        }
    }

    #[test]
    fn later_formats_win_and_invalid_input_is_ignored() {
        let headers = Headers::of(&[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("uber-trace-id", "deadbeef:beef:0:1"),
            ("baggage", "a=1,b=2"),
            ("uberctx-a", "9"),
        ]);
        let got = all().extract(&headers);
        assert_eq!(got.context.unwrap().trace_id, 0xdeadbeef);
        assert_eq!(
            got.baggage,
            Some(vec![("b".into(), "2".into()), ("a".into(), "9".into())])
        );
        let garbage = Headers::of(&[("traceparent", "garbage"), ("tracestate", "a=1"), ("baggage", "%%%")]);
        assert_eq!(
            all().extract(&garbage),
            Extracted {
                context: None,
                baggage: Some(vec![])
            }
        );
        let twice = Headers::of(&[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-01"),
        ]);
        assert_eq!(Composite::new(vec![Format::TraceContext]).extract(&twice).context, None);
    }

    #[test]
    fn invalid_tracestate_keeps_the_traceparent() {
        let headers = Headers::of(&[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("tracestate", "A=1"),
        ]);
        let ctx = Composite::new(vec![Format::TraceContext])
            .extract(&headers)
            .context
            .unwrap();
        assert!(ctx.trace_state.is_empty());
    }

    #[test]
    fn fields_are_listed_once() {
        assert_eq!(
            Composite::new(vec![Format::TraceContext, Format::Baggage, Format::TraceContext]).fields(),
            vec!["traceparent", "tracestate", "baggage"]
        );
    }
}
