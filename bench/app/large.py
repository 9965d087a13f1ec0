"""Flask app for the bench's large-body scenario, under gunicorn gthread.

    GET  /download?size=N&id=S   N bytes in 1 MiB pieces, with Content-Length.
    POST /upload?id=S            reads the body in 1 MiB pieces, answers its length.
    GET  /                       "ok".

Each request appends one line to BENCH_EVENTS when it ends:
"kind id start end bytes", times from time.time(), so the bench knows how
long the worker was held.
"""

import os
import threading
import time

from flask import Flask, Response, request

app = Flask(__name__)
_lock = threading.Lock()
_PIECE = os.urandom(1 << 20)


def _log(kind, ident, start, n):
    with _lock:
        with open(os.environ["BENCH_EVENTS"], "a") as f:
            f.write("%s %s %.6f %.6f %d\n" % (kind, ident, start, time.time(), n))


@app.route("/")
def index():
    return "ok"


@app.route("/download")
def download():
    size, ident, start = int(request.args["size"]), request.args.get("id", ""), time.time()

    def gen():
        left = size
        try:
            while left > 0:
                piece = _PIECE[: min(left, len(_PIECE))]
                yield piece
                left -= len(piece)
        finally:
            _log("download", ident, start, size - left)

    return Response(gen(), mimetype="application/octet-stream", headers={"Content-Length": str(size)})


@app.route("/upload", methods=["POST"])
def upload():
    ident, start, n = request.args.get("id", ""), time.time(), 0
    while True:
        piece = request.stream.read(1 << 20)
        if not piece:
            break
        n += len(piece)
    _log("upload", ident, start, n)
    return str(n)
