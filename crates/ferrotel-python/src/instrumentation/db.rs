//! Database statements: each a CLIENT span under the current context (a leaf: never made
//! current), named and attributed by the semantic conventions, the query text recorded with
//! its literal values replaced by `?`, and `db.client.operation.duration`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrotel_config::SemconvMode;
use ferrotel_sdk::metrics::{Instrument, Number, PreparedAttributes};
use ferrotel_sdk::span::SpanKind;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use ferrotel_semconv as semconv;
use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::call_span::owned;
use super::conventions::dict;
use super::http_metrics::histogram;
use super::settings::settings;
use crate::boundary::api;
use crate::boundary::exception::exception_type;
use crate::trace::current::parent_in;
use crate::trace::span::Span;
use crate::trace::tracer::{create, NewSpan, Tracer};

/// `server.address` and `server.port`, when known.
fn server_attributes(address: Option<&str>, port: Option<i64>) -> Vec<(String, Value)> {
    let mut attributes = Vec::new();
    if let Some(address) = address.filter(|a| !a.is_empty()) {
        attributes.push(("server.address".to_owned(), Value::Str(address.to_owned())));
    }
    if let Some(port) = port {
        attributes.push(("server.port".to_owned(), Value::Int(port)));
    }
    attributes
}

/// A statement's text, in the forms drivers take: `str`; `bytes` (as UTF-8, invalid bytes
/// replaced); a composed statement (psycopg's `sql.Composable`) rendered by its own
/// `as_string(cursor)`, as the driver renders it to send. Anything else, or a rendering that
/// fails (the driver then reports why), has no text.
fn statement_text<'a>(query: &'a Bound<'_, PyAny>, cursor: Option<&Bound<'_, PyAny>>) -> Cow<'a, str> {
    if let Ok(text) = query.cast::<PyString>() {
        return Cow::Borrowed(text.to_str().unwrap_or(""));
    }
    if let Ok(bytes) = query.cast::<PyBytes>() {
        return Cow::Owned(String::from_utf8_lossy(bytes.as_bytes()).into_owned());
    }
    let py = query.py();
    let composed = query
        .getattr(intern!(py, "as_string"))
        .and_then(|render| render.call1((cursor.map_or_else(|| py.None().into_bound(py), Bound::clone),)));
    match composed.as_ref().map(|text| text.cast::<PyString>()) {
        Ok(Ok(text)) => Cow::Owned(text.to_string_lossy().into_owned()),
        _ => Cow::Borrowed(""),
    }
}

/// How many distinct statement texts a driver keeps summaries of; past that the cache starts
/// over (an app building statements with literal values inside would otherwise grow it
/// without bound).
const SUMMARIES_KEPT: usize = 1024;

/// What the conventions make of one statement text, computed once per distinct text: the
/// span name, its attributes (without the namespace, which is per connection) and the
/// operation and collection the duration metric is attributed by.
struct Summary {
    name: String,
    attributes: Vec<(String, Value)>,
    operation: Option<String>,
    collection: Option<String>,
    /// The complete attribute sets of this text sent to each database seen so far.
    targets: Mutex<Vec<Arc<Target>>>,
}

/// How many databases (namespace, address, port) a statement text keeps attribute sets for;
/// past that they are built per statement.
const TARGETS_KEPT: usize = 8;

/// One statement text (or key-value store command) sent to one database: its span's
/// attributes and the duration metric's (for a call that did not fail) in the order the
/// metric keeps them, made once.
struct Target {
    namespace: String,
    address: Option<String>,
    port: Option<i64>,
    /// A command's `network.transport`; `None` for SQL statements.
    transport: Option<String>,
    /// Shared by every span of this text and database, not copied into each.
    span_attributes: Arc<[(String, Value)]>,
    metric_attributes: PreparedAttributes,
}

impl Target {
    fn is(&self, to: &Destination<'_>) -> bool {
        self.namespace == to.namespace
            && self.address.as_deref() == to.address
            && self.port == to.port
            && self.transport.as_deref() == to.transport
    }
}

/// Where a statement or command goes: database `namespace` on the server at
/// `address`:`port` (when known), over `transport` (a command's; `None` for SQL).
struct Destination<'a> {
    namespace: &'a str,
    address: Option<&'a str>,
    port: Option<i64>,
    transport: Option<&'a str>,
}

impl<'a> Destination<'a> {
    fn sql(namespace: &'a str, address: Option<&'a str>, port: Option<i64>) -> Self {
        Destination {
            namespace,
            address,
            port,
            transport: None,
        }
    }
}

