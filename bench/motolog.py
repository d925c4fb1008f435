#!/usr/bin/env python3
"""moto's EC2 server exactly as `moto_server` runs it, plus a log of route mutations.

    motolog.py -H 127.0.0.1 -p PORT [--lean]

Every EC2 request (but the poller's, whose User-Agent says so) is logged with its Action and
CLOCK_MONOTONIC times taken when it reached moto (t0) and when moto had answered it (t1); route
mutations also with their table, target and status: by t1 the change is what any reader gets.
`GET /_bench/requests?since=T` answers the entries with t1 >= T as JSON. This is the commit-side
view of a switch (the poller, poller.py, is the reader-side view) and where a claim's time went.

--lean (the EC2-model phase only): moto with two per-request lookups cached that give the same
answer every time (the list of its service modules, ~180 `stat` calls per request, and the method
names of the response class, `inspect.getmembers`). moto serves one request at a time, and behind
the model every write costs it three requests (the model reads the table before and after): its
serial work stands for nothing EC2 does, so the model phase makes it as small as it safely can.
"""

import argparse
import io
import json
import os
import signal
import sys
import threading
import time
from urllib.parse import parse_qs, urlparse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

MUTATIONS = {"ReplaceRoute", "CreateRoute", "DeleteRoute"}
POLLER = "irisvip-bench-poller"  # poller.py's User-Agent: its requests are not logged


class MutationLog:
    def __init__(self, app):
        self.app = app
        self.entries = []
        self.lock = threading.Lock()

    def serve_log(self, environ, start_response):
        query = parse_qs(urlparse("?" + environ.get("QUERY_STRING", "")).query)
        since = float(query.get("since", ["0"])[0])
        with self.lock:
            body = json.dumps([e for e in self.entries if e["t1"] >= since]).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ, start_response):
        t0 = time.monotonic()
        if environ.get("PATH_INFO") == "/_bench/requests":
            return self.serve_log(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST" or POLLER in environ.get("HTTP_USER_AGENT", ""):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode(errors="replace"))
        action = (form.get("Action") or [""])[0]
        status = {}

        def capture(s, headers, exc_info=None):
            status["code"] = int(s.split()[0])
            return start_response(s, headers, exc_info)

        result = self.app(environ, capture)
        try:
            out = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        t1 = time.monotonic()
        entry = {"t0": t0, "t1": t1, "action": action, "status": status.get("code")}
        if action in MUTATIONS:
            entry.update({"table": (form.get("RouteTableId") or [None])[0],
                          "dest": (form.get("DestinationCidrBlock") or [None])[0],
                          "eni": (form.get("NetworkInterfaceId") or [None])[0]})
        with self.lock:
            self.entries.append(entry)
        return [out]


def lean():
    """Caches two lookups moto repeats on every request; both depend on nothing but moto's code."""
    import functools

    from moto import backends
    from moto.core import responses, utils

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    # Only ever asked `action in names`: a frozenset answers that without a scan.
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        lambda clazz: frozenset(utils.method_names_from_class(clazz)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-H", "--host", default="127.0.0.1")
    p.add_argument("-p", "--port", type=int, required=True)
    p.add_argument("--lean", action="store_true", help="cache two constant per-request lookups (model phase)")
    args = p.parse_args()
    if args.lean:
        lean()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server does
    run_simple(args.host, args.port, MutationLog(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
