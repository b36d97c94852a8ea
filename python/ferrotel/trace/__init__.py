"""ferrotel's trace SDK behind the opentelemetry-api: the API is the contract, the work
happens in Rust (crates/ferrotel-sdk, crates/ferrotel-python/src/trace).

Importing this module imports the API (it is only imported once user code or an
instrumentor needs tracing, never at interpreter start-up) and binds the API's context
variable and types into the native layer.
"""

import functools
import inspect
import traceback

from opentelemetry import baggage as _baggage_api
from opentelemetry import context as _context_api
from opentelemetry import trace as _trace_api
from opentelemetry.context.context import Context as _Context
from opentelemetry.propagators import textmap as _textmap
from opentelemetry.trace.propagation import _SPAN_KEY

from ferrotel import _lifecycle, _native  # noqa: F401 (_lifecycle: exit and fork)


def _decorate(scope, func):
    """The decorator form of start_as_current_span: a fresh span per call."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args, **kwargs):
            with scope._fresh():
                return await func(*args, **kwargs)

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with scope._fresh():
            return func(*args, **kwargs)

    return wrapper


def _runtime_context_var():
    # The default runtime context is one ContextVar; switching it directly from Rust is the
    # fast path. Any other runtime context is used through the API's attach/detach.
    runtime = _context_api._RUNTIME_CONTEXT
    if type(runtime).__name__ == "ContextVarsRuntimeContext":
        return getattr(runtime, "_current_context", None)
    return None


_native._bind_api(
    {
        "span_key": _SPAN_KEY,
        "context_var": _runtime_context_var(),
        "context_type": _Context,
        "attach": _context_api.attach,
        "detach": _context_api.detach,
        "get_current": _context_api.get_current,
        "span_context_type": _trace_api.SpanContext,
        "trace_flags_type": _trace_api.TraceFlags,
        "span_kind_type": _trace_api.SpanKind,
        "trace_state_type": _trace_api.TraceState,
        "baggage_key": _baggage_api._BAGGAGE_KEY,
        "default_getter": _textmap.default_getter,
        "default_setter": _textmap.default_setter,
        "default_trace_state": _trace_api.DEFAULT_TRACE_STATE,
        "decorate": _decorate,
        "format_exception": traceback.format_exception,
        "suppress_key": _context_api._SUPPRESS_INSTRUMENTATION_KEY,
        "suppress_http_key": _context_api._SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    }
)

# The API and the code written against it type-check these.
_trace_api.Span.register(_native.Span)
_trace_api.Tracer.register(_native.Tracer)
_trace_api.TracerProvider.register(_native.TracerProvider)

TracerProvider = _native.TracerProvider
Span = _native.Span
Tracer = _native.Tracer


__all__ = ["Span", "Tracer", "TracerProvider"]
