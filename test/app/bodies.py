"""Flask backend for shardgate's body tests: large downloads, uploads and
server-sent events.

Run it under gunicorn with gthread workers, for example:

    APP_EVENTS=/tmp/events gunicorn -k gthread -w 1 --threads 16 --chdir test/app bodies:app

Every endpoint appends what it did, as one JSON object per line with the
time "t" (time.time()), to the file named by APP_EVENTS, so a test can tell
when the app finished sending and what it sent.

Endpoints:
    GET /download?size=N&id=S[&chunked=1][&delay=D]
        N bytes of deterministic data in 1 MiB pieces, sleeping D seconds
        after each; Content-Length unless chunked=1.
        Logs {"ev": "download_done", "id", "bytes", "sha256"} once the last
        byte is written, or {"ev": "download_aborted", ...} when the write
        fails (the client or the proxy went away).
    GET /sse?n=N&interval=S&id=I[&type=sse|xab|plain]
        N events (0: endless), one every S seconds, each
        'data: {"seq": i, "sent": time.time()}', padded to 88 bytes with
        the blank line; length=1 sends a Content-Length. type=xab sends text/plain
        with X-Accel-Buffering: no instead of text/event-stream, type=plain
        plain text/plain. Logs
        {"ev": "sse_closed"} when a write fails (GeneratorExit) and
        {"ev": "sse_end"} when the generator ends either way.
    POST /upload?id=S
        Reads the body in 1 MiB pieces; answers and logs
        {"bytes", "sha256"} of what it read.
    GET /   200 "ok".
"""

import hashlib
import json
import os
import random
import threading
import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)

_lock = threading.Lock()
_BLOCK = random.Random(1).randbytes(1 << 20)


def _event(**kw):
    kw["t"] = time.time()
    line = json.dumps(kw) + "\n"
    with _lock:
        with open(os.environ["APP_EVENTS"], "a") as f:
            f.write(line)


def _pieces(size):
    """Yield size bytes in pieces of up to 1 MiB; piece i starts at offset i
    of the block, so a misplaced or repeated piece changes the digest."""
    i, left = 0, size
    while left > 0:
        off = (i * 4099) % len(_BLOCK)
        piece = (_BLOCK[off:] + _BLOCK[:off])[: min(left, len(_BLOCK))]
        left -= len(piece)
        i += 1
        yield piece


@app.route("/")
def index():
    return "ok"


@app.route("/download")
def download():
    size = int(request.args["size"])
    ident = request.args.get("id", "")
    delay = float(request.args.get("delay", "0"))

    def gen():
        h, sent = hashlib.sha256(), 0
        try:
            for piece in _pieces(size):
                h.update(piece)
                yield piece
                sent += len(piece)
                if delay:
                    time.sleep(delay)
        except GeneratorExit:
            _event(ev="download_aborted", id=ident, bytes=sent)
            raise
        _event(ev="download_done", id=ident, bytes=sent, sha256=h.hexdigest())

    headers = {} if request.args.get("chunked") == "1" else {"Content-Length": str(size)}
    return Response(gen(), mimetype="application/octet-stream", headers=headers)


@app.route("/sse")
def sse():
    n = int(request.args.get("n", "0"))
    interval = float(request.args.get("interval", "0.1"))
    ident = request.args.get("id", "")

    def gen():
        seq = 0
        try:
            while n == 0 or seq < n:
                yield ("data: %-80s\n\n" % json.dumps({"seq": seq, "sent": time.time()}))[:88]
                seq += 1
                time.sleep(interval)
        except GeneratorExit:
            _event(ev="sse_closed", id=ident, seq=seq)
            raise
        finally:
            _event(ev="sse_end", id=ident, seq=seq)

    kind = request.args.get("type")
    if n and request.args.get("length") == "1":
        return Response(gen(), mimetype="text/event-stream", headers={"Content-Length": str(88 * n)})
    if kind == "xab":
        return Response(gen(), mimetype="text/plain", headers={"X-Accel-Buffering": "no"})
    if kind == "plain":
        return Response(gen(), mimetype="text/plain")
    return Response(gen(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@app.route("/upload", methods=["POST", "PUT"])
def upload():
    h, n = hashlib.sha256(), 0
    while True:
        piece = request.stream.read(1 << 20)
        if not piece:
            break
        h.update(piece)
        n += len(piece)
    out = {"bytes": n, "sha256": h.hexdigest(), "length_header": request.headers.get("Content-Length"),
           "chunked": "chunked" in request.headers.get("Transfer-Encoding", "")}
    _event(ev="upload_done", id=request.args.get("id", ""), **out)
    return jsonify(out)