/// The tracer and `db.client.operation.duration` a driver's statements are recorded with,
/// resolved at the first statement (the app may set its providers after instrumenting).
struct Resolved {
    tracer: Py<PyAny>,
    /// `None` when the tracer is another SDK's: statements then go through `fallback`.
    native: Option<Py<Tracer>>,
    duration: Option<Arc<Instrument>>,
}

/// The statements of one instrumented database driver. `run` executes one statement inside
/// its CLIENT span in a single native call: suppression, the parent, the span (name and
/// attributes from a per-text cache), the driver's method, the error, the end and the
/// duration metric.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct DbStatements {
    system: String,
    /// `setup()` returns `(tracer, duration histogram or None)`; called once.
    setup: Py<PyAny>,
    resolved: PyOnceLock<Resolved>,
    /// Records through another SDK's tracer: `fallback.run(tracer, name, attributes, query,
    /// method, receiver, args)` runs a statement in a span of that name and attributes;
    /// `fallback.start(tracer, name, attributes)` starts a command's span (an object with
    /// `span` and `end(exception)`).
    fallback: Py<PyAny>,
    /// Looked up at every statement by its text: foldhash, not std's SipHash (~150
    /// instructions less per statement).
    summaries: Mutex<HashMap<String, Arc<Summary>, foldhash::fast::RandomState>>,
}

impl DbStatements {
    fn resolve(&self, py: Python<'_>) -> PyResult<Resolved> {
        let (tracer, duration): (Bound<'_, PyAny>, Option<Bound<'_, PyAny>>) =
            self.setup.bind(py).call0()?.extract()?;
        Ok(Resolved {
            native: tracer.cast::<Tracer>().ok().map(|t| t.clone().unbind()),
            duration: histogram(duration.as_ref()),
            tracer: tracer.unbind(),
        })
    }

    fn summary(&self, query: &str) -> Arc<Summary> {
        if let Some(found) = lock(&self.summaries).get(query) {
            return found.clone();
        }
        let (operation, collection) = semconv::sql_summary(query);
        let (name, attributes) = semconv::db_call(&self.system, "", query, settings().db_semconv);
        let summary = Arc::new(Summary {
            name,
            attributes: owned(attributes),
            operation,
            collection,
            targets: Mutex::new(Vec::new()),
        });
        let mut summaries = lock(&self.summaries);
        if summaries.len() >= SUMMARIES_KEPT {
            summaries.clear();
        }
        summaries.insert(query.to_owned(), summary.clone());
        summary
    }

    /// A stored procedure's call, named by the procedure as the conventions name a call
    /// with no operation; its name is also the query text, as upstream records it. Rare
    /// enough not to be cached.
    fn procedure_summary(&self, procedure: &str) -> Arc<Summary> {
        let (_, attributes) = semconv::db_call(&self.system, "", procedure, settings().db_semconv);
        let mut attributes = owned(attributes);
        attributes.push(("db.stored_procedure.name".to_owned(), Value::Str(procedure.to_owned())));
        Arc::new(Summary {
            name: if procedure.is_empty() {
                self.system.clone()
            } else {
                procedure.to_owned()
            },
            attributes,
            operation: None,
            collection: None,
            targets: Mutex::new(Vec::new()),
        })
    }

    /// The attribute sets of `summary`'s statement (or command) sent there, made at its first
    /// statement there.
    fn target(&self, summary: &Summary, to: &Destination<'_>) -> Arc<Target> {
        let found = lock(&summary.targets).iter().find(|t| t.is(to)).cloned();
        if let Some(found) = found {
            return found;
        }
        let target = Arc::new(self.new_target(summary, to));
        let mut targets = lock(&summary.targets);
        if targets.len() < TARGETS_KEPT {
            targets.push(target.clone());
        }
        target
    }

    fn new_target(&self, summary: &Summary, to: &Destination<'_>) -> Target {
        let Destination {
            namespace,
            address,
            port,
            transport,
        } = *to;
        let server = server_attributes(address, port);
        let mut span_attributes = summary.attributes.clone();
        if !namespace.is_empty() {
            span_attributes.push(("db.namespace".to_owned(), Value::Str(namespace.to_owned())));
            // The old conventions' name for it, which upstream's redis instrumentation never set.
            if transport.is_none() && settings().db_semconv == SemconvMode::Duplicate {
                span_attributes.push(("db.name".to_owned(), Value::Str(namespace.to_owned())));
            }
        }
        span_attributes.extend(server.iter().cloned());
        if let Some(transport) = transport.filter(|t| !t.is_empty()) {
            span_attributes.push(("network.transport".to_owned(), Value::Str(transport.to_owned())));
        }
        let metric_attributes = [self.metric_attributes(summary, namespace), server].concat();
        Target {
            namespace: namespace.to_owned(),
            address: address.map(str::to_owned),
            port,
            transport: transport.map(str::to_owned),
            span_attributes: span_attributes.into(),
            metric_attributes: PreparedAttributes::new(metric_attributes),
        }
    }

