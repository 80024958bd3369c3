"""A small HTTP server on 127.0.0.1 for the download tests: no network is ever touched."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """Serves ``files`` by base name under ``url`` (``http://127.0.0.1:<port>/<prefix>/``).

    ``status`` other than 200 answers every request with that error; ``truncate``
    announces the full Content-Length but sends only the first half of the body.
    ``requests`` records ``(path, user agent)`` of every request.
    """

    def __init__(self, files: dict[str, bytes], status: int = 200, truncate: bool = False,
                 prefix: str = "data") -> None:
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("User-Agent", "")))
                name = self.path.rsplit("/", 1)[-1]
                if status != 200:
                    self.send_error(status)
                elif name not in files:
                    self.send_error(404)
                else:
                    data = files[name]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2] if truncate else data)

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{prefix}/"
        # A short poll interval keeps shutdown() (and so each test) fast.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
