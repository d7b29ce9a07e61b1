"""Loopback fakes of the GitHub and GitLab REST endpoints ``modelroute comment`` uses.

Each speaks its API's wire format as documented: JSON bodies, the ``message`` of an
error, ``Link`` pagination (``per_page``/``page``), GitHub's ``Authorization: Bearer``
and GitLab's ``PRIVATE-TOKEN``, GitHub Enterprise's ``/api/v3`` root. A token listed as
read-only may read but not write (a fork's workflow token). ``echo_auth`` makes errors
quote the credentials they were sent, so a test can prove that nothing prints them.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Fake:
    prefix = ""

    def __init__(self, token: str, read_only: tuple[str, ...] = (), echo_auth: bool = False):
        self.token = token
        self.read_only = read_only
        self.echo_auth = echo_auth
        self.requests: list[tuple[str, str]] = []  # (method, path with query)
        self.fail_next: list[int] = []  # statuses to answer before serving normally
        self.next_id = 1000
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with fake.lock:
                    fake.requests.append((self.command, self.path))
                    if fake.fail_next:
                        status, payload, headers = fake.fail_next.pop(0), {"message": "x"}, {}
                    else:
                        status, payload, headers = fake.handle(self, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> _Fake:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def handle(self, req: BaseHTTPRequestHandler, body: Any) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def _auth(self, sent: str | None, method: str) -> tuple[int, Any, dict[str, str]] | None:
        """An error answer for the credentials sent, or None when they may do this."""
        if sent == self.token:
            return None
        echo = f" (sent {sent})" if self.echo_auth else ""
        if sent in self.read_only:
            if method == "GET":
                return None
            return 403, {"message": self.forbidden + echo}, {}
        return 401, {"message": self.unauthorized + echo}, {}

    def page(
        self, req: BaseHTTPRequestHandler, items: list[dict[str, Any]]
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urllib.parse.urlsplit(req.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        per_page = min(int(query.get("per_page", 20)), 100)
        page = int(query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        headers = self.page_headers(page, last)

        def link(n: int) -> str:
            q = urllib.parse.urlencode({**query, "page": n})
            return f"http://{req.headers['Host']}{parts.path}?{q}"

        links = []
        if page < last:
            links.append(f'<{link(page + 1)}>; rel="next"')
        links += [f'<{link(1)}>; rel="first"', f'<{link(last)}>; rel="last"']
        if self.send_link:
            headers["Link"] = ", ".join(links)
        return 200, items[(page - 1) * per_page : page * per_page], headers

    send_link = True
    forbidden = unauthorized = ""

    def page_headers(self, page: int, last: int) -> dict[str, str]:
        return {}


class FakeGitHub(_Fake):
    """``/repos/{owner}/{repo}/issues/{n}/comments`` (list, create) and
    ``/repos/{owner}/{repo}/issues/comments/{id}`` (update), under ``/api/v3``."""

    prefix = "/api/v3"
    forbidden = "Resource not accessible by integration"
    unauthorized = "Bad credentials"

    def __init__(self, token: str, login: str | None = None, **kw: Any) -> None:
        super().__init__(token, **kw)
        #: repository -> pull request number -> comments
        self.threads: dict[str, dict[int, list[dict[str, Any]]]] = {}
        #: the token's user (a personal token's); None: a workflow token, which may not
        #: ask ``GET /user`` (403) and comments as github-actions[bot]
        self.login = login

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self.threads.setdefault(repo, {}).setdefault(number, [])

    def add(self, repo: str, number: int, body: str, login: str = "someone") -> dict[str, Any]:
        comment = {
            "id": self.new_id(),
            "body": body,
            "user": {"login": login},
            "html_url": f"https://github.example/{repo}/pull/{number}#issuecomment-{self.next_id}",
        }
        self.comments(repo, number).append(comment)
        return comment

    def handle(self, req: BaseHTTPRequestHandler, body: Any) -> tuple[int, Any, dict[str, str]]:
        auth = req.headers.get("Authorization", "")
        sent = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else auth or None
        denied = self._auth(sent, req.command)
        if denied:
            return denied
        path = urllib.parse.urlsplit(req.path).path.removeprefix(self.prefix)
        not_found = 404, {"message": "Not Found"}, {}
        if path == "/user" and req.command == "GET":
            if self.login is None:
                return 403, {"message": self.forbidden}, {}
            return 200, {"login": self.login}, {}
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path):
            repo, number = urllib.parse.unquote(m[1]), int(m[2])
            if repo not in self.threads or number not in self.threads[repo]:
                return not_found
            if req.command == "GET":
                return self.page(req, self.comments(repo, number))
            if req.command == "POST":
                author = self.login or "github-actions[bot]"
                return 201, self.add(repo, number, body["body"], author), {}
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path):
            repo = urllib.parse.unquote(m[1])
            for comment in (c for cs in self.threads.get(repo, {}).values() for c in cs):
                if comment["id"] == int(m[2]) and req.command == "PATCH":
                    comment["body"] = body["body"]
                    return 200, comment, {}
        return not_found


class FakeGitLab(_Fake):
    """``/projects/{id}/merge_requests/{iid}/notes`` (list, create) and ``.../notes/{id}``
    (update), under ``/api/v4``; system notes are listed too, as GitLab does."""

    prefix = "/api/v4"
    forbidden = "403 Forbidden"
    unauthorized = "401 Unauthorized"

    def __init__(self, token: str, send_link: bool = True, **kw: Any) -> None:
        super().__init__(token, **kw)
        self.send_link = send_link
        #: project id -> merge request iid -> notes
        self.threads: dict[str, dict[int, list[dict[str, Any]]]] = {}

    def notes(self, project: str, iid: int) -> list[dict[str, Any]]:
        return self.threads.setdefault(project, {}).setdefault(iid, [])

    def add(self, project: str, iid: int, body: str, system: bool = False) -> dict[str, Any]:
        note = {"id": self.new_id(), "body": body, "system": system, "noteable_iid": iid}
        self.notes(project, iid).append(note)
        return note

    def page_headers(self, page: int, last: int) -> dict[str, str]:
        return {"X-Page": str(page), "X-Next-Page": str(page + 1) if page < last else ""}

    def handle(self, req: BaseHTTPRequestHandler, body: Any) -> tuple[int, Any, dict[str, str]]:
        denied = self._auth(req.headers.get("PRIVATE-TOKEN"), req.command)
        if denied:
            return denied
        path = urllib.parse.urlsplit(req.path).path.removeprefix(self.prefix)
        not_found = 404, {"message": "404 Not found"}, {}
        m = re.fullmatch(r"/projects/([^/]+)/merge_requests/(\d+)/notes(?:/(\d+))?", path)
        if not m:
            return not_found
        project, iid = urllib.parse.unquote(m[1]), int(m[2])
        if project not in self.threads or iid not in self.threads[project]:
            return not_found
        if m[3] is None and req.command == "GET":
            return self.page(req, self.notes(project, iid))
        if m[3] is None and req.command == "POST":
            return 201, self.add(project, iid, body["body"]), {}
        if m[3] is not None and req.command == "PUT":
            for note in self.notes(project, iid):
                if note["id"] == int(m[3]):
                    note["body"] = body["body"]
                    return 200, note, {}
        return not_found
