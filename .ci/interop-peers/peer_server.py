"""Echo server built on the Python `websockets` library, for interop tests.

Usage: python3 peer_server.py PORT [TIMEOUT_SECS]

Echoes text and binary messages on any path, and:
- `/reject` is refused with 403;
- `/close` is closed by the server with 4001 "bye";
- `/last-close` receives "<code> <reason>" of the last close frame a client
  sent, then a normal close;
- text `send-fragmented` is answered with "alpha-beta-gamma" in 3 fragments,
  `send-fragmented-binary` with bytes 0..=255 in 3 fragments;
- text `ping-me`: the server pings, waits for the pong, replies `pong-ok`
  (or `pong-missing`);
- text `ping-count?` is answered with `pings=N`, the pings received on this
  connection.
"""

import asyncio
import sys
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Opcode

LAST_CLOSE = {"value": None}


class ObservingConnection(ServerConnection):
    """Counts received pings and records received close frames."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pings_seen = 0

    def process_event(self, event):
        opcode = getattr(event, "opcode", None)
        if opcode is Opcode.PING:
            self.pings_seen += 1
        elif opcode is Opcode.CLOSE:
            close = Close.parse(event.data)
            # Recorded before the close is answered, so a client that closed
            # and then asks /last-close always sees it.
            LAST_CLOSE["value"] = f"{close.code} {close.reason}"
        super().process_event(event)


def process_request(connection, request):
    if request.path == "/reject":
        return connection.respond(HTTPStatus.FORBIDDEN, "forbidden\n")
    return None


async def handler(ws):
    path = ws.request.path
    print(f"peer_server.py: GET {path}", flush=True)
    if path == "/close":
        await ws.close(4001, "bye")
        return
    if path == "/last-close":
        await ws.send(LAST_CLOSE["value"] or "none")
        await ws.close()
        return
    try:
        async for msg in ws:
            if msg == "send-fragmented":
                await ws.send(["alpha-", "beta-", "gamma"])
            elif msg == "send-fragmented-binary":
                data = bytes(range(256))
                await ws.send([data[:100], data[100:200], data[200:]])
            elif msg == "ping-me":
                waiter = await ws.ping(b"peer-ping")
                try:
                    await asyncio.wait_for(waiter, 5)
                    await ws.send("pong-ok")
                except asyncio.TimeoutError:
                    await ws.send("pong-missing")
            elif msg == "ping-count?":
                await ws.send(f"pings={ws.pings_seen}")
            else:
                await ws.send(msg)
    except ConnectionClosed:
        pass


async def main():
    port = int(sys.argv[1])
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    async with serve(
        handler,
        "127.0.0.1",
        port,
        process_request=process_request,
        create_connection=ObservingConnection,
        max_size=16 << 20,
        ping_interval=None,
    ):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.sleep(timeout)
        print(f"peer_server.py: timeout after {timeout} s, exiting", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
