"""The reference: a straightforward Flask implementation of OneTimeShare, for benchmarks only.

Issue 14 asks for two baselines and this one module plays both roles: the
"straightforward Flask app" the issue measured the product against (Flask 3.1,
gunicorn with 4 workers x 2 threads, ``cryptography``, a 20 MiB upload cap) and
the deliberately simple "thread-pool decrypt, send_file-style" baseline kept in
bench/ so that the ratio to a naive implementation stays visible over time. It
is kept naive on purpose: no tuning, no read-ahead, no buffer reuse; do not
optimise it, or the ratios stop meaning anything.

It answers the same requests the benchmarks send to the product, so one client
measures both:

- ``POST /upload`` (multipart ``file`` and ``expires_in``): 201 JSON with the
  absolute ``url`` (``/d/<token>``), ``size`` and ``expires_at``. Werkzeug parses
  the form (spooling larger files to a temporary file, as Flask does), then the
  file is encrypted in 64 KiB chunks with ChaCha20-Poly1305 (the age/STREAM layout:
  the nonce is the chunk counter with a last-chunk flag) into the blob directory.
  The key is in the link only; Redis keeps the name, size and nonce prefix under a
  TTL of ``expires_in``.
- ``GET /d/<token>``: an HTML landing page that never consumes.
- ``POST /d/<token>``: the file once (Content-Length, octet-stream), decrypted
  chunk by chunk on the gunicorn worker thread that serves the request; the blob
  is deleted when the response ends. Every later request gets 410 (as does a
  link whose record expired: the reference keeps no tombstones).

Not implemented, because the benchmarks do not use them: passwords, text
secrets, revoke links, rate limits, the janitor (an expired record leaves its
blob behind in the temporary directory).

Configuration from the environment (bench/reference/serve.py sets it):
``REDIS_URL`` and ``REFERENCE_BLOB_DIR``.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import redis
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from flask import Flask, Response, abort, jsonify, render_template, request, url_for

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
CHUNK = 64 * 1024
TAG = 16
EXPIRIES = {"300", "3600", "86400", "604800"}
ID_BYTES = 16
KEY_BYTES = 32

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES
metadata = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
BLOBS = Path(os.environ.get("REFERENCE_BLOB_DIR", "/tmp/onetimeshare-reference"))
BLOBS.mkdir(parents=True, exist_ok=True)


def record_key(share_id: str) -> str:
    return f"ref:share:{share_id}"


def nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    """12 bytes: a random 3-byte prefix per file, the 8-byte chunk counter, the last flag."""
    return prefix + struct.pack(">QB", counter, 1 if last else 0)


def encrypt_to(source: IO[bytes], destination: Path, key: bytes, prefix: bytes) -> int:
    """Encrypt ``source`` chunk by chunk into ``destination``; return the plaintext size."""
    cipher = ChaCha20Poly1305(key)
    size = 0
    counter = 0
    with open(destination, "wb") as blob:
        chunk = source.read(CHUNK)
        while True:
            following = source.read(CHUNK)
            last = not following
            blob.write(cipher.encrypt(nonce(prefix, counter, last), chunk, None))
            size += len(chunk)
            if last:
                return size
            chunk = following
            counter += 1


def decrypt_from(path: Path, key: bytes, prefix: bytes) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, then delete the blob (also if the client leaves)."""
    cipher = ChaCha20Poly1305(key)
    try:
        with open(path, "rb") as blob:
            counter = 0
            sealed = blob.read(CHUNK + TAG)
            while True:
                following = blob.read(CHUNK + TAG)
                yield cipher.decrypt(nonce(prefix, counter, not following), sealed, None)
                if not following:
                    return
                sealed = following
                counter += 1
    finally:
        path.unlink(missing_ok=True)


def split_token(token: str) -> tuple[str, bytes]:
    """The share id (the Redis and file name) and the key, both carried by the link."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        abort(404)
    if len(raw) != ID_BYTES + KEY_BYTES:
        abort(404)
    return raw[:ID_BYTES].hex(), raw[ID_BYTES:]


@app.get("/healthz")
def health() -> Response:
    return jsonify(status="ok")


@app.post("/upload")
def upload() -> tuple[Response, int]:
    uploaded = request.files.get("file")
    expires_in = request.form.get("expires_in", "3600")
    if uploaded is None or expires_in not in EXPIRIES:
        return jsonify(error="a file and a valid expires_in are required", code="bad_form"), 400
    raw_id, key = secrets.token_bytes(ID_BYTES), secrets.token_bytes(KEY_BYTES)
    prefix = secrets.token_bytes(3)
    share_id = raw_id.hex()
    partial = BLOBS / f"{share_id}.part"
    size = encrypt_to(uploaded.stream, partial, key, prefix)
    partial.rename(BLOBS / share_id)
    name = uploaded.filename or "file"
    seconds = int(expires_in)
    metadata.hset(record_key(share_id), mapping={"name": name, "size": size, "prefix": prefix})
    metadata.expire(record_key(share_id), seconds)
    token = base64.urlsafe_b64encode(raw_id + key).decode().rstrip("=")
    url = url_for("landing", token=token, _external=True)
    return jsonify(url=url, size=size, expires_at=int(time.time()) + seconds), 201


@app.get("/d/<token>")
def landing(token: str) -> tuple[str, int]:
    share_id, _ = split_token(token)
    record = cast(dict[bytes, bytes], metadata.hgetall(record_key(share_id)))
    if not record:
        return render_template("gone.html"), 410
    return render_template(
        "landing.html", name=record[b"name"].decode(), size=int(record[b"size"]), token=token
    ), 200


@app.post("/d/<token>")
def download(token: str) -> Response | tuple[str, int]:
    share_id, key = split_token(token)
    # GETDEL-style claim: of two racing downloads exactly one gets the record.
    with metadata.pipeline(transaction=True) as claim:
        claim.hgetall(record_key(share_id))
        claim.delete(record_key(share_id))
        record: dict[bytes, bytes] = claim.execute()[0]
    if not record:
        return render_template("gone.html"), 410
    return Response(
        decrypt_from(BLOBS / share_id, key, record[b"prefix"]),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(int(record[b"size"])),
            "Content-Disposition": "attachment",
        },
        direct_passthrough=True,
    )
