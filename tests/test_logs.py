"""No log line carries a link token, revoke token or upload id, whatever wrote it.

The rule itself is tested on paths and on free text; then a fault is injected
where the last-resort logging lives: the real error template is replaced by one
that raises (quoting the path and its secret in the exception), in an app in
this process with the real log set-up in both formats, and in the real
``onetimeshare serve``, and every log line is scanned for the secrets. Last, a
served round of uploads, guesses, downloads and a revoke logs JSON lines (OTS_LOG_FORMAT)
that hold none of them either.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import jinja2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from onetimeshare import logs, resources
from onetimeshare.config import Settings
from onetimeshare.domain.crypto import encode_token, new_token
from onetimeshare.domain.progress import new_upload_id
from tests.helpers import (
    BROWSER,
    FORM,
    JSON,
    LiveServerFactory,
    multipart,
    running_app,
    token_path,
    upload,
)

TOKEN = encode_token(new_token())
# Raises while rendering, with the path and every segment of it (the bare secret
# among them) in the exception's message: "'dict object' has no attribute '...'".
FAILING_ERROR_PAGE = '{{ {}[request.path ~ " " ~ request.path.split("/") | join(" ")]() }}'


# --- the rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        (f"/d/{TOKEN}", "/d/…"),
        (f"/d/{TOKEN}/status", "/d/…/status"),
        (f"/d/{TOKEN}/unlock", "/d/…/unlock"),
        (f"/r/{TOKEN}", "/r/…"),
        ("/upload/progress/abcdefghijklmnopqrstuv", "/upload/progress/…"),
        ("/d/x y", "/d/…"),  # whatever the route would capture
        ("/upload", "/upload"),
        ("/admin/shares/0123abcd/revoke", "/admin/shares/0123abcd/revoke"),
        ("/static/d/app.js", "/static/d/app.js"),
        (f"//d//{TOKEN}", "//d//…"),  # redirected by the router, and logged first
        (f"/d/./{TOKEN}/status", "/d/./…/status"),
        (f"/r/../r//{TOKEN}", "/r/../…//…"),  # more hidden than needed, never less
        ("/upload//progress/abcdefghijklmnopqrstuv", "/upload//progress/…"),
        (f"/somewhere/{TOKEN}", "/somewhere/…"),  # a token's shape, wherever it is
    ],
    ids=[
        "share",
        "status",
        "unlock",
        "revoke",
        "progress",
        "odd",
        "upload",
        "admin",
        "static",
        "doubled",
        "dot",
        "dotdot",
        "progress-doubled",
        "shape",
    ],
)
def test_request_paths_lose_their_secret_segment(path: str, logged: str) -> None:
    assert logs.redact_path(path) == logged


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        (f"Exception on request GET /d/{TOKEN}", "Exception on request GET /d/…"),
        (f"GET /d/{TOKEN}/unlock?x=1 HTTP/1.1", "GET /d/…/unlock?x=1 HTTP/1.1"),
        (f"https://share.example:8443/r/{TOKEN}#top", "https://share.example:8443/r/…#top"),
        (f"KeyError: '/upload/progress/{TOKEN}'", "KeyError: '/upload/progress/…'"),
        (f"/login?next=%2Fd%2F{TOKEN}%2Fstatus&a=b", "/login?next=%2Fd%2F…%2Fstatus&a=b"),
        (f"/d/{TOKEN}, /r/{TOKEN}; (/d/{TOKEN})", "/d/…, /r/…; (/d/…)"),
        (f'{{"path": "/d/{TOKEN}\\n"}}', '{"path": "/d/…\\n"}'),
        ("nothing to hide in /upload or /admin", "nothing to hide in /upload or /admin"),
        (f"GET /d//{TOKEN} -> 308", "GET /d//… -> 308"),
        (f"share id 0123abcd, not {TOKEN[:42]}", f"share id 0123abcd, not {TOKEN[:42]}"),
    ],
    ids=[
        "quart",
        "request-line",
        "url",
        "repr",
        "encoded",
        "several",
        "json",
        "none",
        "doubled",
        "not-a-token",
    ],
)
def test_free_text_loses_every_secret_segment(text: str, logged: str) -> None:
    assert logs.redact_text(text) == logged


def test_a_requests_own_secret_goes_wherever_it_appears() -> None:
    secrets = logs.secrets_in_path(f"/d/{TOKEN}/status")
    assert secrets == (TOKEN,)
    assert logs.redact_text(f"InvalidToken: {TOKEN}", secrets) == "InvalidToken: …"
    # Too short to be a token or id of ours: replacing "ab" everywhere would mangle lines.
    assert logs.secrets_in_path("/d/ab") == ()
    assert logs.secrets_in_path("/upload") == ()


SECRET = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=16)


@settings(max_examples=300, deadline=None, database=None)
@given(
    before=st.text(),
    after=st.text(),
    prefix=st.sampled_from(logs.SECRET_PATH_PREFIXES),
    encoded=st.booleans(),
    secret=SECRET,
)
def test_no_text_around_a_secret_path_lets_the_secret_through(
    before: str, after: str, prefix: str, encoded: bool, secret: str
) -> None:
    if encoded:
        prefix = prefix.replace("/", "%2F")
    assume(secret not in before and secret not in after)  # else it is outside any path
    assert secret not in logs.redact_text(before + prefix + secret + after)


# --- every record, from every logger -----------------------------------------------


@dataclasses.dataclass
class CapturedLog:
    json_format: bool
    output: io.StringIO

    def text(self) -> str:
        """Everything written, with JSON lines decoded (so that "…" reads as "…")."""
        raw = self.output.getvalue()
        if not self.json_format:
            return raw
        records = [json.loads(line) for line in raw.splitlines() if line.strip()]
        return raw + "\n".join(str(value) for record in records for value in record.values())


@pytest.fixture(params=["json", "text"])
def log_output(request: pytest.FixtureRequest) -> Iterator[CapturedLog]:
    """The real handler, formatter and filter of logs.configure(), writing to a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    captured = CapturedLog(request.param == "json", io.StringIO())
    logs.configure(captured.json_format, stream=captured.output)
    yield captured
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_part_of_a_record_is_redacted(log_output: CapturedLog) -> None:
    server = logging.getLogger("hypercorn.error")
    server.error("Error handling %s", f"GET /d/{TOKEN} HTTP/1.1")
    try:
        raise ValueError(f"cannot open https://share.example/r/{TOKEN}")
    except ValueError:
        logging.getLogger("quart.app").exception("failed on /upload/progress/%s", TOKEN)
    logging.getLogger("onetimeshare.requests").info(
        "request", extra={"path": f"/d/{TOKEN}/status", "referer": f"/d/{TOKEN}"}
    )
    logging.getLogger("onetimeshare").warning("where: /d/%s", TOKEN, stack_info=True)
    text = log_output.text()
    assert TOKEN not in text
    assert "ValueError: cannot open https://share.example/r/…" in text
    assert "Error handling GET /d/… HTTP/1.1" in text


