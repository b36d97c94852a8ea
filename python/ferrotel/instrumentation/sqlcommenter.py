"""sqlcommenter: the comment a statement carries to the database server so its logs name the
trace that sent it, in upstream's format — ` /*key='value',...*/` appended to the statement
(before a trailing `;`), keys sorted, keys and text values URL-quoted with `%` doubled (the
statement may be a `%s`-style template), other values as their repr."""

import urllib.parse

# Where an ORM or framework puts tags of its own for the comment (upstream's context key).
ORM_TAGS_KEY = "SQLCOMMENTER_ORM_TAGS_AND_VALUES"


def _quoted(value):
    if isinstance(value, (str, bytes)):
        return urllib.parse.quote(value).replace("%", "%%")
    return value


def comment(values):
    """The comment holding `values` (None values left out); empty for no values."""
    if not values:
        return ""
    pairs = ",".join(f"{_quoted(key)}={_quoted(value)!r}" for key, value in sorted(values.items()) if value is not None)
    return f" /*{pairs}*/"


def comment_for(values):
    """The comment of `values` and of the ORM tags in the current context."""
    from opentelemetry import context

    tags = context.get_value(ORM_TAGS_KEY)
    return comment({**values, **tags} if tags else values)


def commented(statement, comment_text):
    """`statement` with `comment_text` appended, before a trailing `;`."""
    text = statement.rstrip()
    if text.endswith(";"):
        return text[:-1] + comment_text + ";"
    return text + comment_text


def context_values(span):
    """What the global propagator injects for `span` in the current context: `traceparent`
    (and `tracestate`, baggage... when present)."""
    from opentelemetry import propagate, trace

    carrier = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def selected(values, options):
    """`values` without the keys `options` (upstream's `commenter_options`) turn off."""
    return {key: value for key, value in values.items() if options.get(key, True)}


def dbapi_values(module, system):
    """What upstream's DB-API instrumentation says of a driver `module` in the comment."""
    values = {
        "db_driver": f"{module.__name__}:{str(getattr(module, '__version__', 'unknown')).split(' ')[0]}",
        "dbapi_threadsafety": getattr(module, "threadsafety", "unknown"),
        "dbapi_level": getattr(module, "apilevel", "1.0"),
        "driver_paramstyle": getattr(module, "paramstyle", "unknown"),
    }
    if system == "postgresql":
        try:
            values["libpq_version"] = module.pq.version()  # psycopg (3)
        except AttributeError:
            libpq = getattr(module, "__libpq_version__", None)  # psycopg2: the one it was built with
            if libpq is not None:
                values["libpq_version"] = libpq
    return values


class CommentingStatements:
    """A driver's statement runner (`dbapi.statements`) whose statements carry the comment
    (`values`, the statement span's traceparent) to the server: upstream's `enable_commenter`
    for DB-API drivers. A statement here is a few Python calls around the native span instead
    of one native call, so only instrumentations asked to comment use it."""

    def __init__(self, runner, system, values, options, in_attribute):
        self.runner = runner
        self.system = system
        self.values = values
        self.options = options or {}
        self.in_attribute = in_attribute

    def start_commented(self, query, namespace, address=None, port=None, connection=None):
        """`(operation, query to send)`: the statement's span started (None when suppressed)
        and the query with the comment appended (a statement that is not text, `bytes`, is
        sent as it is)."""
        text = query
        if not isinstance(text, str) and hasattr(text, "as_string"):  # psycopg's sql.Composable
            try:
                text = text.as_string(connection)
            except Exception:  # noqa: BLE001 - the driver reports what it cannot render
                return None, query
        if not isinstance(text, str):
            return self.runner.start_statement(query, namespace, address, port), query
        operation = self.runner.start_statement(text, namespace, address, port)
        if operation is None or not operation.span.is_recording():
            return operation, query
        values = dict(self.values)
        if self.options.get("opentelemetry_values", True):
            values.update(context_values(operation.span))
        comment_text = comment_for(selected(values, self.options))
        if self.in_attribute:
            from ferrotel import _native

            _, attributes = _native.db_conventions(self.system, namespace, text)
            operation.span.set_attribute("db.query.text", commented(attributes["db.query.text"], comment_text))
        return operation, commented(text, comment_text)

    def run(self, receiver, query, args, method, namespace, address=None, port=None, procedure=False):
        # A procedure's name is not a statement to comment.
        if procedure or not isinstance(query, str) and not hasattr(query, "as_string"):
            return self.runner.run(receiver, query, args, method, namespace, address, port, procedure)
        operation, query = self.start_commented(query, namespace, address, port, receiver.connection)
        if operation is None:
            return method(receiver, query, *args)
        try:
            result = method(receiver, query, *args)
        except BaseException as exc:
            operation.end(exc)
            raise
        operation.end()
        return result


def commenting(runner, module, system, kwargs):
    """`runner`, or its commenting form when `kwargs` (an instrumentor's) enable the commenter."""
    if not kwargs.get("enable_commenter", False):
        return runner
    return CommentingStatements(
        runner,
        system,
        dbapi_values(module, system),
        kwargs.get("commenter_options"),
        bool(kwargs.get("enable_attribute_commenter", False)),
    )
