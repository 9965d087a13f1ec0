"""Flask backend for shardgate's retry tests, run under gthread workers:

    LEDGER_FILE=/tmp/ledger gunicorn -w 2 -k gthread --threads 4 --chdir test/app ledger:app

Endpoints:
    POST /post?id=I&ms=N  appends I to LEDGER_FILE (one line, under flock)
                          before it sleeps N ms, then answers 200 "ok".
    GET /work?ms=N        sleeps N ms, answers 200 "ok".
    GET /stats, GET /     200 (readiness and health checks).
"""

import fcntl
import os
import time

from flask import Flask, jsonify, request

app = Flask(__name__)


def _sleep():
    time.sleep(max(request.args.get("ms", default=0, type=int), 0) / 1000.0)


@app.route("/post", methods=["POST"])
def post():
    request.get_data()
    with open(os.environ["LEDGER_FILE"], "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(request.args.get("id", "") + "\n")
        f.flush()
    _sleep()
    return "ok\n"


@app.route("/work")
def work():
    _sleep()
    return "ok\n"


@app.route("/stats")
def stats():
    return jsonify(max_inflight=0, served=0, inflight=0)


@app.route("/")
def index():
    return "ok\n"