    /// The operation (a statement or command whose end the caller reports) named `name`
    /// with `target`'s attributes, its span started under `current`; through the fallback
    /// when the tracer is another SDK's.
    fn start_operation<'py>(
        &self,
        py: Python<'py>,
        resolved: &Resolved,
        current: &Bound<'py, PyAny>,
        name: String,
        target: Arc<Target>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(tracer) = &resolved.native else {
            let attributes = dict(py, &target.span_attributes)?;
            return self
                .fallback
                .bind(py)
                .call_method1("start", (&resolved.tracer, name, attributes))
                .map(Some);
        };
        let tracer = tracer.get();
        let parent = parent_in(py, Some(current))?;
        let mut new = NewSpan::instrumentation(name, SpanKind::Client, Vec::new());
        new.shared_attributes = Some(target.span_attributes.clone());
        let operation = DbOperation {
            span: create(py, &tracer.core, &tracer.scope, &tracer.spare_span, parent, None, new)?,
            started: Instant::now(),
            duration: resolved.duration.clone(),
            target,
            ended: AtomicBool::new(false),
        };
        Ok(Some(Bound::new(py, operation)?.into_any()))
    }

    /// What a command's (or pipeline's) span is named and carries whatever its database.
    fn summary_of_command(&self, name: String, operation: Option<String>, text: &str, count: (&str, usize)) -> Summary {
        let mut attributes = vec![("db.system.name".to_owned(), Value::Str(self.system.clone()))];
        let push = |key: &str, value: &str, into: &mut Vec<(String, Value)>| {
            if !value.is_empty() {
                into.push((key.to_owned(), Value::Str(value.to_owned())));
            }
        };
        if let Some(operation) = &operation {
            push("db.operation.name", operation, &mut attributes);
        }
        push("db.query.text", text, &mut attributes);
        attributes.push((
            count.0.to_owned(),
            Value::Int(i64::try_from(count.1).unwrap_or(i64::MAX)),
        ));
        if settings().db_semconv == SemconvMode::Duplicate {
            push("db.system", &self.system, &mut attributes);
            push("db.statement", text, &mut attributes);
        }
        Summary {
            name,
            attributes,
            operation: operation.filter(|o| !o.is_empty()),
            collection: None,
            targets: Mutex::new(Vec::new()),
        }
    }

    /// The summary of a single command, by its text (its name and a `?` per argument), made
    /// once per distinct text.
    fn cached_summary_of_command(&self, args: &Bound<'_, PyTuple>) -> Arc<Summary> {
        let (name, text) = command_summary(args);
        // A text cut at its longest no longer tells the argument count: not cached.
        let cacheable = text.len() < COMMAND_TEXT_MAX - 3;
        if let Some(found) = lock(&self.summaries).get(&text).filter(|_| cacheable) {
            return found.clone();
        }
        let summary =
            Arc::new(self.summary_of_command(name.clone(), Some(name), &text, ("db.redis.args_length", args.len())));
        if !cacheable {
            return summary;
        }
        let mut summaries = lock(&self.summaries);
        if summaries.len() >= SUMMARIES_KEPT {
            summaries.clear();
        }
        summaries.insert(text, summary.clone());
        summary
    }

    fn metric_attributes(&self, summary: &Summary, namespace: &str) -> Vec<(String, Value)> {
        let mut attributes = vec![("db.system.name".to_owned(), Value::Str(self.system.clone()))];
        if !namespace.is_empty() {
            attributes.push(("db.namespace".to_owned(), Value::Str(namespace.to_owned())));
        }
        if let Some(operation) = &summary.operation {
            attributes.push(("db.operation.name".to_owned(), Value::Str(operation.clone())));
        }
        if let Some(collection) = &summary.collection {
            attributes.push(("db.collection.name".to_owned(), Value::Str(collection.clone())));
        }
        attributes
    }
}

#[pymethods]
impl DbStatements {
    #[new]
    fn new(system: String, setup: Py<PyAny>, fallback: Py<PyAny>) -> Self {
        DbStatements {
            system,
            setup,
            resolved: PyOnceLock::new(),
            fallback,
            summaries: Mutex::new(HashMap::default()),
        }
    }

