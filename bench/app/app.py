"""Flask app for the shardgate benchmark's gunicorn backends.

GET /work?ms=N sleeps N milliseconds times BENCH_SLOW_FACTOR (environment,
default 1) and answers with a short body. Run it as
    gunicorn -w 2 -k sync --chdir bench/app app:app
"""

import os
import time

from flask import Flask, request

app = Flask(__name__)
SLOW_FACTOR = int(os.environ.get("BENCH_SLOW_FACTOR", "1"))
NAME = os.environ.get("BENCH_BACKEND_NAME", "app")


@app.get("/work")
def work():
    ms = request.args.get("ms", default=0, type=int) * SLOW_FACTOR
    if ms > 0:
        time.sleep(ms / 1000.0)
    return f"{NAME} slept {ms} ms\n", 200, {"Content-Type": "text/plain"}
