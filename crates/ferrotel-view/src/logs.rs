//! Log records: kept newest last, bounded by a count and by the bytes they hold, queryable by
//! service, severity, text and the trace or span they belong to.

use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::Arc;

use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use serde_json::{json, Value as Json};

use crate::jaeger::{attribute_text, plain_json};
use crate::params::Params;
use crate::size::HeapSize;
use crate::store::Origin;

pub(crate) struct StoredLog {
    record: LogRecord,
    origin: Arc<Origin>,
    /// Bytes charged for this record while it is stored.
    cost: usize,
}

pub(crate) struct LogStore {
    max_records: usize,
    max_bytes: usize,
    records: VecDeque<StoredLog>,
    bytes: usize,
    pub(crate) evicted_records: u64,
}

impl LogStore {
    pub(crate) fn new(max_records: usize, max_bytes: usize) -> Self {
        LogStore {
            max_records: max_records.max(1),
            max_bytes,
            records: VecDeque::new(),
            bytes: 0,
            evicted_records: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Bytes the stored records hold, as `--max-memory` counts them.
    pub(crate) fn memory(&self) -> usize {
        self.bytes
    }

    pub(crate) fn insert(&mut self, batch: Vec<ResourceLogs>) {
        for resource_logs in batch {
            let resource = resource_logs.resource.unwrap_or_default();
            for scope_logs in resource_logs.scope_logs {
                let origin = Origin::new(resource.clone(), scope_logs.scope.unwrap_or_default());
                let origin_share = origin.cost().div_ceil(scope_logs.log_records.len().max(1));
                for record in scope_logs.log_records {
                    let cost = size_of::<StoredLog>() + record.heap_size() + origin_share;
                    self.bytes += cost;
                    self.records.push_back(StoredLog {
                        record,
                        origin: origin.clone(),
                        cost,
                    });
                    while self.records.len() > self.max_records || self.bytes > self.max_bytes {
                        let Some(oldest) = self.records.pop_front() else { break };
                        self.bytes -= oldest.cost;
                        self.evicted_records += 1;
                    }
                }
            }
        }
    }

    /// The matching records, newest first, as plain JSON objects: by arrival, or with
    /// `order=time` by time (the record's own, or when it was observed), which can differ.
    pub(crate) fn search(&self, query: &LogQuery) -> Vec<Json> {
        if !query.by_time {
            return self
                .records
                .iter()
                .rev()
                .filter(|log| query.matches(log))
                .take(query.limit)
                .map(log_json)
                .collect();
        }
        // Records of the same time: the later arrival first.
        let mut matching: Vec<(u64, usize, &StoredLog)> = self
            .records
            .iter()
            .enumerate()
            .filter(|(_, log)| query.matches(log))
            .map(|(arrival, log)| (log.time(), arrival, log))
            .collect();
        let newest_first = |a: &(u64, usize, &StoredLog), b: &(u64, usize, &StoredLog)| (b.0, b.1).cmp(&(a.0, a.1));
        if matching.len() > query.limit && query.limit > 0 {
            matching.select_nth_unstable_by(query.limit - 1, newest_first);
            matching.truncate(query.limit);
        }
        matching.sort_unstable_by(newest_first);
        matching
            .into_iter()
            .take(query.limit)
            .map(|(_, _, log)| log_json(log))
            .collect()
    }
}

impl StoredLog {
    fn time(&self) -> u64 {
        match self.record.time_unix_nano {
            0 => self.record.observed_time_unix_nano,
            time => time,
        }
    }
}

/// `/api/logs` parameters: service, traceID, spanID, minSeverity (OTLP severity number),
/// q (case-insensitive text in the body or severity text), limit, order (arrival or time).
pub(crate) struct LogQuery {
    service: Option<String>,
    trace_id: Option<Vec<u8>>,
    span_id: Option<Vec<u8>>,
    min_severity: i32,
    text: Option<String>,
    limit: usize,
    /// `order=time`: newest first by time rather than by arrival.
    by_time: bool,
}

impl LogQuery {
    pub(crate) fn parse(params: &Params) -> Result<Self, String> {
        let id = |key: &str| {
            params
                .get(key)
                .map(|v| const_hex::decode(v).map_err(|_| format!("{key}: not a hex id: {v}")))
                .transpose()
        };
        let number = |key: &str, default: usize| {
            params.get(key).map_or(Ok(default), |v| {
                v.parse().map_err(|_| format!("{key}: not a number: {v}"))
            })
        };
        Ok(LogQuery {
            service: params.get("service").map(str::to_owned),
            trace_id: id("traceID")?,
            span_id: id("spanID")?,
            min_severity: number("minSeverity", 0)? as i32,
            text: params.get("q").map(str::to_lowercase),
            limit: number("limit", 100)?,
            by_time: match params.get("order") {
                None | Some("arrival") => false,
                Some("time") => true,
                Some(other) => return Err(format!("order: expected time or arrival, got {other}")),
            },
        })
    }

    fn matches(&self, log: &StoredLog) -> bool {
        let record = &log.record;
        self.service.as_ref().is_none_or(|s| *s == log.origin.service)
            && self.trace_id.as_ref().is_none_or(|id| *id == record.trace_id)
            && self.span_id.as_ref().is_none_or(|id| *id == record.span_id)
            && record.severity_number >= self.min_severity
            && self.text.as_ref().is_none_or(|text| {
                let body = record.body.as_ref().map(attribute_text).unwrap_or_default();
                body.to_lowercase().contains(text) || record.severity_text.to_lowercase().contains(text)
            })
    }
}

fn log_json(log: &StoredLog) -> Json {
    let record = &log.record;
    let attributes: serde_json::Map<String, Json> = record
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                plain_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )
        })
        .collect();
    let hex_or_null = |id: &[u8]| {
        if id.is_empty() {
            Json::Null
        } else {
            json!(const_hex::encode(id))
        }
    };
    json!({
        "timeUnixNano": record.time_unix_nano.to_string(),
        "observedTimeUnixNano": record.observed_time_unix_nano.to_string(),
        "severityNumber": record.severity_number,
        "severityText": record.severity_text,
        "eventName": record.event_name,
        "body": plain_json(record.body.as_ref().and_then(|v| v.value.as_ref())),
        "attributes": attributes,
        "traceID": hex_or_null(&record.trace_id),
        "spanID": hex_or_null(&record.span_id),
        "service": log.origin.service,
        "scope": log.origin.scope_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::ScopeLogs;

    fn records(severities: &[i32]) -> Vec<ResourceLogs> {
        let log_records = severities
            .iter()
            .map(|&severity_number| LogRecord {
                severity_number,
                ..Default::default()
            })
            .collect();
        vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    #[test]
    fn keeps_the_newest_records_and_serves_them_newest_first() {
        let mut store = LogStore::new(2, usize::MAX);
        let mut batch = records(&[1, 9, 17]);
        for record in &mut batch[0].scope_logs[0].log_records {
            record.time_unix_nano = 10;
        }
        store.insert(batch);
        assert_eq!((store.len(), store.evicted_records), (2, 1));
        let query = LogQuery::parse(&Params::from_pairs(Vec::new())).unwrap();
        let severities: Vec<_> = store
            .search(&query)
            .iter()
            .map(|r| r["severityNumber"].clone())
            .collect();
        assert_eq!(severities, [17, 9]);
        let by_time = Params::from_pairs(vec![("order".to_owned(), "time".to_owned())]);
        let mut late = records(&[5]);
        late[0].scope_logs[0].log_records[0].time_unix_nano = 1;
        store.insert(late);
        let severities = |query: &LogQuery| -> Vec<Json> {
            store
                .search(query)
                .iter()
                .map(|r| r["severityNumber"].clone())
                .collect()
        };
        // The record that arrived last is the oldest.
        assert_eq!(severities(&query), [5, 17]);
        assert_eq!(severities(&LogQuery::parse(&by_time).unwrap()), [17, 5]);
        let bad = Params::from_pairs(vec![("traceID".to_owned(), "xyz".to_owned())]);
        assert!(LogQuery::parse(&bad).is_err());
    }
}
