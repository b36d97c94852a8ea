"""redis spans: one CLIENT span per command sent by a client (`Redis`, `RedisCluster` and
their asyncio counterparts, a pipeline's immediate commands) and one per pipeline executed,
named by the command (`GET`; a pipeline by its commands, `SET GET`), the query text being
the command with a `?` per argument, as upstream's instrumentation records it. Span,
attributes and `db.client.operation.duration` are native (`DbStatements.start_command`).

`RedisInstrumentor.instrument_client(client, ...)` traces one client (sync, asyncio or
cluster) and the pipelines it makes, with or without the global instrumentation; a command
gets one span either way.

Hooks take upstream's arguments: `request_hook(span, client, args, kwargs)` before a command
is sent, `response_hook(span, client, response)` after it (and after a pipeline); an
exception a hook raises is logged, not passed on."""

import contextvars
import inspect
import logging

from ferrotel.instrumentation import Instrumentor
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.redis"
_logger = logging.getLogger(__name__)

# A command sent from inside another traced one (a cluster client's node client) adds no span.
_inside_command = contextvars.ContextVar("ferrotel_inside_redis_command", default=False)
_NO_TARGET = ("", "", None, "")


def _target(client):
    """`(namespace, address, port, transport)` of a client's server, from its pool's
    connection arguments, read once per pool (a cluster client has none to read)."""
    pool = getattr(client, "connection_pool", None)
    target = getattr(pool, "__dict__", {}).get("_ferrotel_target")
    if target is None:
        arguments = getattr(pool, "connection_kwargs", None)
        # No pool, or one standing in for redis-py's (a test's mock): nothing to read.
        if not isinstance(arguments, dict):
            return _NO_TARGET
        namespace = str(arguments.get("db") or 0)
        if "path" in arguments:
            target = (namespace, str(arguments["path"]), None, "unix")
        else:
            try:
                port = int(arguments.get("port", 6379))
            except (TypeError, ValueError):
                port = None
            target = (namespace, str(arguments.get("host", "localhost")), port, "tcp")
        pool._ferrotel_target = target
    return target


def _pipeline_commands(pipeline):
    """The argument tuples of a pipeline's queued commands (the cluster pipeline of redis-py
    6 and later queues them on its execution strategy)."""
    strategy = getattr(pipeline, "_execution_strategy", None)
    stack = None
    if strategy is not None:
        stack = getattr(strategy, "command_queue", None)
        if stack is None:
            stack = getattr(strategy, "_command_queue", None)
    if stack is None:
        stack = getattr(pipeline, "command_stack", None)
    if stack is None:
        stack = getattr(pipeline, "_command_stack", ())
    return [tuple(c.args) if hasattr(c, "args") else tuple(c[0]) for c in stack]


def _call_hook(hook, *args):
    try:
        hook(*args)
    except Exception:
        _logger.warning("redis instrumentation hook %r raised", hook, exc_info=True)


class _Tracing:
    def __init__(self, tracer_provider, meter_provider, request_hook, response_hook):
        self.statements = statements("redis", SCOPE, tracer_provider, meter_provider)
        self.request_hook = request_hook if callable(request_hook) else None
        self.response_hook = response_hook if callable(response_hook) else None

    def start(self, commands, client):
        if _inside_command.get():
            return None
        return self.statements.start_command(commands, *_target(client))

    def command(self, execute):
        tracing = self

        def execute_command(client, *args, **kwargs):
            operation = tracing.start(args, client)
            if operation is None:
                return execute(client, *args, **kwargs)
            if tracing.request_hook is not None:
                _call_hook(tracing.request_hook, operation.span, client, args, kwargs)
            inside = _inside_command.set(True)
            try:
                response = execute(client, *args, **kwargs)
            except BaseException as exc:
                operation.end(exc)
                raise
            finally:
                _inside_command.reset(inside)
            if tracing.response_hook is not None:
                _call_hook(tracing.response_hook, operation.span, client, response)
            operation.end()
            return response

        return execute_command

    def async_command(self, execute):
        tracing = self

        async def execute_command(client, *args, **kwargs):
            operation = tracing.start(args, client)
            if operation is None:
                return await execute(client, *args, **kwargs)
            if tracing.request_hook is not None:
                _call_hook(tracing.request_hook, operation.span, client, args, kwargs)
            inside = _inside_command.set(True)
            try:
                response = await execute(client, *args, **kwargs)
            except BaseException as exc:
                operation.end(exc)
                raise
            finally:
                _inside_command.reset(inside)
            if tracing.response_hook is not None:
                _call_hook(tracing.response_hook, operation.span, client, response)
            operation.end()
            return response

        return execute_command

    def pipeline(self, execute, watch_error):
        tracing = self

        def execute_pipeline(pipeline, *args, **kwargs):
            operation = tracing.start(_pipeline_commands(pipeline), pipeline)
            if operation is None:
                return execute(pipeline, *args, **kwargs)
            inside = _inside_command.set(True)
            try:
                response = execute(pipeline, *args, **kwargs)
            except BaseException as exc:
                # A watched key changed: the app retries; not a failure of the call.
                operation.end(None if isinstance(exc, watch_error) else exc)
                raise
            finally:
                _inside_command.reset(inside)
            if tracing.response_hook is not None:
                _call_hook(tracing.response_hook, operation.span, pipeline, response)
            operation.end()
            return response

        return execute_pipeline

    def async_pipeline(self, execute, watch_error):
        tracing = self

        async def execute_pipeline(pipeline, *args, **kwargs):
            operation = tracing.start(_pipeline_commands(pipeline), pipeline)
            if operation is None:
                return await execute(pipeline, *args, **kwargs)
            inside = _inside_command.set(True)
            try:
                response = await execute(pipeline, *args, **kwargs)
            except BaseException as exc:
                operation.end(None if isinstance(exc, watch_error) else exc)
                raise
            finally:
                _inside_command.reset(inside)
            if tracing.response_hook is not None:
                _call_hook(tracing.response_hook, operation.span, pipeline, response)
            operation.end()
            return response

        return execute_pipeline


