//! `--db PATH`: every accepted export request, kept in a SQLite file so a restarted viewer
//! comes back with what it had. Queries still run on the in-memory stores, which are rebuilt
//! from the file at start; the file is trimmed oldest-first to the same caps as memory.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, TransactionBehavior};
use tokio::sync::oneshot;

/// Which signal a stored request belongs to; the numbers are what the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Traces = 1,
    Metrics = 2,
    Logs = 3,
}

const KINDS: [Kind; 3] = [Kind::Traces, Kind::Metrics, Kind::Logs];

/// Bumped when the table layout changes, so an old file is refused rather than misread.
const SCHEMA_VERSION: i32 = 1;

/// How many requests may wait for the writer; beyond it clients are asked to retry.
const QUEUE_DEPTH: usize = 256;

/// Items (spans, data points, log records) each signal may keep in the file.
#[derive(Clone, Copy)]
pub(crate) struct Caps {
    pub(crate) spans: u64,
    pub(crate) metric_points: u64,
    pub(crate) log_records: u64,
}

impl Caps {
    fn of(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Traces => self.spans,
            Kind::Metrics => self.metric_points,
            Kind::Logs => self.log_records,
        }
    }
}

struct Entry {
    kind: Kind,
    items: u64,
    body: Vec<u8>,
    written: oneshot::Sender<Result<(), String>>,
}

/// The handle request handlers append through; one writer thread owns the connection.
pub(crate) struct Journal {
    queue: SyncSender<Entry>,
}

/// What the file held at start, oldest first, for the caller to load into memory.
pub(crate) struct Restored {
    pub(crate) batches: Vec<(Kind, Vec<u8>)>,
}

impl Journal {
    pub(crate) fn open(path: &Path, caps: Caps) -> Result<(Journal, Restored), String> {
        let describe = |e: rusqlite::Error| describe_error(path, e);
        let connection = Connection::open(path).map_err(describe)?;
        // rusqlite waits 5 s for a lock by default; a file another viewer holds should be
        // reported at once, not after a silent pause.
        connection.busy_timeout(Duration::ZERO).map_err(describe)?;
        // WAL with NORMAL sync: a commit costs no fsync, and a crash loses at most the last
        // commits, never the file. EXCLUSIVE locking keeps a second viewer off the same file.
        connection
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;",
            )
            .map_err(describe)?;
        let version: i32 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(describe)?;
        let tables: i64 = connection
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(describe)?;
        if tables > 0 && version != SCHEMA_VERSION {
            return Err(format!(
                "{} is not a ferrotel view database (or one from another version); choose another --db PATH",
                path.display()
            ));
        }
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS requests (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     kind INTEGER NOT NULL,
                     items INTEGER NOT NULL,
                     body BLOB NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS requests_by_kind ON requests (kind, id);
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(describe)?;
        let mut writer = Writer {
            connection,
            caps,
            totals: [0; 3],
        };
        let restored = writer.restore().map_err(describe)?;
        let (queue, entries) = mpsc::sync_channel(QUEUE_DEPTH);
        let path_text = path.display().to_string();
        std::thread::Builder::new()
            .name("ferrotel-view-db".into())
            .spawn(move || writer.run(entries, &path_text))
            .map_err(|e| format!("cannot start the --db writer: {e}"))?;
        Ok((Journal { queue }, restored))
    }

    /// Resolves once the request is committed to the file; an error means it was not kept
    /// and the client should retry.
    pub(crate) async fn append(&self, kind: Kind, items: u64, body: Vec<u8>) -> Result<(), String> {
        let (written, done) = oneshot::channel();
        let entry = Entry {
            kind,
            items,
            body,
            written,
        };
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err("the --db file is behind; retry shortly".into()),
            Err(TrySendError::Disconnected(_)) => return Err("the --db writer has stopped".into()),
        }
        done.await.unwrap_or_else(|_| Err("the --db writer has stopped".into()))
    }
}

struct Writer {
    connection: Connection,
    caps: Caps,
    /// Items currently in the file, per kind (indexed by `Kind as usize - 1`).
    totals: [u64; 3],
}

