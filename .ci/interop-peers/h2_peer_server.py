"""WebSocket echo over HTTP/2 (RFC 8441) and HTTP/1.1, served by Hypercorn
over TLS, for interop tests of wavecast's HTTP/2 client.

Usage: python3 h2_peer_server.py PORT CERT_PEM KEY_PEM [TIMEOUT_SECS]

Hypercorn offers `h2` and `http/1.1` by ALPN and enables the extended
CONNECT protocol in its HTTP/2 SETTINGS; the ASGI app below is the
WebSocket peer:
- echoes text and binary messages on any path;
- the text `http-version?` is answered with the ASGI scope's
  `http_version` (`2` over HTTP/2, `1.1` over HTTP/1.1), so a client can
  check the server's side of the version too;
- chooses the subprotocol `chat` when offered;
- `/reject` is refused before accepting (Hypercorn answers 403);
- `/close` is accepted, then closed by the server with 4001 "bye".
"""

import asyncio
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"websocket only\n"})
        return
    path = scope["path"]
    print(
        f"h2_peer_server.py: HTTP/{scope['http_version']} websocket {path}",
        flush=True,
    )
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if path == "/reject":
        await send({"type": "websocket.close", "code": 1008})
        return
    accept = {"type": "websocket.accept"}
    if "chat" in scope.get("subprotocols", []):
        accept["subprotocol"] = "chat"
    await send(accept)
    if path == "/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "http-version?":
            await send({"type": "websocket.send", "text": scope["http_version"]})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def main():
    port, certfile, keyfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 240.0
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = certfile
    config.keyfile = keyfile
    config.alpn_protocols = ["h2", "http/1.1"]
    # The 1 MiB scenario: Hypercorn's default limit is 16 MiB, wsproto's too.
    config.websocket_max_message_size = 16 * 1024 * 1024
    shutdown = asyncio.Event()
    server = asyncio.ensure_future(serve(app, config, shutdown_trigger=shutdown.wait))
    # Hypercorn binds before serving; a first connection attempt tells us
    # the socket is open.
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    print(f"h2_peer_server.py: listening on 127.0.0.1:{port}", flush=True)
    try:
        await asyncio.wait_for(asyncio.shield(server), timeout)
    except asyncio.TimeoutError:
        shutdown.set()
        await server


if __name__ == "__main__":
    asyncio.run(main())
