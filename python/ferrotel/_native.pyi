"""Typed surface of the Rust extension module (crates/ferrotel-python)."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Self, TypedDict, final

__version__: str

_Level = Literal["debug", "info", "warning", "error"]
# (entry-point name, module, attribute or None, distribution)
EntryPointSpec = tuple[str, str, str | None, str]

class Plan(TypedDict):
    gevent_patch: bool
    distro: EntryPointSpec | None
    configurator: EntryPointSpec | None
    pre_instrument: list[EntryPointSpec]
    # modules whose import activates the instrumentor; None means at start
    instrumentors: list[tuple[EntryPointSpec, list[str] | None]]
    post_instrument: list[EntryPointSpec]

def initialize(sys_path: list[str]) -> Plan | None:
    """Initialise this process once; None if already done or OTEL_SDK_DISABLED is true."""

def is_initialized() -> bool: ...
def log(level: _Level, message: str) -> None: ...
def log_enabled(level: _Level) -> bool: ...
def django_instrument() -> bool:
    """OTEL_PYTHON_DJANGO_INSTRUMENT."""

def excluded_urls(framework: str) -> list[str]:
    """URL patterns the framework's instrumentation skips."""

def asgi_message_events() -> bool:
    """FERROTEL_ASGI_MESSAGE_EVENTS."""

def django_traced_request_attrs() -> list[str]:
    """OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS."""

def start_asgi_request(
    tracer: Any,
    scope: dict[str, Any],
    instruments: tuple[Any, ...] | None = None,
    context_value: tuple[str, Any] | None = None,
) -> ServerRequest | None: ...
def serve_wsgi(
    tracer: Any,
    instruments: tuple[Any, ...],
    environ: dict[str, Any],
    start_response: Any,
    app: Any,
    request_hook: Any = None,
    response_hook: Any = None,
    werkzeug_route: bool = False,
) -> Any:
    """One WSGI request served inside its server span; the app's body back, the end on its close."""

@final
class WsgiStartResponse:
    """The `start_response` handed to a WSGI app: notes the response, then calls the server's."""
    def __call__(self, status: Any, headers: Any, *rest: Any) -> Any: ...

@final
class FastapiOperations:
    """Stands in for FastAPI's `_operation`: its operation spans, made natively."""
    def __new__(
        cls,
        key: str,
        telemetry_type: type,
        no_operation: Any,
        traced_operation: Callable[..., Any],
        expected: tuple[type, ...],
        websocket_disconnect: type,
    ) -> Self: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # keyword-only: name, function=None

@final
class FastapiOperation:
    """One FastAPI operation's span, current inside the `with` block."""
    def __enter__(self) -> None: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool: ...

@final
class TracedSend:
    """The ASGI `send` handed to the app: notes the response start, returns the server's awaitable."""
    def __call__(self, message: Any) -> Any: ...

@final
class BodyCloser:
    """A request's end, installed as (or beside) a WSGI body's `close`."""
    def __call__(self, *args: Any, **kwargs: Any) -> None: ...

@final
class TracedBody:
    """A WSGI body that offered no `close` to ride on, wrapped."""
    def __iter__(self) -> TracedBody: ...
    def __next__(self) -> Any: ...
    def close(self) -> None: ...

def hand_back_body(request: Any, body: Any) -> Any:
    """The WSGI body back to the server, the request's end riding on its close."""

@final
class ServerRequest:
    span: Span
    def response(self, status: str | int, headers: Any = None) -> None: ...
    def traced_send(self, send: Any) -> TracedSend: ...
    def message_event(self, message: Any) -> None: ...
    def end_asgi(self, scope: dict[str, Any]) -> None: ...
    def set_route(self, route: str) -> None: ...
    def record_exception(self, exception: BaseException) -> None: ...
    def end(self, restore_context: bool = True) -> None: ...

def start_client_request(
    tracer: Any,
    method: str,
    url: str,
    headers: Any,
    duration: Any = None,
    old_duration: Any = None,
    body_sizes: tuple[Any, Any, int | None] | None = None,
) -> ClientRequest | None: ...

@final
class ClientRequest:
    @property
    def span(self) -> Span | None: ...
    def response(self, status: int, headers: Any = None, version: int | None = None) -> None: ...
    def record_exception(self, exception: BaseException) -> None: ...
    def end(self) -> None: ...

@final
class DbStatements:
    def __new__(cls, system: str, setup: Callable[[], tuple[Any, Any]], fallback: Callable[..., Any]) -> Self: ...
    def run(
        self,
        receiver: Any,
        query: Any,
        args: tuple[Any, ...],
        method: Callable[..., Any],
        namespace: str,
        address: str | None = None,
        port: int | None = None,
        procedure: bool = False,
    ) -> Any: ...
    def start_statement(
        self,
        query: Any,
        namespace: str,
        address: str | None = None,
        port: int | None = None,
        cursor: Any = None,
    ) -> DbOperation | None: ...
    def start_command(
        self,
        commands: tuple[Any, ...] | list[tuple[Any, ...]],
        namespace: str,
        address: str,
        port: int | None,
        transport: str,
    ) -> DbOperation | None: ...

