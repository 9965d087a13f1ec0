"""Flask backend for shardgate's end-to-end tests.

Run it under gunicorn with sync workers, for example:

    APP_STATE_FILE=/tmp/state gunicorn -w 2 -k sync --chdir test/app app:app

Endpoints:
    GET /work?ms=N  sleeps N milliseconds, answers 200 "worker pid=P ms=N".
    GET /stats      JSON {"max_inflight": n, "served": n, "inflight": n}.
    GET /reset      served = 0, max_inflight = inflight (in-progress work stays).
    GET /           200 "ok" (for health checks; not counted).

The counters are shared by every worker process of one gunicorn instance:
they live in the file named by APP_STATE_FILE (three little-endian int64:
inflight, max_inflight, served) and every update holds an exclusive
fcntl.flock on it (and a lock of the process, for gthread's threads), so
they are exact across sync workers and gthread threads alike. Only /work
is counted; /stats, /reset and / are not.
"""

import fcntl
import os
import struct
import threading
import time

from flask import Flask, jsonify, request

app = Flask(__name__)

_STATE = struct.Struct("<qqq")  # inflight, max_inflight, served
_fd = None
_fd_pid = None
# flock does not exclude threads sharing one descriptor: gthread workers
# also take this lock.
_thread_lock = threading.Lock()


def _state_fd():
    """Return this process's descriptor of the state file, opening it after fork."""
    global _fd, _fd_pid
    if _fd is None or _fd_pid != os.getpid():
        path = os.environ.get("APP_STATE_FILE")
        if not path:
            raise RuntimeError("APP_STATE_FILE is not set")
        _fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _fd_pid = os.getpid()
    return _fd


def _update(change):
    """Apply change(inflight, max_inflight, served) -> tuple under the file lock."""
    with _thread_lock:
        fd = _state_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(fd, _STATE.size, 0)
            values = _STATE.unpack(raw) if len(raw) == _STATE.size else (0, 0, 0)
            values = change(*values)
            os.pwrite(fd, _STATE.pack(*values), 0)
            return values
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _begin(inflight, max_inflight, served):
    inflight += 1
    return inflight, max(max_inflight, inflight), served


def _end(inflight, max_inflight, served):
    return inflight - 1, max_inflight, served + 1


@app.route("/work")
def work():
    ms = request.args.get("ms", default=0, type=int)
    _update(_begin)
    try:
        time.sleep(max(ms, 0) / 1000.0)
    finally:
        _update(_end)
    return "worker pid=%d ms=%d\n" % (os.getpid(), ms), 200, {
        "Content-Type": "text/plain; charset=utf-8"
    }


@app.route("/stats")
def stats():
    inflight, max_inflight, served = _update(lambda *v: v)
    return jsonify(max_inflight=max_inflight, served=served, inflight=inflight)


@app.route("/reset")
def reset():
    inflight, max_inflight, served = _update(lambda i, m, s: (i, i, 0))
    return jsonify(max_inflight=max_inflight, served=served, inflight=inflight)


@app.route("/")
def index():
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
