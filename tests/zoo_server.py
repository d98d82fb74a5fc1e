"""A real HTTP server on 127.0.0.1 for the model-zoo tests: plain files, and the Hugging Face
``/{repo}/resolve/{revision}/{filename}`` route with the headers ``hf_hub_download`` needs.

- ``files[path] = bytes`` serves ``GET /path`` (404 for anything else);
- ``truncate[path] = n`` sends ``Content-Length`` of the full body but only its first n bytes,
  then closes the connection (a transfer cut short); ``cut_once[path] = n`` does so on the
  first GET only (a resumable interruption);
- hub route: HEAD and GET answer ``X-Repo-Commit`` (40 hex), ``ETag`` (the sha256 of the body,
  as the Hub does for LFS files) and ``Content-Length``; the GET honours ``Range``.
``requests`` counts (method, path) pairs, so a test can tell whether a download happened.

Also ``write_index``: a metafile naming test entries, for ``$GEAR_MODEL_INDEX``.
"""
import collections
import hashlib
import http.server
import threading
from typing import Dict, List

import yaml

COMMIT = 'c0ffee' * 6 + 'c0de'  # 40 hex digits, as X-Repo-Commit


class ZooServer:
    """``with ZooServer() as server: server.url('/x')``; see the module docstring."""

    def __init__(self):
        self.files: Dict[str, bytes] = {}
        self.truncate: Dict[str, int] = {}
        self.cut_once: Dict[str, int] = {}
        self.requests = collections.Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _body(self):
                path = self.path.split('?', 1)[0]
                server.requests[(self.command, path)] += 1
                return path, server.files.get(path)

            def _headers(self, path: str, body: bytes, start: int = 0) -> None:
                self.send_header('Content-Length', str(len(body) - start))
                self.send_header('ETag', f'"{hashlib.sha256(body).hexdigest()}"')
                if '/resolve/' in path:
                    self.send_header('X-Repo-Commit', COMMIT)
                self.send_header('Connection', 'close')
                self.end_headers()

            def do_HEAD(self):
                path, body = self._body()
                if body is None:
                    self.send_response(404)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                self.send_response(200)
                self._headers(path, body)

            def do_GET(self):
                path, body = self._body()
                if body is None:
                    self.send_error(404, 'Not Found')
                    return
                start = 0
                ranged = self.headers.get('Range')
                if ranged and ranged.startswith('bytes=') and ranged.endswith('-'):
                    start = int(ranged[len('bytes='):-1])
                self.send_response(206 if start else 200)
                self._headers(path, body, start)
                end = server.cut_once.pop(path, server.truncate.get(path, len(body)))
                self.wfile.write(body[start:end])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}'

    def url(self, path: str) -> str:
        return self.endpoint + path

    def hub_file(self, repo: str, filename: str, data: bytes, revision: str = 'main') -> str:
        """Serve ``data`` as ``filename`` of the hub repo ``repo``; returns its route."""
        path = f'/{repo}/resolve/{revision}/{filename}'
        self.files[path] = data
        return path

    def __enter__(self) -> 'ZooServer':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def entry(name: str, family: str, stage: str, config: str, source: dict, sha256=None,
          size=None, key=None, **metadata) -> dict:
    """One ``Models`` item of a metafile."""
    meta = dict(Family=family, Stage=stage, Key=key, Size=size, **metadata)
    return {'Name': name, 'In Collection': 'tests', 'Config': config, 'Metadata': meta,
            'Results': [], 'Weights': source.get('URL', ''), 'Source': source, 'SHA256': sha256}


def write_index(path, entries: List[dict]) -> str:
    """Write a metafile with ``entries``; returns its path (for ``$GEAR_MODEL_INDEX``)."""
    with open(path, 'w') as f:
        yaml.safe_dump({'Models': entries}, f, sort_keys=False)
    return str(path)
