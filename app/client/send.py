"""``onetimeshare send``: share a file (or a text) from the command line.

Files go through the server's tus endpoint with ``tuspy``, in chunks, with a progress
bar (``tqdm``: rate and time left). An interrupted send (Ctrl-C, a dropped network, a
closed laptop) resumes when run again with the same file: the upload's address is kept
in a small state file under the user's cache directory (mode 0600, deleted once the
upload is complete) and nothing else is, not the password nor the links. Texts are
small and go in one ``POST /upload``.

The password is read from the terminal without echo (``--password``), never from the
command line, where every user of the machine could see it in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader.uploader import Uploader

from ..version import __version__

DEFAULT_SERVER = "http://127.0.0.1:8000"
CHUNK_BYTES = 8 * 1024 * 1024
RETRIES = 5
RETRY_DELAY = 2.0
USER_AGENT = f"onetimeshare-send/{__version__}"
INTERRUPTED = 130
FAILED = 1
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SendError(Exception):
    """Something the person can act on; printed as one line."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "send",
        help="share a file or a text from the command line, resumably",
        description=(
            "Upload FILE (or standard input with -) and print its one-time link and its "
            "revoke link. An interrupted upload resumes when run again with the same file."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the file to share, or - for stdin")
    parser.add_argument(
        "--text", action="store_true", help="share FILE's content as a text message"
    )
    parser.add_argument(
        "--expires", help="lifetime: seconds or 10m, 1h, 1d (one of the server's choices)"
    )
    parser.add_argument(
        "--password",
        action="store_true",
        help="protect it with a password, asked for without echo (never on the command line)",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("OTS_SERVER_URL", DEFAULT_SERVER),
        help="the service (default: $OTS_SERVER_URL or %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the server's JSON answer")


def run(arguments: argparse.Namespace) -> int:
    try:
        answer = send(arguments)
    except KeyboardInterrupt:
        print("\nInterrupted; run the same command again to resume.", file=sys.stderr)
        return INTERRUPTED
    except SendError as error:
        print(f"onetimeshare send: {error}", file=sys.stderr)
        return FAILED
    if arguments.json:
        print(json.dumps(answer, indent=2))
    else:
        print(f"Link (works once): {answer['url']}")
        print(f"Revoke link (keep it to yourself): {answer['revoke_url']}")
    return 0


def send(arguments: argparse.Namespace) -> dict[str, Any]:
    server = arguments.server.rstrip("/")
    expires = _seconds(arguments.expires) if arguments.expires else None
    password = _ask_password() if arguments.password else ""
    if arguments.text:
        return _send_text(server, _read_all(arguments.file), password, expires)
    if arguments.file == "-":
        raise SendError("files are read from a path (stdin works with --text)")
    return _send_file(server, Path(arguments.file), password, expires)


# --- files, through tus ---


def _send_file(server: str, path: Path, password: str, expires: int | None) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise SendError(f"cannot read {path}: {error.strerror}") from None
    state = StateFile.default()
    key = state.key_for(server, path)
    metadata = {"filename": path.name, "filetype": "application/octet-stream"}
    if password:
        metadata["password"] = password
    if expires is not None:
        metadata["expires_in"] = str(expires)
    client = TusClient(f"{server}/tus/", headers={"User-Agent": USER_AGENT})

    def uploader_for(url: str | None) -> Uploader:
        return client.uploader(
            file_path=str(path),
            chunk_size=CHUNK_BYTES,
            metadata=metadata,
            retries=RETRIES,
            retry_delay=RETRY_DELAY,
            url=url,
        )

    url = state.get(key)
    uploader = uploader_for(url)
    try:
        if url is not None:
            try:
                uploader.offset = uploader.get_offset()
                print(f"Resuming at {uploader.offset} of {size} bytes.", file=sys.stderr)
            except TusCommunicationError:  # expired or unknown: start again
                url = None
        if url is None:
            uploader = uploader_for(None)
            url = uploader.create_url()
            uploader.set_url(url)
            uploader.offset = 0
            state.put(key, url)
        with tqdm(
            total=size,
            initial=uploader.offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=path.name,
            file=sys.stderr,
            disable=None,  # no bar when stderr is not a terminal
        ) as bar:
            while uploader.offset < size:
                before = uploader.offset
                uploader.upload_chunk()  # type: ignore[no-untyped-call]
                bar.update(uploader.offset - before)
    except TusCommunicationError as error:
        raise SendError(f"the server refused the upload ({error.status_code})") from None
    except requests.RequestException:
        raise SendError(f"cannot reach {server}; run again to resume") from None
    assert url is not None
    answer = _links(url)
    state.remove(key)
    return answer


def _links(url: str) -> dict[str, Any]:
    try:
        response = requests.get(
            url, headers={"Accept": "application/json", "User-Agent": USER_AGENT}, timeout=30
        )
    except requests.RequestException:
        raise SendError("the upload is complete but its links could not be fetched") from None
    if response.status_code != 200:
        raise SendError(f"the server did not hand out the links ({response.status_code})")
    answer: dict[str, Any] = response.json()
    return answer


# --- texts, in one request ---


def _send_text(server: str, text: str, password: str, expires: int | None) -> dict[str, Any]:
    fields = {"text": text, "password": password}
    if expires is not None:
        fields["expires_in"] = str(expires)
    try:
        response = requests.post(
            f"{server}/upload",
            files={name: (None, value) for name, value in fields.items()},
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=60,
        )
    except requests.RequestException:
        raise SendError(f"cannot reach {server}") from None
    if response.status_code != 201:
        raise SendError(_error_of(response))
    answer: dict[str, Any] = response.json()
    return answer


def _error_of(response: requests.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"the server answered {response.status_code}"


# --- input ---


def _read_all(name: str) -> str:
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as error:
        raise SendError(f"cannot read {name}: {error.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SendError("a text must be UTF-8; send binary data as a file") from None


def _ask_password() -> str:
    try:
        with open("/dev/tty", "r+") as terminal:  # stdin may carry the data
            first = getpass.getpass("Password: ", stream=terminal)
            second = getpass.getpass("Again: ", stream=terminal)
    except OSError:  # no terminal (a script): the first line of standard input
        # From the byte stream: a text read from stdin next must find the rest there.
        first = second = sys.stdin.buffer.readline().decode("utf-8").rstrip("\r\n")
    if first != second:
        raise SendError("the passwords differ")
    if not first:
        raise SendError("an empty password protects nothing")
    return first


def _seconds(text: str) -> int:
    unit = text[-1:].lower()
    number = text[:-1] if unit in _UNITS else text
    if not number.isdigit():
        raise SendError(f"--expires {text!r}: give seconds or a number with m, h or d")
    return int(number) * _UNITS.get(unit, 1)


class StateFile:
    """Upload addresses of unfinished sends, by server and file, and nothing else."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def default(cls) -> StateFile:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cls(cache / "onetimeshare" / "uploads.json")

    @staticmethod
    def key_for(server: str, path: Path) -> str:
        """The same file at the same server: its path, size and modification time."""
        facts = path.resolve().stat()
        what = f"{server}\n{path.resolve()}\n{facts.st_size}\n{facts.st_mtime_ns}"
        return hashlib.sha256(what.encode()).hexdigest()

    def _read(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def get(self, key: str) -> str | None:
        return self._read().get(key)

    def put(self, key: str, url: str) -> None:
        entries = self._read()
        entries[key] = url
        self._write(entries)

    def remove(self, key: str) -> None:
        entries = self._read()
        if entries.pop(key, None) is not None:
            self._write(entries)

    def _write(self, entries: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(entries, file)
        os.replace(temporary, self.path)