def _patch_targets():
    """(class, method name, kind) of everything traced, for the installed redis-py."""
    import redis
    import redis.client

    targets = [
        (redis.Redis, "execute_command", "command"),
        (redis.client.Pipeline, "execute", "pipeline"),
        (redis.client.Pipeline, "immediate_execute_command", "command"),
    ]
    try:
        import redis.cluster

        targets += [
            (redis.cluster.RedisCluster, "execute_command", "command"),
            (redis.cluster.ClusterPipeline, "execute", "pipeline"),
        ]
    except ImportError:
        pass
    try:
        import redis.asyncio
        import redis.asyncio.client

        targets += [
            (redis.asyncio.Redis, "execute_command", "async_command"),
            (redis.asyncio.client.Pipeline, "execute", "async_pipeline"),
            (redis.asyncio.client.Pipeline, "immediate_execute_command", "async_command"),
        ]
        import redis.asyncio.cluster

        targets += [
            (redis.asyncio.cluster.RedisCluster, "execute_command", "async_command"),
            (redis.asyncio.cluster.ClusterPipeline, "execute", "async_pipeline"),
        ]
    except ImportError:
        pass
    return targets


class RedisInstrumentor(Instrumentor):
    name = "redis"

    def _instrument(self, **kwargs):
        import redis

        tracing = _Tracing(
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            kwargs.get("request_hook"),
            kwargs.get("response_hook"),
        )
        self._originals = []
        for owner, method, kind in _patch_targets():
            original = owner.__dict__.get(method)
            if original is None:
                continue
            self._originals.append((owner, method, original))
            if kind in ("pipeline", "async_pipeline"):
                traced = getattr(tracing, kind)(original, redis.WatchError)
            else:
                traced = getattr(tracing, kind)(original)
            setattr(owner, method, traced)

    def _uninstrument(self, **kwargs):
        for owner, method, original in self._originals:
            setattr(owner, method, original)
        self._originals = []

    @staticmethod
    def instrument_client(client, tracer_provider=None, request_hook=None, response_hook=None, meter_provider=None):
        """Traces the commands and pipelines of `client` (`Redis`, `RedisCluster` or their
        asyncio counterparts) with these hooks, whether or not redis is instrumented."""
        _instrument_client(client, tracer_provider, meter_provider, request_hook, response_hook)

    @staticmethod
    def uninstrument_client(client):
        """Undoes `instrument_client` for the commands and pipelines made from then on."""
        _uninstrument_client(client)


def _trace_pipelines(tracing, make_pipeline, is_async):
    """`client.pipeline` for an instrumented client: the pipelines it makes trace their
    execution and immediate commands through their instance attributes."""
    import redis

    def pipeline(*args, **kwargs):
        made = make_pipeline(*args, **kwargs)
        kind = type(made)
        if is_async:
            made.execute = _bound(tracing.async_pipeline(kind.execute, redis.WatchError), made)
            if hasattr(kind, "immediate_execute_command"):
                made.immediate_execute_command = _bound(tracing.async_command(kind.immediate_execute_command), made)
        else:
            made.execute = _bound(tracing.pipeline(kind.execute, redis.WatchError), made)
            if hasattr(kind, "immediate_execute_command"):
                made.immediate_execute_command = _bound(tracing.command(kind.immediate_execute_command), made)
        return made

    return pipeline


def _bound(function, instance):
    import types

    return types.MethodType(function, instance)


def _instrument_client(client, tracer_provider, meter_provider, request_hook, response_hook):
    """Traces `client`'s commands and pipelines through attributes of the instance; the
    class's methods (traced or not by the global instrumentation) do the work."""
    if getattr(client, "_is_instrumented_by_opentelemetry", False):
        return
    tracing = _Tracing(tracer_provider, meter_provider, request_hook, response_hook)
    kind = type(client)
    is_async = inspect.iscoroutinefunction(kind.execute_command)
    wrap = tracing.async_command if is_async else tracing.command
    client.execute_command = _bound(wrap(kind.execute_command), client)
    client.pipeline = _trace_pipelines(tracing, client.pipeline, is_async)
    client._is_instrumented_by_opentelemetry = True


def _uninstrument_client(client):
    """Undoes `_instrument_client`: pipelines made before keep tracing until discarded."""
    if not getattr(client, "_is_instrumented_by_opentelemetry", False):
        _logger.warning("redis client %r was not instrumented", client)
        return
    for method in ("execute_command", "pipeline"):
        client.__dict__.pop(method, None)
    client._is_instrumented_by_opentelemetry = False