@final
class DbOperation:
    @property
    def span(self) -> Span: ...
    def end(self, exception: BaseException | None = None) -> None: ...

def start_operation(
    tracer: Any,
    name: str,
    kind: int,
    attributes: Mapping[str, Any] | None = None,
    carrier: Any = None,
    link: bool = False,
    current: bool = True,
) -> Operation | None:
    """A messaging or RPC operation's span of `kind` (the API's SpanKind value), under the
    context `carrier` holds (linked to it, with `link`) or the current one."""

def start_rpc(
    tracer: Any,
    full_method: str | bytes,
    server: bool,
    address: str | None = None,
    metadata: Any = None,
) -> Operation | None:
    """A gRPC call's span (CLIENT, or SERVER under the context `metadata` carries) named and
    attributed from `full_method` and the channel target or peer `address`."""

def rpc_conventions(full_method: str | bytes, server: bool, address: str | None = None) -> tuple[str, dict[str, Any]]:
    """A gRPC call's span name and attributes, for recording through another provider."""

def rpc_status(server: bool, code: Any) -> tuple[int, bool]:
    """A gRPC status code's number and whether it makes this side's span an error."""

@final
class Operation:
    def inject(self, carrier: Any) -> None: ...
    def outgoing_metadata(self, metadata: Any) -> Any: ...
    def end_rpc(self, code: Any, description: Any = None, exception: BaseException | None = None) -> None: ...
    def set_attributes(self, attributes: Mapping[str, Any]) -> None: ...
    def record_exception(self, exception: BaseException) -> None: ...
    def set_error(self, description: str | None = None) -> None: ...
    @property
    def span(self) -> Any: ...
    @property
    def is_recording(self) -> bool: ...
    def end(self) -> None: ...

def logging_settings() -> tuple[bool, str | None, str, str]:
    """(log correlation on, log format, log level, service name) from the environment."""

def variables() -> list[tuple[str, str]]:
    """(flag, variable) for every variable ferrotel reads."""

def _bind_api(namespace: Mapping[str, Any]) -> None: ...
def current_span_ids() -> tuple[str, str, bool] | None:
    """(trace id hex, span id hex, sampled) of the current span, if any."""

def _after_fork_in_child() -> None: ...
def _exit_flush() -> bool: ...
def _arm_sigterm_flush() -> None: ...
def api_misuse_counts() -> dict[str, int]:
    """How many bad API arguments of each kind were coerced or dropped."""

@final
class ConsoleSpanExporter:
    def __new__(cls) -> Self: ...

@final
class InMemorySpanExporter:
    def __new__(cls) -> Self: ...
    def get_finished_spans(self) -> list[dict[str, Any]]: ...
    def clear(self) -> None: ...

@final
class OTLPSpanExporter:
    def __new__(
        cls,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        protocol: str | None = None,
    ) -> Self: ...

@final
class BatchSpanProcessor:
    def __new__(
        cls,
        span_exporter: ConsoleSpanExporter | InMemorySpanExporter | OTLPSpanExporter,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> Self: ...

@final
class SimpleSpanProcessor:
    def __new__(cls, span_exporter: ConsoleSpanExporter | InMemorySpanExporter | OTLPSpanExporter) -> Self: ...

@final
class Span:
    name: str | None
    kind: Any
    def get_span_context(self) -> Any: ...
    def set_attribute(self, key: str, value: Any) -> None: ...
    def set_attributes(self, attributes: Mapping[str, Any]) -> None: ...
    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None: ...
    def add_link(self, context: Any, attributes: Mapping[str, Any] | None = None) -> None: ...
    def update_name(self, name: str) -> None: ...
    def is_recording(self) -> bool: ...
    def set_status(self, status: Any, description: str | None = None) -> None: ...
    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None: ...
    def end(self, end_time: int | None = None) -> None: ...
    def __enter__(self) -> Span: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool: ...

@final
class CurrentSpan:
    def __enter__(self) -> Span: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool: ...
    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]: ...
    def _fresh(self) -> CurrentSpan: ...

