//! What stored telemetry costs in memory, estimated from what it allocates: each heap block's
//! capacity plus the allocator's bookkeeping. `--max-memory` bounds these sums, so one client
//! sending huge attributes cannot take the machine's memory however few spans it sends.

use std::mem::size_of;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, EntityRef, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value as Json;

/// The allocator's header and size-class rounding per block, on average (glibc: 8 to 16
/// bytes of header, requests rounded up to 16).
const BLOCK_OVERHEAD: usize = 16;

/// Bytes of one heap block holding `bytes`; nothing when nothing is allocated.
pub(crate) fn block(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        bytes + BLOCK_OVERHEAD
    }
}

/// Heap bytes a value owns beyond its own `size_of`.
pub(crate) trait HeapSize {
    fn heap_size(&self) -> usize;
}

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        block(self.capacity())
    }
}

fn bytes(v: &Vec<u8>) -> usize {
    block(v.capacity())
}

fn list<T: HeapSize>(items: &Vec<T>) -> usize {
    block(items.capacity() * size_of::<T>()) + items.iter().map(HeapSize::heap_size).sum::<usize>()
}

impl<T: HeapSize> HeapSize for Option<T> {
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, HeapSize::heap_size)
    }
}

impl HeapSize for AnyValue {
    fn heap_size(&self) -> usize {
        use any_value::Value as V;
        match &self.value {
            Some(V::StringValue(s)) => s.heap_size(),
            Some(V::BytesValue(b)) => bytes(b),
            Some(V::ArrayValue(array)) => list(&array.values),
            Some(V::KvlistValue(map)) => list(&map.values),
            Some(V::BoolValue(_) | V::IntValue(_) | V::DoubleValue(_) | V::StringValueStrindex(_)) | None => 0,
        }
    }
}

impl HeapSize for KeyValue {
    fn heap_size(&self) -> usize {
        self.key.heap_size() + self.value.heap_size()
    }
}

impl HeapSize for Resource {
    fn heap_size(&self) -> usize {
        list(&self.attributes) + block(self.entity_refs.capacity() * size_of::<EntityRef>())
    }
}

impl HeapSize for InstrumentationScope {
    fn heap_size(&self) -> usize {
        self.name.heap_size() + self.version.heap_size() + list(&self.attributes)
    }
}

impl HeapSize for Event {
    fn heap_size(&self) -> usize {
        self.name.heap_size() + list(&self.attributes)
    }
}

impl HeapSize for Link {
    fn heap_size(&self) -> usize {
        bytes(&self.trace_id) + bytes(&self.span_id) + self.trace_state.heap_size() + list(&self.attributes)
    }
}

impl HeapSize for Span {
    fn heap_size(&self) -> usize {
        bytes(&self.trace_id)
            + bytes(&self.span_id)
            + bytes(&self.parent_span_id)
            + self.trace_state.heap_size()
            + self.name.heap_size()
            + list(&self.attributes)
            + list(&self.events)
            + list(&self.links)
            + self.status.as_ref().map_or(0, |s| s.message.heap_size())
    }
}

impl HeapSize for LogRecord {
    fn heap_size(&self) -> usize {
        self.severity_text.heap_size()
            + self.body.heap_size()
            + list(&self.attributes)
            + bytes(&self.trace_id)
            + bytes(&self.span_id)
            + self.event_name.heap_size()
    }
}

/// serde_json's map is a B-tree: about this much per entry besides the key and value
/// themselves (node headers and spare slots, amortised).
const JSON_MAP_ENTRY_OVERHEAD: usize = 24;

impl HeapSize for Json {
    fn heap_size(&self) -> usize {
        match self {
            Json::Null | Json::Bool(_) | Json::Number(_) => 0,
            Json::String(s) => s.heap_size(),
            Json::Array(items) => list(items),
            Json::Object(map) => map
                .iter()
                .map(|(key, value)| {
                    key.heap_size()
                        + size_of::<String>()
                        + size_of::<Json>()
                        + JSON_MAP_ENTRY_OVERHEAD
                        + value.heap_size()
                })
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_allocated() {
        assert_eq!(String::new().heap_size(), 0);
        assert_eq!(String::with_capacity(100).heap_size(), 100 + BLOCK_OVERHEAD);
        let attribute = KeyValue {
            key: "k".repeat(10),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".repeat(1000))),
            }),
            ..Default::default()
        };
        let span = Span {
            attributes: vec![attribute; 3],
            ..Default::default()
        };
        let per_attribute = (10 + BLOCK_OVERHEAD) + (1000 + BLOCK_OVERHEAD);
        let vector = 3 * size_of::<KeyValue>() + BLOCK_OVERHEAD;
        assert_eq!(span.heap_size(), vector + 3 * per_attribute);
    }
}
