#!/usr/bin/env python3
"""A local heartbeat target for the benchmarks, on 127.0.0.1 only.

GET /heartbeat        answers 200 "ok" after the latency in force (threaded: a slow answer
                      never delays another client's)
GET /control?latency_ms=N   sets the latency
GET /stats            JSON: heartbeat hits per client ("ours" = autoscalebot/, "original" =
                      Python-urllib/, "floor" = floor/, bench/floor.c), and formation reads
                      ("formation_reads") and writes
GET|PATCH /apps/APP/formation/TYPE   a minimal Heroku formation, so our worker has a platform
                      to read (the original keeps its count in memory, see heroku.py)
Usage: target.py PORT
"""
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

state = {"latency_ms": 10.0, "hits": {"ours": 0, "original": 0, "floor": 0, "other": 0},
         "quantity": 1, "formation_reads": 0, "formation_writes": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        # Headers and body go out as two writes; without TCP_NODELAY the second waits for the
        # client's delayed ACK (40 ms on Linux) on a kept-alive connection, which would be
        # measured as latency of the target, not of the worker.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def reply(self, code, body, kind="text/plain"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the original's 1 s timeout does, at 1005 ms)

    def formation(self):
        with lock:
            quantity = state["quantity"]
        body = {"quantity": quantity, "type": "web", "size": "standard-1X", "id": "bench",
                "command": "web", "app": {"name": "bench-app", "id": "bench"}}
        self.reply(200, json.dumps(body), "application/json")

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/heartbeat":
            with lock:
                latency = state["latency_ms"]
            time.sleep(latency / 1000.0)
            agent = self.headers.get("User-Agent", "")
            client = "ours" if agent.startswith("autoscalebot/") else (
                "original" if agent.startswith("Python-urllib/") else (
                    "floor" if agent.startswith("floor/") else "other"))
            with lock:
                state["hits"][client] += 1
            self.reply(200, "ok")
        elif url.path == "/control":
            latency = float(parse_qs(url.query)["latency_ms"][0])
            with lock:
                state["latency_ms"] = latency
            self.reply(200, "latency %s ms" % latency)
        elif url.path == "/stats":
            with lock:
                self.reply(200, json.dumps(state), "application/json")
        elif url.path.startswith("/apps/"):
            with lock:
                state["formation_reads"] += 1
            self.formation()
        else:
            self.reply(404, "no such path")

    def do_PATCH(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            state["quantity"] = int(body.get("quantity", state["quantity"]))
            state["formation_writes"] += 1
        self.formation()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client stopped with its connection open (the bench ends each process): not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
