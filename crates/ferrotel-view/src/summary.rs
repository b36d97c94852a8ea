//! A trace in one line: its root, time range, span and error counts, services. The trace
//! list (`/api/trace-summaries`) and the v3 API's trace summaries are drawn from it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use crate::search::status_of;
use crate::store::StoredSpan;

pub(crate) struct Summary<'a> {
    /// The span without a parent; with the root missing (not yet arrived, or evicted), the
    /// earliest span whose parent is absent stands in.
    pub(crate) root: Option<&'a StoredSpan>,
    pub(crate) root_missing: bool,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    pub(crate) span_count: usize,
    pub(crate) error_count: usize,
    /// Spans whose parent was not received (the root aside).
    pub(crate) orphan_count: usize,
    /// Per service, sorted: spans and spans in error.
    pub(crate) services: BTreeMap<&'a str, (usize, usize)>,
}

impl<'a> Summary<'a> {
    pub(crate) fn of(spans: &'a [Arc<StoredSpan>]) -> Self {
        let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span.span_id.as_slice()).collect();
        let parentless = || spans.iter().filter(|s| !ids.contains(s.span.parent_span_id.as_slice()));
        let root = parentless()
            .min_by_key(|s| (!s.span.parent_span_id.is_empty(), s.span.start_time_unix_nano))
            .map(|s| &**s);
        let mut services: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut error_count = 0;
        for stored in spans {
            let error = status_of(stored) == StatusCode::Error;
            error_count += usize::from(error);
            let entry = services.entry(stored.origin.service.as_str()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(error);
        }
        let root_missing = root.is_none_or(|s| !s.span.parent_span_id.is_empty());
        Summary {
            root,
            root_missing,
            start_ns: spans.iter().map(|s| s.span.start_time_unix_nano).min().unwrap_or(0),
            end_ns: spans.iter().map(|s| s.span.end_time_unix_nano).max().unwrap_or(0),
            span_count: spans.len(),
            error_count,
            orphan_count: parentless().filter(|s| !s.span.parent_span_id.is_empty()).count()
                - usize::from(root_missing && root.is_some()),
            services,
        }
    }
}
