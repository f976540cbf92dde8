"""polis process-tier SDK for Python: one module, no dependencies.

Write one function ``decide(request) -> output`` and call ``serve``::

    import polis_plugin

    def decide(request):
        # request["input"], request["params"], and request["context"] when
        # the manifest grants "context:read"
        return {"moves": [], "summary": {...}}

    polis_plugin.serve(decide, manifest_path="manifest.json")

``serve`` speaks polis's JSON-RPC 2.0 protocol on stdin/stdout, one JSON
document per line: it answers ``initialize`` (picking a protocol version the
host offers and returning the manifest), then each ``run`` with
``decide(params)``, and exits on ``shutdown`` or end of input. A contract
whose plugins answer other methods too (a strategy's ``on_event``) passes
them as ``methods={"on_event": handler, ...}``. Raise ``Rejected`` to
refuse an input; any other exception is reported as a failure, and the
worker keeps serving. Print diagnostics to stderr (polis records them as
logs tagged with the plugin id), never to stdout.

While answering, a plugin may call the host's capabilities (the host
methods of its contract, each behind a permission) with
``call_host(method, params)``: the host answers on the same stream, and a
method whose permission the manifest was not granted raises ``HostError``
naming the permission.

Floats are written with ``repr`` (shortest round-trip), so numbers reach the
host exactly.
"""

import json
import sys
import traceback

PROTOCOL_VERSIONS = ["polis.process.v1"]
CODE_REJECTED = -32001
CODE_FAILED = -32002
CODE_PERMISSION_DENIED = -32003


class Rejected(Exception):
    """Raise to refuse an input or params; the host records a rejection."""


class HostError(Exception):
    """A host call was refused: ``code`` is the JSON-RPC error code
    (``CODE_PERMISSION_DENIED`` when the permission was not granted)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# The stream ``serve`` answers on, for ``call_host``.
_channel = {"stdin": None, "stdout": None, "next": 0}


def call_host(method, params):
    """Calls host method ``method`` with ``params`` and returns its result.

    Only while ``serve`` is answering a request; raises ``HostError`` when
    the host refuses (an ungranted permission, bad params)."""
    stdin, stdout = _channel["stdin"], _channel["stdout"]
    if stdin is None:
        raise RuntimeError("call_host works only inside a request that serve is answering")
    _channel["next"] += 1
    rid = "host-%d" % _channel["next"]
    _reply(stdout, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    while True:
        line = stdin.readline()
        if not line:
            raise HostError(CODE_FAILED, "the host closed the stream")
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("id") != rid or "method" in message:
            raise HostError(CODE_FAILED, "unexpected message while waiting for the host: %r" % message)
        if "error" in message:
            raise HostError(message["error"].get("code"), message["error"].get("message", ""))
        return message.get("result")


def _reply(out, message):
    out.write(json.dumps(message, separators=(",", ":"), allow_nan=False))
    out.write("\n")
    out.flush()


def serve(decide, manifest_path="manifest.json", stdin=None, stdout=None, methods=None):
    """Serves ``decide`` (for ``run``) and ``methods`` until ``shutdown``
    or end of input."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    handlers = dict(methods or {})
    if decide is not None:
        handlers["run"] = decide
    _channel["stdin"], _channel["stdout"] = stdin, stdout
    with open(manifest_path, "r", encoding="utf-8") as f:
        manifest = json.load(f)
    while True:
        line = stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as e:
            _reply(stdout, {"jsonrpc": "2.0", "id": None,
                            "error": {"code": -32700, "message": "parse error: %s" % e}})
            continue
        rid = request.get("id")
        method = request.get("method")
        params = request.get("params")
        if method == "initialize":
            offered = (params or {}).get("protocol_versions", [])
            chosen = next((v for v in PROTOCOL_VERSIONS if v in offered), None)
            if chosen is None:
                _reply(stdout, {"jsonrpc": "2.0", "id": rid, "error": {
                    "code": -32602,
                    "message": "no common protocol version; plugin speaks %s" % PROTOCOL_VERSIONS}})
                continue
            _reply(stdout, {"jsonrpc": "2.0", "id": rid,
                            "result": {"protocol_version": chosen, "manifest": manifest}})
        elif method in handlers:
            try:
                result = handlers[method](params)
                _reply(stdout, {"jsonrpc": "2.0", "id": rid, "result": result})
            except Rejected as e:
                _reply(stdout, {"jsonrpc": "2.0", "id": rid,
                                "error": {"code": CODE_REJECTED, "message": str(e)}})
            except Exception as e:  # the worker survives a failing decision
                traceback.print_exc(file=sys.stderr)
                _reply(stdout, {"jsonrpc": "2.0", "id": rid, "error": {
                    "code": CODE_FAILED, "message": "%s: %s" % (type(e).__name__, e)}})
        elif method == "shutdown":
            _reply(stdout, {"jsonrpc": "2.0", "id": rid, "result": None})
            return
        else:
            _reply(stdout, {"jsonrpc": "2.0", "id": rid,
                            "error": {"code": -32601, "message": "unknown method %r" % method}})