# --- a failure while rendering the error page ----------------------------------------


async def test_a_failing_error_page_logs_no_secret(
    settings: Settings, log_output: CapturedLog
) -> None:
    async with running_app(settings) as application:
        loader = application.jinja_env.loader
        assert loader is not None
        # The real environment, with its real loader behind one template that raises.
        application.jinja_env.loader = jinja2.ChoiceLoader(
            [jinja2.DictLoader({"error.html": FAILING_ERROR_PAGE}), loader]
        )
        client = application.test_client()
        share = await upload(client, b"logged nowhere")
        token = token_path(share).rsplit("/", 1)[1]
        revoke_token = str(share["revoke_url"]).rsplit("/", 1)[1]
        upload_id = new_upload_id()
        answers = [
            await client.get(f"/d/{token}/unlock"),  # 405
            await client.delete(f"/d/{token}"),  # 405
            await client.get(f"/d/{TOKEN}?from=mail"),  # 404: no such share
            await client.delete(f"/r/{revoke_token}"),  # 405
            await client.put(f"/upload/progress/{upload_id}"),  # 405
        ]
        # Not routed as they are (a redirect, a 404), but logged before anything else.
        for odd in (f"/d//{token}", f"/d/./{token}", f"/r//{revoke_token}"):
            assert (await client.get(odd)).status_code in {308, 404, 500}
        json_answer = await client.delete(f"/r/{revoke_token}", headers=JSON)

    text = log_output.text()
    for secret in (token, revoke_token, upload_id, TOKEN):
        assert secret not in text, secret
    # The failures were logged, redacted, not dropped.
    assert "Exception on request GET /d/…/unlock" in text
    assert "The error page failed on request PUT /upload/progress/…" in text
    assert "UndefinedError" in text
    for answer in answers:
        assert answer.status_code == 500
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Something went wrong" in await answer.get_data(as_text=True)
    # Only HTML needed the failing template.
    assert json_answer.status_code == 405