    /// `method(receiver, query, *args)` inside the statement's span, sent to database
    /// `namespace` on the server at `address`:`port` (when known); its result or its
    /// exception, untouched. `procedure`: `query` is the name of a stored procedure the
    /// method calls (DB-API's `callproc`).
    #[pyo3(signature = (receiver, query, args, method, namespace, address=None, port=None, procedure=false))]
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        receiver: &Bound<'py, PyAny>,
        query: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        method: &Bound<'py, PyAny>,
        namespace: &str,
        address: Option<&str>,
        port: Option<i64>,
        procedure: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Statements mostly come with no argument or one (the parameters): those calls
        // build no argument tuple.
        let call = || match args.len() {
            0 => method.call1((receiver, query)),
            1 => method.call1((receiver, query, args.get_item(0)?)),
            _ => {
                let mut all = Vec::with_capacity(args.len() + 2);
                all.extend([receiver.clone(), query.clone()]);
                all.extend(args.iter());
                method.call1(PyTuple::new(py, all)?)
            }
        };
        let resolved = self.resolved.get_or_try_init(py, || self.resolve(py))?;
        let summary_of = || {
            let text = statement_text(query, Some(receiver));
            if procedure {
                self.procedure_summary(&text)
            } else {
                self.summary(&text)
            }
        };
        let Some(tracer) = &resolved.native else {
            let summary = summary_of();
            let attributes = dict(
                py,
                &self
                    .target(&summary, &Destination::sql(namespace, address, port))
                    .span_attributes,
            )?;
            let fallback_args = (
                &resolved.tracer,
                &summary.name,
                attributes,
                query,
                method,
                receiver,
                args,
            );
            return self.fallback.bind(py).call_method1("run", fallback_args);
        };
        let api = api::get(py)?;
        let current = api.current_context(py)?;
        if api.suppressed(py, &current, false) {
            return call();
        }
        let summary = summary_of();
        let target = self.target(&summary, &Destination::sql(namespace, address, port));
        let tracer = tracer.get();
        let parent = parent_in(py, Some(&current))?;
        let mut new = NewSpan::instrumentation(summary.name.clone(), SpanKind::Client, Vec::new());
        new.shared_attributes = Some(target.span_attributes.clone());
        let span = create(py, &tracer.core, &tracer.scope, &tracer.spare_span, parent, None, new)?;
        let started = Instant::now();
        let result = call();
        let mut error_type = None;
        if let Err(error) = &result {
            let exception = error.value(py).as_any();
            if exception.is_instance_of::<PyException>() {
                error_type = Some(exception_type(exception)?);
            }
            span.get().record_error(py, exception)?;
        }
        span.get().finish(py, None);
        if let Some(duration) = &resolved.duration {
            let seconds = Number::Double(started.elapsed().as_secs_f64());
            let now = ferrotel_sdk::now_ns();
            let measured_in = Some(span.get().ids.measured_in());
            match error_type {
                None => duration.record_prepared(seconds, &target.metric_attributes, now, measured_in),
                Some(error_type) => {
                    let mut attributes = target.metric_attributes.to_vec();
                    attributes.push(("error.type".to_owned(), Value::Str(error_type)));
                    duration.record_in(seconds, attributes, now, measured_in);
                }
            }
        }
        result
    }

    /// Starts the span of a statement whose execution the caller awaits (an asyncio
    /// driver's): what `run` records, ended by the returned operation's `end`. `None` when
    /// instrumentation is suppressed in the caller's context.
    /// `cursor`: what a composed statement (psycopg's `sql.Composable`) is rendered with.
    #[pyo3(signature = (query, namespace, address=None, port=None, cursor=None))]
    fn start_statement<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        namespace: &str,
        address: Option<&str>,
        port: Option<i64>,
        cursor: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let resolved = self.resolved.get_or_try_init(py, || self.resolve(py))?;
        let api = api::get(py)?;
        let current = api.current_context(py)?;
        if api.suppressed(py, &current, false) {
            return Ok(None);
        }
        let text = statement_text(query, cursor);
        let summary = self.summary(&text);
        let target = self.target(&summary, &Destination::sql(namespace, address, port));
        self.start_operation(py, resolved, &current, summary.name.clone(), target)
    }

    /// Starts the span of a command (`commands` a tuple of its arguments, the name first) or
    /// of a pipeline (a list of such tuples) sent to the server at `address`:`port` over
    /// `transport` (`tcp`, `unix`), in database `namespace`. `None` when instrumentation is
    /// suppressed in the caller's context.
    #[pyo3(signature = (commands, namespace, address, port, transport))]
    fn start_command<'py>(
        &self,
        py: Python<'py>,
        commands: &Bound<'py, PyAny>,
        namespace: &str,
        address: &str,
        port: Option<i64>,
        transport: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let resolved = self.resolved.get_or_try_init(py, || self.resolve(py))?;
        let api = api::get(py)?;
        let current = api.current_context(py)?;
        if api.suppressed(py, &current, false) {
            return Ok(None);
        }
        let to = Destination {
            namespace,
            address: Some(address).filter(|a| !a.is_empty()),
            port,
            transport: Some(transport),
        };
        let (name, target) = if let Ok(pipeline) = commands.cast::<PyList>() {
            let mut names = Vec::with_capacity(pipeline.len());
            let mut texts = Vec::with_capacity(pipeline.len());
            for command in pipeline.iter() {
                let (name, text) = command_summary(command.cast::<PyTuple>()?);
                names.push(name);
                texts.push(text);
            }
            let name = if names.is_empty() {
                self.system.clone()
            } else {
                names.join(" ")
            };
            // A pipeline's text is rarely sent twice: its sets are made for it alone.
            let count = ("db.redis.pipeline_length", pipeline.len());
            let summary = self.summary_of_command(name, None, &texts.join("\n"), count);
            let target = self.new_target(&summary, &to);
            (summary.name, Arc::new(target))
        } else {
            let summary = self.cached_summary_of_command(commands.cast::<PyTuple>()?);
            let target = self.target(&summary, &to);
            (summary.name.clone(), target)
        };
        self.start_operation(py, resolved, &current, name, target)
    }
}

