"""Interop client built on the Python `websockets` library: runs the
scenario list against a wavecast echo server (examples/interop_server.rs).

Usage: python3 peer_client.py ws://HOST:PORT

Prints `PASS <scenario>` / `FAIL <scenario>: <why>`; exits 1 on any failure.
"""

import asyncio
import sys
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode

STEP = 10
NAME = "python-websockets client -> wavecast server"


class ObservingConnection(ClientConnection):
    """Records the control frames and fragments we receive."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pings = []
        self.non_final_frames = 0

    def process_event(self, event):
        opcode = getattr(event, "opcode", None)
        if opcode is Opcode.PING:
            self.pings.append(bytes(event.data))
        elif opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT) and not event.fin:
            self.non_final_frames += 1
        super().process_event(event)


class Fail(Exception):
    pass


def open_ws(base, path, compression="deflate"):
    return connect(
        base + path,
        compression=compression,
        max_size=16 << 20,
        ping_interval=None,
        open_timeout=STEP,
        close_timeout=STEP,
        create_connection=ObservingConnection,
    )


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), STEP)


def describe(m):
    if isinstance(m, str):
        return repr(m) if len(m) <= 64 else f"text of {len(m)} chars"
    return f"binary of {len(m)} bytes"


async def expect(ws, want):
    got = await recv(ws)
    if type(got) is not type(want) or got != want:
        raise Fail(f"expected {describe(want)}, got {describe(got)}")


async def echo(base, msg):
    async with open_ws(base, "/echo") as ws:
        await ws.send(msg)
        await expect(ws, msg)
        return ws


def pattern(n):
    return bytes((i * 7) % 251 for i in range(n))


def multibyte_text(n):
    unit = "héllo wörld ✓ 🦀 "
    return (unit * (n // len(unit.encode()) + 1))


async def text(base):
    await echo(base, "hello, interop ✓")


async def binary(base):
    await echo(base, bytes([0, 1, 2, 0xFE, 0xFF]))


async def one_mib(base):
    await echo(base, pattern(1 << 20))
    await echo(base, multibyte_text(1 << 20))


async def fragmented_peer_sends(base):
    async with open_ws(base, "/echo") as ws:
        parts = ["frag-one ✓ ", "frag-two 🦀 ", "frag-three"]
        await ws.send(parts)
        await expect(ws, "".join(parts))
        bparts = [pattern(1000), bytes(range(256)), b"end"]
        await ws.send(bparts)
        await expect(ws, b"".join(bparts))


async def fragmented_wavecast_sends(base):
    # The wavecast server fragments anything above 64 KiB. Without
    # permessage-deflate, so the repetitive text is not compressed below that.
    async with open_ws(base, "/echo", compression=None) as ws:
        msg = multibyte_text(200_000)
        await ws.send(msg)
        await expect(ws, msg)
        if ws.non_final_frames < 2:
            raise Fail(f"expected a fragmented echo, saw {ws.non_final_frames} non-final frames")


async def ping_peer_pings(base):
    async with open_ws(base, "/echo") as ws:
        waiter = await ws.ping(b"python-ping")
        await asyncio.wait_for(waiter, STEP)


async def ping_wavecast_pings(base):
    async with open_ws(base, "/echo") as ws:
        await ws.send("ping-me")
        await expect(ws, "ping-me")
        if b"wavecast-ping" not in ws.pings:
            raise Fail(f"no ping with payload 'wavecast-ping' seen (pings: {ws.pings})")


async def close_peer_closes(base):
    async with open_ws(base, "/echo") as ws:
        await ws.close(4001, "bye")
        if ws.protocol.close_rcvd is None:
            raise Fail("wavecast did not answer our close frame")
    async with open_ws(base, "/last-close") as ws:
        await expect(ws, "4001 bye")


async def close_wavecast_closes(base):
    async with open_ws(base, "/close") as ws:
        try:
            msg = await recv(ws)
            raise Fail(f"expected a close, got {describe(msg)}")
        except ConnectionClosed as e:
            if e.rcvd is None or e.rcvd.code != 4001 or e.rcvd.reason != "bye":
                raise Fail(f"expected close 4001 'bye', got {e.rcvd}")


async def rejected(base):
    try:
        async with open_ws(base, "/reject"):
            pass
    except InvalidStatus as e:
        if e.response.status_code != 403:
            raise Fail(f"expected 403, got {e.response.status_code}")
        return
    raise Fail("handshake succeeded, expected 403")


async def deflate_negotiated(base):
    # Both sides offer permessage-deflate by default; silently declining it
    # must fail this test.
    async with open_ws(base, "/echo") as ws:
        names = [ext.name for ext in ws.protocol.extensions]
        if names != ["permessage-deflate"]:
            raise Fail(f"expected permessage-deflate, negotiated {names}")
        msg = "compress me " * 5000
        await ws.send(msg)
        await expect(ws, msg)


SCENARIOS = [
    ("permessage-deflate negotiated", deflate_negotiated),
    ("text", text),
    ("binary", binary),
    ("1 MiB", one_mib),
    ("fragmented (peer sends)", fragmented_peer_sends),
    ("fragmented (wavecast sends)", fragmented_wavecast_sends),
    ("ping (peer pings)", ping_peer_pings),
    ("ping (wavecast pings)", ping_wavecast_pings),
    ("close 4001 (peer closes)", close_peer_closes),
    ("close 4001 (wavecast closes)", close_wavecast_closes),
    ("rejected handshake 403", rejected),
]


async def main():
    base = sys.argv[1].rstrip("/")
    failures = 0
    for name, scenario in SCENARIOS:
        start = time.monotonic()
        try:
            await asyncio.wait_for(scenario(base), 30)
            print(f"PASS {NAME}: {name} ({int((time.monotonic() - start) * 1000)} ms)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure
            failures += 1
            print(f"FAIL {NAME}: {name}: {type(e).__name__}: {e}", flush=True)
    if failures:
        print(f"peer_client.py: {failures} scenario(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
