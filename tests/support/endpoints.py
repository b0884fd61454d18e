"""Token endpoints other than the emulator: a scripted one on loopback, for answers the emulator never gives."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: A token endpoint's success answer as an Apigee-style gateway sends it (schneider_apis.md, section 5): every
#: value a string, ``token_type`` "BearerToken", many extra fields. Written from the facts, not the emulator.
APIGEE_TOKEN = {
    "refresh_token_expires_in": "0",
    "api_product_list": "[Partner-Orders]",
    "api_product_list_json": ["Partner-Orders"],
    "organization_name": "se",
    "developer.email": "team@distributor.example",
    "token_type": "BearerToken",
    "issued_at": "1764672000000",
    "client_id": "demo-client",
    "access_token": "tok-apigee-0123456789abcdef",
    "application_name": "a1b2c3",
    "scope": "",
    "expires_in": "3599",
    "refresh_count": "0",
    "status": "approved",
}


class TokenEndpoint:
    """A real loopback token endpoint that records each request and answers a scripted body."""

    def __init__(self, status: int = 200, body: bytes | None = None, content_type: str = "application/json"):
        self.requests: list[dict] = []
        self.status, self.content_type = status, content_type
        self.body = body or json.dumps({"access_token": "tok-" + "x" * 30, "expires_in": 3600}).encode()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                endpoint.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(endpoint.status)
                self.send_header("Content-Type", endpoint.content_type)
                self.send_header("Content-Length", str(len(endpoint.body)))
                self.end_headers()
                self.wfile.write(endpoint.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
