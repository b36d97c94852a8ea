"""The second service of the acceptance apps: a tiny aiohttp server the shops call out to.
`python partner.py PORT`."""

import sys

from aiohttp import web


async def greet(request):
    return web.json_response({"hello": request.query.get("via", "")})


async def healthz(request):
    return web.Response(text="ok")


app = web.Application()
app.router.add_get("/greet", greet)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