@final
class Tracer:
    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: Any = None,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span: ...
    def start_as_current_span(
        self,
        name: str,
        context: Any = None,
        kind: Any = None,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> CurrentSpan: ...

class TracerProvider:
    resource: dict[str, Any]
    sampler_description: str
    def __new__(cls, settings: Mapping[str, str] | None = None) -> Self: ...
    @staticmethod
    def from_environment(settings: Mapping[str, str] | None = None) -> TracerProvider: ...
    def get_tracer(
        self,
        instrumenting_module_name: str | None,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Tracer: ...
    def add_span_processor(self, span_processor: Any) -> None:
        """ferrotel's processors natively; any object with the SDK's SpanProcessor methods from Python."""
    def force_flush(self, timeout_millis: float = 30000.0) -> bool: ...
    def shutdown(self, timeout_millis: float = 30000.0) -> bool: ...
    def stats(self) -> dict[str, int]: ...

def builtin_requirements(name: str) -> list[str]:
    """The library requirements of a built-in instrumentation, as the loader checks them."""

def configurator_actions() -> tuple[bool, bool]:
    """(prometheus scrape endpoint wanted, deprecated logging handler wanted) at start-up."""

def logging_handler() -> tuple[str, bool, int] | None:
    """(who attaches it: "configurator" or "instrumentation", code attributes, level) of the
    root logger's handler, or None when none is wanted."""

@final
class Logger:
    name: str
    def emit(
        self,
        record: Any = None,
        *,
        timestamp: int | None = None,
        observed_timestamp: int | None = None,
        context: Any = None,
        severity_number: Any = None,
        severity_text: str | None = None,
        body: Any = None,
        attributes: Mapping[str, Any] | None = None,
        event_name: str | None = None,
        exception: BaseException | None = None,
    ) -> None: ...
    def enabled(self, *, context: Any = None, severity_number: Any = None, event_name: str | None = None) -> bool: ...

@final
class LoggerProvider:
    exporting: bool
    def __new__(cls, settings: Mapping[str, str] | None = None) -> Self: ...
    def get_logger(
        self,
        name: str | None,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Logger: ...
    def _emit_logging_record(self, record: Any, code_attributes: bool = False) -> None: ...
    def add_log_record_processor(self, processor: Any) -> None:
        """Any object with the SDK's LogRecordProcessor methods (on_emit, force_flush, shutdown)."""
    def force_flush(self, timeout_millis: float = 30000.0) -> bool: ...
    def shutdown(self, timeout_millis: float = 30000.0) -> bool: ...
    def stats(self) -> dict[str, int]: ...

@final
class Counter:
    name: str
    def add(self, amount: float, attributes: Mapping[str, Any] | None = None, context: Any = None) -> None: ...

@final
class UpDownCounter:
    name: str
    def add(self, amount: float, attributes: Mapping[str, Any] | None = None, context: Any = None) -> None: ...

@final
class Histogram:
    name: str
    def record(self, amount: float, attributes: Mapping[str, Any] | None = None, context: Any = None) -> None: ...

@final
class Gauge:
    name: str
    def set(self, amount: float, attributes: Mapping[str, Any] | None = None, context: Any = None) -> None: ...

@final
class ObservableInstrument:
    name: str

@final
class Meter:
    name: str
    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter: ...
    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> UpDownCounter: ...
    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Histogram: ...
    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Gauge: ...
    def create_observable_counter(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> ObservableInstrument: ...
    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> ObservableInstrument: ...
    def create_observable_gauge(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> ObservableInstrument: ...

class MeterProvider:
    exporting: bool
    export_interval_seconds: float
    def __new__(
        cls,
        metric_readers: Iterable[Any] | Mapping[str, str] | None = None,
        resource: Any = None,
        exemplar_filter: Any = None,
        shutdown_on_exit: bool = True,
        views: Sequence[Any] | None = None,
        *,
        settings: Mapping[str, str] | None = None,
    ) -> Self: ...
    def add_metric_reader(self, metric_reader: Any) -> None: ...
    def remove_metric_reader(self, metric_reader: Any) -> None: ...
    def _on_fork_restart_reader(self, restart: Callable[[], Callable[[], None] | None]) -> None: ...
    def get_meter(
        self,
        name: str | None,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Meter: ...
    def _collect_and_export(self) -> bool: ...
    def force_flush(self, timeout_millis: float = 30000.0) -> bool: ...
    def shutdown(self, timeout_millis: float = 30000.0) -> bool: ...
    def stats(self) -> dict[str, int]: ...

def configured_propagators() -> list[Any]:
    """OTEL_PROPAGATORS as propagator objects: native runs and entry points, in order."""

class Propagator:
    fields: set[str]
    def __new__(cls, formats: list[str]) -> Self: ...
    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any: ...
    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None: ...

def error_type(exception: BaseException) -> str:
    """The exception's type as `error.type` gives it (module-qualified unless builtin)."""

@final
class ServerConventions:
    """A request served, as the semantic conventions see it (for recording through another SDK)."""
    def response(self, status: Any, headers: Any = None) -> tuple[dict[str, Any], bool] | None: ...
    def route(self, route: str) -> tuple[str, dict[str, Any]]: ...
    def error_type(self, exception: BaseException) -> str | None: ...
    def duration_attributes(self) -> dict[str, Any]: ...
    def active_attributes(self) -> dict[str, Any]: ...
    def elapsed(self) -> float: ...

@final
class ClientConventions:
    """An outgoing request, as the semantic conventions see it."""
    def response(self, status: int, headers: Any = None, version: int | None = None) -> tuple[dict[str, Any], bool]: ...
    def error_type(self, exception: BaseException) -> str | None: ...
    def duration_attributes(self) -> dict[str, Any]: ...
    def elapsed(self) -> float: ...

def server_conventions(
    request: dict[str, Any], asgi: bool
) -> tuple[ServerConventions, str, dict[str, Any], list[tuple[str, str]]]: ...
def client_conventions(method: str, url: str, headers: Any) -> tuple[ClientConventions, str, dict[str, Any]]: ...
def db_conventions(system: str, namespace: str, query: str) -> tuple[str, dict[str, Any]]: ...
