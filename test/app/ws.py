"""WebSocket echo server and client for shardgate's tunnel tests, on
Debian's python3-websockets (10.x, asyncio API).

    python3 ws.py server HOST:PORT
        Echoes every message. Prints "listening" once it accepts.
        GET /plain (no upgrade) answers 200 "plain".
    python3 ws.py client URL N
        Sends N messages (binary and text, 0 to 64 KiB, random) and checks
        each echo byte for byte; prints "echoed N". Then, for every line
        "ping" on stdin, sends one more and prints "pong". When the
        connection closes it prints "closed CODE" and exits.
"""

import asyncio
import http
import os
import random
import sys

import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def plain(path, headers):
    if path == "/plain":
        return http.HTTPStatus.OK, [("Content-Type", "text/plain")], b"plain"
    return None


async def serve(addr):
    host, port = addr.rsplit(":", 1)
    async with websockets.serve(echo, host, int(port), process_request=plain, max_size=None,
                                ping_interval=None):
        print("listening", flush=True)
        await asyncio.Future()


def message(i):
    n = random.choice([0, 1, 125, 126, 127, 65535, 65536, random.randint(0, 65536)])
    if i % 2:
        return os.urandom(n)
    return "".join(random.choice("aé€😀") for _ in range(n // 4))


async def client(url, n):
    loop = asyncio.get_running_loop()
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        for i in range(n):
            m = message(i)
            await ws.send(m)
            got = await ws.recv()
            if got != m:
                print("mismatch at message %d (%d bytes sent, %d back)" % (i, len(m), len(got)), flush=True)
                return
        print("echoed %d" % n, flush=True)
        closed = asyncio.ensure_future(ws.wait_closed())
        while True:
            line = loop.run_in_executor(None, sys.stdin.readline)
            done, _ = await asyncio.wait([closed, line], return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                print("closed %s" % ws.close_code, flush=True)
                os._exit(0)
            text = line.result()
            if not text:
                return
            try:
                await ws.send("ping")
                if await ws.recv() == "ping":
                    print("pong", flush=True)
            except websockets.ConnectionClosed:
                print("closed %s" % ws.close_code, flush=True)
                os._exit(0)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2]))
    else:
        asyncio.run(client(sys.argv[2], int(sys.argv[3])))