impl Writer {
    fn restore(&mut self) -> rusqlite::Result<Restored> {
        // A file written under larger caps is trimmed to the current ones before loading.
        for kind in KINDS {
            let total: i64 = self.connection.query_row(
                "SELECT coalesce(sum(items), 0) FROM requests WHERE kind = ?1",
                [kind as i64],
                |row| row.get(0),
            )?;
            self.totals[kind as usize - 1] = total as u64;
            self.trim(kind)?;
        }
        let mut statement = self.connection.prepare("SELECT kind, body FROM requests ORDER BY id")?;
        let batches = statement
            .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))?
            .filter_map(|row| match row {
                Ok((kind, body)) => KINDS.into_iter().find(|k| *k as i64 == kind).map(|k| Ok((k, body))),
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Restored { batches })
    }

    fn run(mut self, entries: Receiver<Entry>, path: &str) {
        // Requests that queued up while the last commit ran go into one transaction together.
        while let Ok(first) = entries.recv() {
            let mut pending = vec![first];
            while pending.len() < QUEUE_DEPTH {
                match entries.try_recv() {
                    Ok(entry) => pending.push(entry),
                    Err(_) => break,
                }
            }
            let result = self.write(&pending).map_err(|e| format!("cannot write to {path}: {e}"));
            if let Err(message) = &result {
                eprintln!("ferrotel view: {message}");
            }
            for entry in pending {
                let _ = entry.written.send(result.clone());
            }
        }
    }

    fn write(&mut self, pending: &[Entry]) -> rusqlite::Result<()> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = transaction.prepare("INSERT INTO requests (kind, items, body) VALUES (?1, ?2, ?3)")?;
            for entry in pending {
                insert.execute(params![entry.kind as i64, entry.items as i64, entry.body])?;
            }
        }
        transaction.commit()?;
        for entry in pending {
            self.totals[entry.kind as usize - 1] += entry.items;
        }
        for kind in KINDS {
            self.trim(kind)?;
        }
        Ok(())
    }

    /// Deletes the oldest requests of `kind` while the rest still hold at least the cap, so the
    /// file keeps everything memory can show and at most one request more.
    fn trim(&mut self, kind: Kind) -> rusqlite::Result<()> {
        let cap = self.caps.of(kind);
        let total = &mut self.totals[kind as usize - 1];
        if *total <= cap {
            return Ok(());
        }
        let mut oldest = self
            .connection
            .prepare("SELECT id, items FROM requests WHERE kind = ?1 ORDER BY id")?;
        let mut rows = oldest.query([kind as i64])?;
        let mut last_deleted = None;
        let mut remaining = *total;
        while let Some(row) = rows.next()? {
            let items: u64 = row.get::<_, i64>(1)? as u64;
            if remaining - items < cap {
                break;
            }
            remaining -= items;
            last_deleted = Some(row.get::<_, i64>(0)?);
        }
        drop(rows);
        if let Some(id) = last_deleted {
            self.connection.execute(
                "DELETE FROM requests WHERE kind = ?1 AND id <= ?2",
                params![kind as i64, id],
            )?;
            *total = remaining;
        }
        Ok(())
    }
}

fn describe_error(path: &Path, error: rusqlite::Error) -> String {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            format!(
                "{} is in use by another ferrotel view; stop it or choose another --db PATH",
                path.display()
            )
        }
        Some(ErrorCode::NotADatabase) => format!(
            "{} is not a ferrotel view database; choose another --db PATH",
            path.display()
        ),
        Some(ErrorCode::CannotOpen) => format!("cannot open --db {}: {error}", path.display()),
        _ => format!("--db {}: {error}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(spans: u64) -> Caps {
        Caps {
            spans,
            metric_points: 100,
            log_records: 100,
        }
    }

    fn write(journal: &Journal, kind: Kind, items: u64, body: &[u8]) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(journal.append(kind, items, body.to_vec())).unwrap();
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrotel-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("view.db")
    }

    #[test]
    fn keeps_requests_across_reopen_and_trims_oldest_to_the_cap() {
        let path = temp_path("trim");
        {
            let (journal, restored) = Journal::open(&path, caps(5)).unwrap();
            assert!(restored.batches.is_empty());
            write(&journal, Kind::Traces, 3, b"first");
            write(&journal, Kind::Logs, 1, b"log");
            write(&journal, Kind::Traces, 3, b"second");
            write(&journal, Kind::Traces, 2, b"third");
        }
        // The writer thread owns the connection; wait for it to let the file go.
        let restored = (0..100)
            .find_map(|_| match Journal::open(&path, caps(5)) {
                Ok((_, restored)) => Some(restored),
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
            })
            .expect("the file is released");
        let bodies: Vec<(Kind, &[u8])> = restored.batches.iter().map(|(k, b)| (*k, b.as_slice())).collect();
        assert_eq!(
            bodies,
            [
                (Kind::Logs, &b"log"[..]),
                (Kind::Traces, b"second"),
                (Kind::Traces, b"third")
            ]
        );
    }

    #[test]
    fn refuses_a_file_that_is_not_ours() {
        let path = temp_path("foreign");
        std::fs::write(&path, b"definitely not sqlite, just some text that is long enough").unwrap();
        let error = Journal::open(&path, caps(5)).err().unwrap();
        assert!(error.contains("is not a ferrotel view database"), "{error}");
    }
}