/// Longest `db.query.text` of a command, as upstream's redis instrumentation trims it.
const COMMAND_TEXT_MAX: usize = 1000;

/// A command's name as text (redis-py passes `str` or `bytes`).
fn command_name(arg: &Bound<'_, PyAny>) -> String {
    if let Ok(bytes) = arg.cast::<pyo3::types::PyBytes>() {
        return String::from_utf8_lossy(bytes.as_bytes()).into_owned();
    }
    arg.str().map(|s| s.to_string()).unwrap_or_default()
}

/// `(name, text)` of one command: its name, and the name followed by a `?` per argument.
fn command_summary(args: &Bound<'_, PyTuple>) -> (String, String) {
    let name = args.get_item(0).map(|a| command_name(&a)).unwrap_or_default();
    let mut text = name.clone();
    for _ in 1..args.len() {
        text.push_str(" ?");
    }
    if text.len() > COMMAND_TEXT_MAX {
        let mut cut = COMMAND_TEXT_MAX - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    (name, text)
}

/// One command (or pipeline of commands) of a key-value store in flight: its CLIENT span
/// and the duration to record at `end`.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct DbOperation {
    span: Py<Span>,
    started: Instant,
    duration: Option<Arc<Instrument>>,
    /// Its attribute sets: the duration's, prepared, for a call that did not fail.
    target: Arc<Target>,
    ended: AtomicBool,
}

#[pymethods]
impl DbOperation {
    /// The span, for the instrumentation's hooks.
    #[getter]
    fn span(&self, py: Python<'_>) -> Py<Span> {
        self.span.clone_ref(py)
    }

    /// Ends the span (once), recording `exception` if the command raised one, and the
    /// duration.
    #[pyo3(signature = (exception=None))]
    fn end(&self, py: Python<'_>, exception: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        if self.ended.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut error_type = None;
        if let Some(exception) = exception {
            if exception.is_instance_of::<PyException>() {
                error_type = Some(exception_type(exception)?);
            }
            self.span.get().record_error(py, exception)?;
        }
        self.span.get().finish(py, None);
        if let Some(duration) = &self.duration {
            let seconds = Number::Double(self.started.elapsed().as_secs_f64());
            let (now, measured_in) = (ferrotel_sdk::now_ns(), Some(self.span.get().ids.measured_in()));
            match error_type {
                None => duration.record_prepared(seconds, &self.target.metric_attributes, now, measured_in),
                Some(error_type) => {
                    let mut attributes = self.target.metric_attributes.to_vec();
                    attributes.push(("error.type".to_owned(), Value::Str(error_type)));
                    duration.record_in(seconds, attributes, now, measured_in);
                }
            }
        }
        Ok(())
    }
}
