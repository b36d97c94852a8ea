"""The local service scenario d calls: answers every HTTP/1.1 request on a kept-alive
connection with a fixed body, as cheaply as asyncio allows, so the benchmark measures the
caller. Never instrumented. Usage: python downstream.py PORT"""

import asyncio
import sys

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n42"


class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.pending = transport, b""

    def data_received(self, data):
        # The caller sends GETs without a body: each blank line ends one request.
        self.pending += data
        requests = self.pending.count(b"\r\n\r\n")
        if requests:
            self.pending = self.pending.rsplit(b"\r\n\r\n", 1)[1]
            self.transport.write(ANSWER * requests)


async def main(port):
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