# --- the real server -----------------------------------------------------------------


def package_with_failing_error_page(root: Path) -> Path:
    """A copy of the installed package whose error.html raises; only the template differs.

    Put first on PYTHONPATH, it is what the server and every worker it spawns import."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(resources.package_path(""), root / "onetimeshare", ignore=ignore)
    (root / "onetimeshare" / "templates" / "error.html").write_text(FAILING_ERROR_PAGE)
    return root


def test_the_server_log_never_carries_a_secret(
    live_server_factory: LiveServerFactory, tmp_path: Path
) -> None:
    copy = package_with_failing_error_page(tmp_path / "copy")
    server = live_server_factory(workers=2, env={"OTS_LOG_FORMAT": "json", "PYTHONPATH": str(copy)})
    body, headers = multipart(file=("notes.txt", b"never in a log"))
    share = httpx.post(
        f"{server.base_url}/upload", content=body, headers={**headers, **JSON}
    ).json()
    link, revoke_link = str(share["url"]), str(share["revoke_url"])
    upload_id = new_upload_id()
    with httpx.Client(headers=BROWSER) as client:
        answers = [
            client.get(f"{link}/unlock"),
            client.delete(link),
            client.get(f"{server.base_url}/d/{TOKEN}?from=mail"),
            client.delete(revoke_link),
            client.put(f"{server.base_url}/upload/progress/{upload_id}"),
            client.get(f"{server.base_url}/upload/progress/{upload_id}x"),  # 404
            client.post(link),  # the download itself works: no error page
            client.post(link),  # 410, on an error page that fails
        ]
    server.stop()

    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    log_text = "\n".join(lines)
    secrets = [
        link.rsplit("/", 1)[1],
        revoke_link.rsplit("/", 1)[1],
        upload_id,
        TOKEN,
    ]
    for secret in secrets:
        assert secret not in log_text, secret
    messages = [json.loads(line)["message"] for line in lines]  # every line is JSON
    assert "Exception on request POST /d/…" in messages
    assert "The error page failed on request PUT /upload/progress/…" in messages
    assert [answer.status_code for answer in answers] == [500] * 6 + [200, 500]
    assert "Something went wrong" in answers[-1].text


def test_logs_are_json_lines_without_any_secret(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(workers=2, env={"OTS_LOG_FORMAT": "json"}, block_cli_agents=True)
    name, password, text = "TOPSECRET-plan.pdf", "log-password-42", "LOGGED-SECRET-TEXT"
    body, headers = multipart({"password": password}, (name, os.urandom(5000)))
    share = httpx.post(
        f"{server.base_url}/upload", content=body, headers={**headers, **JSON}
    ).json()
    body, headers = multipart({"text": text, "password": password})
    message = httpx.post(
        f"{server.base_url}/upload", content=body, headers={**headers, **JSON}
    ).json()
    link, note = str(share["url"]), str(message["url"])
    httpx.get(link, headers=BROWSER)
    httpx.post(link, content=b"password=wrong", headers={**BROWSER, **FORM})
    httpx.post(link, content=f"password={password}".encode(), headers={**BROWSER, **FORM})
    httpx.post(note, content=f"password={password}".encode(), headers={**BROWSER, **FORM})
    httpx.get(link, headers={"User-Agent": "curl/8"})
    httpx.post(str(message["revoke_url"]), headers=BROWSER)
    server.stop()

    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    paths = {record.get("path") for record in records if record["logger"].endswith("requests")}
    assert {"/upload", "/d/…"} <= paths
    events = [record["event"] for record in records if record.get("event")]
    assert {"created", "wrong_password", "downloaded", "blocked"} <= set(events)
    log_text = server.log_path.read_text()
    secrets = [
        name,
        "TOPSECRET",
        password,
        text,
        link.rsplit("/", 1)[1],
        note.rsplit("/", 1)[1],
        str(message["revoke_url"]).rsplit("/", 1)[1],
    ]
    for secret in secrets:
        assert secret not in log_text, secret
