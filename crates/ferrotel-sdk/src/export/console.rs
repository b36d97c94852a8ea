//! `OTEL_TRACES_EXPORTER=console`: one readable block per span on standard output;
//! `OTEL_LOGS_EXPORTER=console`: one line per log record (plus its attributes);
//! `OTEL_METRICS_EXPORTER=console`: one block per metric, a line per data point.

use std::fmt::Write as _;

use crate::log::LogData;
use crate::metrics::{Data, MetricData, Number, Temporality};
use crate::pipeline::{ExitControl, ExportResult, Exporter};
use crate::resource::Resource;
use crate::span::{EndedSpan, SpanData, StatusCode};
use crate::value::{Attributes, Value};

/// Writes to any `Write` (stdout by default).
pub struct ConsoleExporter<W: std::io::Write + Send> {
    out: W,
}

impl ConsoleExporter<std::io::Stdout> {
    pub fn stdout() -> Self {
        ConsoleExporter { out: std::io::stdout() }
    }
}

impl<W: std::io::Write + Send> ConsoleExporter<W> {
    pub fn new(out: W) -> Self {
        ConsoleExporter { out }
    }
}

impl<W: std::io::Write + Send> ConsoleExporter<W> {
    fn write(&mut self, text: &str) -> ExportResult {
        match self.out.write_all(text.as_bytes()).and_then(|_| self.out.flush()) {
            Ok(()) => ExportResult::Success,
            Err(e) => ExportResult::Failure(e.to_string()),
        }
    }
}

/// How one item is written.
trait Render {
    fn render(&self, out: &mut String, resource: &Resource);
}

impl Render for EndedSpan {
    fn render(&self, out: &mut String, resource: &Resource) {
        render(out, self, resource);
    }
}

impl Render for LogData {
    fn render(&self, out: &mut String, _: &Resource) {
        render_log(out, self);
    }
}

impl Render for MetricData {
    fn render(&self, out: &mut String, _: &Resource) {
        render_metric(out, self);
    }
}

impl<T: Render, W: std::io::Write + Send> Exporter<T> for ConsoleExporter<W> {
    fn export(&mut self, batch: &[T], resource: &Resource, _: &ExitControl) -> ExportResult {
        let mut text = String::new();
        for item in batch {
            item.render(&mut text, resource);
        }
        self.write(&text)
    }

    fn destination(&self) -> String {
        "standard output".into()
    }
}

fn render_point_attributes(out: &mut String, attributes: &Attributes) {
    out.push_str("  {");
    for (i, (k, v)) in attributes.iter().enumerate() {
        let _ = write!(out, "{}{k}=", if i > 0 { ", " } else { "" });
        render_value(out, v);
    }
    out.push('}');
}

/// `metric NAME kind [unit] (scope)`, then one line per point: `{attributes} value`.
fn render_metric(out: &mut String, metric: &MetricData) {
    let temporality = |t: &Temporality| match t {
        Temporality::Delta => "delta",
        Temporality::Cumulative => "cumulative",
    };
    let kind = match &metric.data {
        Data::Gauge(_) => "gauge".to_owned(),
        Data::Sum {
            temporality: t,
            monotonic,
            ..
        } => format!("sum, {}{}", temporality(t), if *monotonic { ", monotonic" } else { "" }),
        Data::Histogram { temporality: t, .. } => format!("histogram, {}", temporality(t)),
        Data::ExponentialHistogram { temporality: t, .. } => {
            format!("exponential histogram, {}", temporality(t))
        }
    };
    let _ = writeln!(
        out,
        "metric {} ({kind}) [{}] ({})",
        metric.name, metric.unit, metric.scope.name
    );
    match &metric.data {
        Data::Gauge(points) | Data::Sum { points, .. } => {
            for p in points {
                render_point_attributes(out, &p.attributes);
                let _ = match p.value {
                    Number::Int(i) => writeln!(out, " {i}"),
                    Number::Double(d) => writeln!(out, " {d}"),
                };
            }
        }
        Data::Histogram { points, .. } => {
            for p in points {
                render_point_attributes(out, &p.attributes);
                let _ = writeln!(
                    out,
                    " count={} sum={} min={} max={} buckets={:?} bounds={:?}",
                    p.count, p.sum, p.min, p.max, p.bucket_counts, p.bounds
                );
            }
        }
        Data::ExponentialHistogram { points, .. } => {
            for p in points {
                render_point_attributes(out, &p.attributes);
                let _ = writeln!(
                    out,
                    " count={} sum={} min={} max={} scale={} zero_count={} positive={}{:?} negative={}{:?}",
                    p.count,
                    p.sum,
                    p.min,
                    p.max,
                    p.scale,
                    p.zero_count,
                    p.positive.offset,
                    p.positive.bucket_counts,
                    p.negative.offset,
                    p.negative.bucket_counts
                );
            }
        }
    }
}

