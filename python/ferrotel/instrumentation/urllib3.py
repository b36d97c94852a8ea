"""Client spans for `urllib3`: every `HTTPConnectionPool.urlopen` (PoolManager and direct
pools alike), with the body sizes as upstream's records them. Upstream's hooks:
`request_hook(span, pool, RequestInfo)`, `response_hook(span, pool, response)`."""

from typing import Any, NamedTuple

from ferrotel.instrumentation import Instrumentor, excluded_pattern
from ferrotel.instrumentation.http_client import Options, body_length, inside_client_span, traced_call


class RequestInfo(NamedTuple):
    method: str
    url: str
    headers: Any
    body: Any


class URLLib3Instrumentor(Instrumentor):
    name = "urllib3"

    def _instrument(self, **kwargs):
        from urllib3.connectionpool import HTTPConnectionPool

        self._urlopen = urlopen = HTTPConnectionPool.urlopen
        excluded = excluded_pattern("urllib3")
        options = Options(kwargs)

        def traced_urlopen(pool, method, url, body=None, headers=None, *args, **kwargs):
            if inside_client_span.get():
                # Beneath another client's span (requests'): nothing to record, so neither
                # the URL nor a copy of the headers is made.
                return urlopen(pool, method, url, body, headers, *args, **kwargs)
            if "://" in url:
                full = url
            else:
                port = f":{pool.port}" if pool.port else ""
                full = f"{pool.scheme}://{pool.host}{port}{url}"
            # A copy, so the caller's (or the pool's) headers do not keep our values; made by
            # the headers' own copy() so an HTTPHeaderDict keeps repeated fields apart.
            given = headers if headers is not None else pool.headers or {}
            sent = given.copy() if hasattr(given, "copy") else dict(given)
            return traced_call(
                "ferrotel.instrumentation.urllib3",
                method,
                full,
                sent,
                lambda: urlopen(pool, method, url, body, sent, *args, **kwargs),
                lambda response: response.status,
                excluded,
                options,
                (pool, RequestInfo(method, full, sent, body)) if options.request_hook else (),
                (pool,),
                body_size=body_length(body),
            )

        HTTPConnectionPool.urlopen = traced_urlopen

    def _uninstrument(self, **kwargs):
        from urllib3.connectionpool import HTTPConnectionPool

        HTTPConnectionPool.urlopen = self._urlopen
