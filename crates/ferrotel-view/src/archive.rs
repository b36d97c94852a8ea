//! Traces saved with Jaeger's archive call (`POST /api/archive/{id}`): kept after the store
//! evicts them, within their own byte limit, the oldest saved going first.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::store::{StoredSpan, TraceId};

pub(crate) struct Archive {
    max_bytes: usize,
    bytes: usize,
    traces: VecDeque<(TraceId, Vec<Arc<StoredSpan>>, usize)>,
}

impl Archive {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Archive {
            max_bytes,
            bytes: 0,
            traces: VecDeque::new(),
        }
    }

    /// Saves (or re-saves, with the spans that arrived since) a trace; false when it is larger
    /// than the whole archive.
    pub(crate) fn save(&mut self, id: TraceId, spans: Vec<Arc<StoredSpan>>) -> bool {
        // Charged in full even while the store still holds the same spans: the archive must
        // stay within its limit once they are evicted there.
        let cost: usize = spans.iter().map(|s| s.cost()).sum();
        if cost > self.max_bytes {
            return false;
        }
        if let Some(at) = self.traces.iter().position(|(saved, _, _)| *saved == id) {
            if let Some((_, _, old_cost)) = self.traces.remove(at) {
                self.bytes -= old_cost;
            }
        }
        self.bytes += cost;
        self.traces.push_back((id, spans, cost));
        while self.bytes > self.max_bytes {
            let Some((_, _, oldest)) = self.traces.pop_front() else {
                break;
            };
            self.bytes -= oldest;
        }
        true
    }

    pub(crate) fn trace(&self, id: &TraceId) -> Option<&[Arc<StoredSpan>]> {
        self.traces
            .iter()
            .find(|(saved, _, _)| saved == id)
            .map(|(_, spans, _)| spans.as_slice())
    }

    pub(crate) fn len(&self) -> usize {
        self.traces.len()
    }
}
