"""Serves tests/apps/grpc/service.py on a free 127.0.0.1 port, with grpc's sync server or,
given `aio` (or `aio-writes`: its response stream written through the context), grpc.aio's;
prints `port N` once serving, stops cleanly on SIGTERM."""

import asyncio
import signal
import sys
import threading
from concurrent import futures

import grpc
import grpc.aio
from service import handlers


def serve_sync():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(handlers(aio=False))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("port", port, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    server.stop(grace=1).wait()


async def serve_aio(writes):
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(handlers(aio=True, writes=writes))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print("port", port, flush=True)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await stopped.wait()
    await server.stop(grace=1)


if __name__ == "__main__":
    if sys.argv[1].startswith("aio"):
        asyncio.run(serve_aio(writes=sys.argv[1] == "aio-writes"))
    else:
        serve_sync()
