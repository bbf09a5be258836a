"""A bare Flask app answering Wallet's two update requests from memory: fanout's baseline.

bench/fanout.py runs it under the same gunicorn as the real app
(`gunicorn 'bench.bare_wallet:create_app()'`, WEB_CONCURRENCY=2) and points the same simulated
phones at it. It answers what the real app answers after a change, with no database, no token
check and no signing: the serial list (one serial, as JSON) and the pass (a fixed .pkpass the
benchmark downloaded from the real app, with Last-Modified, or 304 for If-Modified-Since).

Environment: BARE_PKPASS (path of the .pkpass), BARE_SERIAL (its serial number),
BARE_LAST_MODIFIED (an HTTP date; set by the benchmark so every worker answers the same).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask, Response, request

PKPASS_MIMETYPE = "application/vnd.apple.pkpass"


def create_app() -> Flask:
    app = Flask(__name__)
    package = Path(os.environ["BARE_PKPASS"]).read_bytes()
    last_modified = os.environ["BARE_LAST_MODIFIED"]
    listing = json.dumps({"serialNumbers": [os.environ["BARE_SERIAL"]], "lastUpdated": "2"})

    @app.get("/wallet/v1/devices/<device_id>/registrations/<pass_type_id>")
    def updated_serials(device_id: str, pass_type_id: str) -> Response:
        return Response(listing, mimetype="application/json")

    @app.get("/wallet/v1/passes/<pass_type_id>/<serial_number>")
    def latest_pass(pass_type_id: str, serial_number: str) -> Response:
        if request.headers.get("If-Modified-Since") == last_modified:
            response = Response(status=304)
        else:
            response = Response(package, mimetype=PKPASS_MIMETYPE)
        response.headers["Last-Modified"] = last_modified
        response.headers["Cache-Control"] = "no-cache"
        return response

    return app
