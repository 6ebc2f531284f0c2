"""`switchboard up` run as a user runs it, its output read line by line as it comes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from tests.conftest import free_port

STARTUP_TIMEOUT = 180  # the first run on a cold CI machine downloads the broker's jars
_INSTANCE_LINE = re.compile(r"^  (?P<name>[\w-]+)\s+(?P<url>http://\S+/readyz)  …/metrics$")
_NUMBERED = re.compile(r"-\d+$")


def up_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no SWITCHBOARD_* but the data dir, free ports and `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_DATA_DIR": str(data_dir),
            "SWITCHBOARD_HTTP_PORT": str(free_port()),
            "SWITCHBOARD_SMTP_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    # Reuse the jars CI or an earlier run already fetched, as a user's second run would.
    shared_jars = Path(os.environ.get("SWITCHBOARD_TEST_JARS", Path.home() / ".local/share/switchboard/kafka-libs"))
    if shared_jars.is_dir() and not (data_dir / "kafka-libs").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "kafka-libs").symlink_to(shared_jars)
    return env


class RunningStack:
    def __init__(self, env: dict[str, str], *args: str):
        self.data_dir = Path(env["SWITCHBOARD_DATA_DIR"])
        self.base_url = f"http://127.0.0.1:{env['SWITCHBOARD_HTTP_PORT']}"
        self.smtp_port = int(env["SWITCHBOARD_SMTP_PORT"])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "switchboard", "up", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._new_output = threading.Condition()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        for line in self.process.stdout:
            with self._new_output:
                self.output.append(line.rstrip("\n"))
                self._new_output.notify_all()
        with self._new_output:
            self._new_output.notify_all()

    def wait_for_line(self, pattern: str, timeout: float, after: int = 0) -> tuple[int, re.Match]:
        """The first output line from index `after` on that matches `pattern`, and its index."""

        def found() -> tuple[int, re.Match] | None:
            for index in range(after, len(self.output)):
                if match := re.search(pattern, self.output[index]):
                    return index, match
            return None

        with self._new_output:
            if not self._new_output.wait_for(lambda: found() or self.process.poll() is not None, timeout):
                raise AssertionError(f"no line matching {pattern!r} in {timeout}s:\n" + "\n".join(self.output))
            if (line := found()) is None:
                raise AssertionError(f"switchboard up exited without {pattern!r}:\n" + "\n".join(self.output))
            return line

    def wait_until_up(self) -> None:
        self.wait_for_line(r"^Switchboard is up\.", STARTUP_TIMEOUT)

    def ready_urls(self) -> dict[str, str]:
        """Every instance's /readyz URL as `up` printed it (intake-http's is the base URL's)."""
        urls = {"intake-http": f"{self.base_url}/readyz"}
        urls.update({m["name"]: m["url"] for line in self.output if (m := _INSTANCE_LINE.match(line))})
        return urls

    def kafka_bootstrap(self) -> str:
        return self.wait_for_line(r"^  kafka\s+(\S+)$", 1)[1][1]

    def instance(self, name: str, timeout: float = 30) -> psutil.Process:
        """The running process of instance `name` (e.g. `router-2`), waiting for it to be (re)started."""
        service = _NUMBERED.sub("", name)
        port = self.ready_urls()[name].rsplit(":", 1)[1].split("/")[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in psutil.Process(self.process.pid).children():
                try:
                    if child.cmdline()[-2:] != ["run", service] or child.status() == psutil.STATUS_ZOMBIE:
                        continue
                    if child.environ().get("SWITCHBOARD_OPS_PORT") == port:
                        return child
                except psutil.NoSuchProcess:
                    continue
            time.sleep(0.05)
        raise AssertionError(f"no running {name} in {timeout}s:\n" + "\n".join(self.output))

    def family(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self, timeout: float = 90) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
