#!/usr/bin/env python3
"""A flowdb worker in Python, with the standard library only.

It speaks the server's HTTP/JSON API (the Connect protocol's JSON form): every
call is a POST of a JSON object to /flowdb.v1.<Service>/<Method> with
Content-Type: application/json. bytes fields travel as base64, 64-bit integers
as strings (numbers are accepted too).

  python3 worker.py --server http://127.0.0.1:7300 --queue jobs --agent py-1

It registers, heartbeats from a thread, leases with a long-poll wait, does the
task (upper-cases the payload) and acks it with the result. --token (or
$FLOWDB_TOKEN) sends a bearer token; --max N stops after N tasks.
"""

import argparse
import base64
import json
import os
import sys
import threading
import urllib.error
import urllib.request


class FlowdbError(Exception):
    """A call the server refused: code is the Connect code ("not_found",
    "failed_precondition", ...), classes the flowdb errors it matches
    ("queue: lease lost", ...)."""

    def __init__(self, status, code, message, classes):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.classes = status, code, message, classes


class Client:
    def __init__(self, server, token=None, timeout=60):
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, service, method, body, timeout=None):
        req = urllib.request.Request(
            f"{self.server}/flowdb.v1.{service}/{method}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
            except ValueError:
                raise FlowdbError(e.code, "unknown", raw.decode(errors="replace"), []) from None
            classes = []
            for d in err.get("details", []):
                # ErrorDetail is a protobuf message; its "debug" form, when
                # the server sends one, holds the classes as JSON.
                classes += d.get("debug", {}).get("classes", [])
            raise FlowdbError(e.code, err.get("code", "unknown"), err.get("message", ""), classes) from None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="http://127.0.0.1:7300")
    ap.add_argument("--token", default=os.environ.get("FLOWDB_TOKEN"))
    ap.add_argument("--queue", default="jobs")
    ap.add_argument("--agent", default="py-worker-1")
    ap.add_argument("--capacity", type=int, default=4)
    ap.add_argument("--max", type=int, default=0)
    ap.add_argument("--wait-ms", type=int, default=5000)
    args = ap.parse_args()

    c = Client(args.server, args.token)
    c.call("RegistryService", "Register",
           {"agent": {"id": args.agent, "capacity": args.capacity, "heartbeatIntervalMs": 1000}})
    stop = threading.Event()
    load = [0]

    def heartbeat():
        while not stop.wait(1.0):
            try:
                c.call("RegistryService", "Heartbeat", {"id": args.agent, "load": load[0], "status": "working"})
            except (FlowdbError, OSError) as e:
                print(f"heartbeat: {e}", file=sys.stderr)

    threading.Thread(target=heartbeat, daemon=True).start()
    done = 0
    try:
        while args.max == 0 or done < args.max:
            resp = c.call("QueueService", "Lease",
                          {"queue": args.queue, "agent": args.agent, "n": 1, "waitMs": args.wait_ms},
                          timeout=args.wait_ms / 1000 + 30)
            for lease in resp.get("leases", []):
                load[0] += 1
                payload = base64.b64decode(lease.get("payload", ""))
                result = payload.upper()
                try:
                    c.call("QueueService", "Ack", {"queue": args.queue, "id": lease["id"], "token": lease["token"],
                                                   "result": base64.b64encode(result).decode()})
                    done += 1
                except FlowdbError as e:
                    if e.code == "failed_precondition":  # the lease was lost
                        print(f"ack {lease['id']}: {e}", file=sys.stderr)
                    else:
                        raise
                finally:
                    load[0] -= 1
    finally:
        stop.set()
        try:
            c.call("RegistryService", "Deregister", {"id": args.agent})
        except (FlowdbError, OSError):
            pass
    print(f"worker {args.agent}: {done} tasks done")


if __name__ == "__main__":
    main()
