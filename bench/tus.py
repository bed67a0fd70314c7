"""Resumable (tus) upload throughput: ours, our form upload, and the tus project's own
Node server (``@tus/server`` + ``@tus/file-store``, unencrypted) on the same file, in
the same run, rounds alternating.

curl is the client for all three: ``POST`` to create, then one streaming ``PATCH``
(``-T``) of the whole file, so the figure is the server's, not a client's chunking.
The Node server comes from the repository's npm lock (``npm ci`` installs it with the
test tools); ours runs with one worker, as ``bench.transfer`` does.

    python -m bench.tus [--size 1G] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.harness import (
    HIGH_LIMITS,
    ROOT,
    curl,
    free_port,
    human_size,
    make_random_file,
    parse_size,
    product_command,
    serve,
    upload_file,
)

TUS = "Tus-Resumable: 1.0.0"
NODE_SERVER = ROOT / "bench" / "tus_reference" / "server.mjs"


def tus_upload(create_url: str, path: Path) -> float:
    """Seconds for creating a tus upload and sending the whole file in one PATCH."""
    size = path.stat().st_size
    started = time.perf_counter()
    created = subprocess.run(
        [
            "curl",
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-H",
            TUS,
            "-H",
            f"Upload-Length: {size}",
            "-H",
            "Upload-Metadata: filename YmVuY2guYmlu",
            create_url,
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    location = next(
        line.split(":", 1)[1].strip()
        for line in created.stdout.splitlines()
        if line.lower().startswith("location:")
    )
    if location.startswith("/"):
        location = create_url.split("/", 3)[0] + "//" + create_url.split("/", 3)[2] + location
    curl(
        "-X",
        "PATCH",
        "-T",
        str(path),
        "-H",
        TUS,
        "-H",
        "Upload-Offset: 0",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "-o",
        "/dev/null",
        location,
    )
    return time.perf_counter() - started


@contextmanager
def node_tus_server(directory: Path) -> Iterator[str]:
    if not (ROOT / "node_modules" / "@tus" / "server").exists():
        raise SystemExit("bench.tus needs the npm packages: run `npm ci` (make test does)")
    port = free_port()
    process = subprocess.Popen(
        ["node", str(NODE_SERVER), str(port), str(directory)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/files"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.options(url, timeout=1).status_code in {200, 204}:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Node tus server did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def benchmark(size: int, repeats: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {"tus": [], "form": [], "node": []}
    with tempfile.TemporaryDirectory(prefix="ots-bench-tus-") as scratch:
        directory = Path(scratch)
        path = make_random_file(directory, size)
        store = directory / "node-store"
        store.mkdir()
        env = {**HIGH_LIMITS, "OTS_MIN_FREE_BYTES": "0", "OTS_MAX_UPLOAD_BYTES": str(2 * size)}
        with (
            serve(product_command(), workers=1, env=env) as product,
            node_tus_server(store) as node,
        ):
            for attempt in range(repeats + 1):  # the first round warms caches
                timings = {
                    "tus": tus_upload(f"{product.base_url}/tus/", path),
                    "form": upload_file(product.base_url, path)[0],
                    "node": tus_upload(node, path),
                }
                for stored in store.iterdir():
                    stored.unlink()
                if attempt:
                    for name, seconds in timings.items():
                        figures[name].append(size / seconds / 1e6)
    return {name: statistics.median(values) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    size = parse_size(arguments.size)
    result = benchmark(size, arguments.repeats)
    node = result["node"]
    print(f"tus upload of {human_size(size)}, 1 worker, median of {arguments.repeats}, MB/s")
    print(
        f"  ours, tus (encrypting)    {result['tus']:8.0f}  {result['tus'] / node:.2f}x (>= 1.5x)"
    )
    print(f"  ours, form upload         {result['form']:8.0f}  {result['form'] / node:.2f}x")
    print(f"  @tus/server + file-store  {node:8.0f}  the tus project's Node server, unencrypted")


if __name__ == "__main__":
    main()
