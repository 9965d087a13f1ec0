"""Flask app for the shardgate benchmark's gunicorn backends.

GET /work?ms=N sleeps N milliseconds times BENCH_SLOW_FACTOR (environment,
default 1) and answers with a short body. When BENCH_STARTS_FILE is set, every
request appends one byte to it as it starts, so the benchmark can tell when the
backend has gone quiet (gunicorn keeps serving requests from its backlog long
after their clients left). Run it as
    gunicorn -w 2 -k sync --chdir bench/app app:app
"""

import os
import time

from flask import Flask, request

app = Flask(__name__)
SLOW_FACTOR = int(os.environ.get("BENCH_SLOW_FACTOR", "1"))
NAME = os.environ.get("BENCH_BACKEND_NAME", "app")
STARTS = os.environ.get("BENCH_STARTS_FILE")
_starts_fd = None


def _note_start():
    global _starts_fd
    if STARTS is None:
        return
    if _starts_fd is None:  # opened in each worker after the fork
        _starts_fd = os.open(STARTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_starts_fd, b".")


@app.get("/work")
def work():
    _note_start()
    ms = request.args.get("ms", default=0, type=int) * SLOW_FACTOR
    if ms > 0:
        time.sleep(ms / 1000.0)
    return f"{NAME} slept {ms} ms\n", 200, {"Content-Type": "text/plain"}