/// `TIME SEVERITY [scope] body  trace=… span=…`, then the attributes indented.
fn render_log(out: &mut String, record: &LogData) {
    let time = if record.time_ns != 0 {
        record.time_ns
    } else {
        record.observed_ns
    };
    let severity = if record.severity_text.is_empty() {
        format!("SEVERITY{}", record.severity_number)
    } else {
        record.severity_text.clone()
    };
    let _ = write!(out, "log {} {severity} [{}] ", timestamp(time), record.scope.name);
    match &record.body {
        Some(Value::Str(s)) => out.push_str(s),
        Some(other) => render_value(out, other),
        None => {}
    }
    if record.trace_id != 0 {
        let _ = write!(
            out,
            "  trace_id={:032x} span_id={:016x}",
            record.trace_id, record.span_id
        );
    }
    out.push('\n');
    render_attributes(out, &record.attributes, "    ");
}

fn render_value(out: &mut String, value: &Value) {
    let _ = match value {
        Value::Str(s) => write!(out, "{s:?}"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Int(i) => write!(out, "{i}"),
        Value::Double(d) => write!(out, "{d}"),
        Value::StrArray(v) => write!(out, "{v:?}"),
        Value::BoolArray(v) => write!(out, "{v:?}"),
        Value::IntArray(v) => write!(out, "{v:?}"),
        Value::DoubleArray(v) => write!(out, "{v:?}"),
        Value::Bytes(v) => write!(out, "b{:?}", String::from_utf8_lossy(v)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_value(out, item);
            }
            out.push(']');
            Ok(())
        }
        Value::Map(pairs) => {
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{key:?}: ");
                render_value(out, value);
            }
            out.push('}');
            Ok(())
        }
        Value::Empty => write!(out, "None"),
    };
}

fn render_attributes(out: &mut String, attrs: &Attributes, indent: &str) {
    for (k, v) in attrs.iter() {
        let _ = write!(out, "{indent}{k} = ");
        render_value(out, v);
        out.push('\n');
    }
    if attrs.dropped > 0 {
        let _ = writeln!(out, "{indent}({} dropped)", attrs.dropped);
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` from Unix nanoseconds (proleptic Gregorian, UTC).
pub fn timestamp(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn render(out: &mut String, span: &SpanData, resource: &Resource) {
    let _ = writeln!(out, "span {:?}", span.name);
    let _ = writeln!(out, "  trace_id    {:032x}", span.trace_id);
    let _ = write!(out, "  span_id     {:016x}", span.span_id);
    match span.parent_span_id {
        Some(p) => {
            let _ = writeln!(
                out,
                "  parent {p:016x}{}",
                if span.parent_is_remote { " (remote)" } else { "" }
            );
        }
        None => out.push_str("  (root)\n"),
    }
    let status = match span.status.code {
        StatusCode::Unset => "UNSET".to_string(),
        StatusCode::Ok => "OK".to_string(),
        StatusCode::Error if span.status.description.is_empty() => "ERROR".to_string(),
        StatusCode::Error => format!("ERROR: {}", span.status.description),
    };
    let _ = writeln!(out, "  kind        {}   status {status}", span.kind.name());
    let duration_ms = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e6;
    let _ = writeln!(
        out,
        "  start       {}   duration {duration_ms:.3} ms",
        timestamp(span.start_ns)
    );
    if !span.trace_state.is_empty() {
        let _ = writeln!(out, "  tracestate  {}", span.trace_state);
    }
    let scope = &span.scope;
    let _ = writeln!(
        out,
        "  scope       {} {}",
        scope.name,
        scope.version.as_deref().unwrap_or("")
    );
    if !span.attributes.is_empty() || span.attributes.dropped > 0 {
        out.push_str("  attributes\n");
        render_attributes(out, &span.attributes, "    ");
    }
    if !span.events.is_empty() {
        out.push_str("  events\n");
        for event in &span.events {
            let _ = writeln!(out, "    {} {}", timestamp(event.time_ns), event.name);
            render_attributes(out, &event.attributes, "      ");
        }
    }
    if span.dropped_events > 0 {
        let _ = writeln!(out, "    ({} events dropped)", span.dropped_events);
    }
    if !span.links.is_empty() {
        out.push_str("  links\n");
        for link in &span.links {
            let _ = writeln!(out, "    {:032x}/{:016x}", link.trace_id, link.span_id);
            render_attributes(out, &link.attributes, "      ");
        }
    }
    out.push_str("  resource    ");
    for (i, (k, v)) in resource.attributes.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{k}=");
        render_value(out, v);
    }
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456Z");
        assert_eq!(timestamp(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
    }
}
