"""Start the remote connectors' local servers through their scripts (scripts/{s3,gcs,azurite,sftp,ftp,kinesis,http}.sh)
on free non-default ports with a private state folder, read their `env` lines, stop them.

Installs go to the shared cache (~/.cache/flow-beam, so a second run is warm); state goes to a fresh folder under
~/.cache/flow-beam/run (sshd's ChrootDirectory refuses folders under /tmp, which is world-writable).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("FLOW_BEAM_CACHE", str(Path.home() / ".cache" / "flow-beam")))

# script → the env var holding its main port (and extra port-range vars)
PORT_VARS = {
    "s3": "FLOW_BEAM_S3_PORT", "gcs": "FLOW_BEAM_GCS_PORT", "azurite": "FLOW_BEAM_AZURITE_PORT",
    "sftp": "FLOW_BEAM_SFTP_PORT", "ftp": "FLOW_BEAM_FTP_PORT", "kinesis": "FLOW_BEAM_KINESIS_PORT",
    "http": "FLOW_BEAM_HTTP_PORT",
}


class ServerUnavailable(Exception):
    """The server cannot run here (its install failed: no Go, no npm, no registry...)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_range(n: int) -> tuple[int, int]:
    """n consecutive free ports (best effort: free when probed)."""
    for _ in range(50):
        base = free_port()
        if base + n > 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base, base + n - 1
    raise RuntimeError(f"no {n} consecutive free ports on 127.0.0.1")


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


class ScriptServer:
    """One server started by ``bash scripts/<name>.sh start`` with ``extra`` env vars (ports are chosen here)."""

    def __init__(self, name: str, extra: dict[str, str] | None = None, state: str | None = None):
        self.name = name
        self.script = str(REPO / "scripts" / f"{name}.sh")
        run_root = CACHE / "run"
        run_root.mkdir(parents=True, exist_ok=True)
        self.state = state or tempfile.mkdtemp(prefix=f"test-{name}-", dir=run_root)
        self._own_state = state is None
        self.port = free_port()
        self.base_env = {**os.environ, "FLOW_BEAM_STATE": self.state, PORT_VARS[name]: str(self.port),
                         **(extra or {})}
        if name == "ftp" and "FLOW_BEAM_FTP_PASSIVE_PORTS" not in self.base_env:
            low, high = free_port_range(5)
            self.base_env["FLOW_BEAM_FTP_PASSIVE_PORTS"] = f"{low}-{high}"
        self.env: dict[str, str] = {}

    def run(self, action: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", self.script, action], env=self.base_env, capture_output=True, text=True,
                              timeout=timeout)

    def install(self) -> None:
        r = self.run("install")
        if r.returncode != 0:
            raise ServerUnavailable(f"scripts/{self.name}.sh install failed here:\n{_tail(r.stderr)}")

    def start(self) -> "ScriptServer":
        self.install()
        r = self.run("start", timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/{self.name}.sh start failed:\n{_tail(r.stderr, 40)}")
        self.env = self.read_env()
        return self

    def read_env(self) -> dict[str, str]:
        """The variables the script's ``env`` exports, as a shell would see them after ``eval``."""
        code = ('lines="$(bash "$0" env)"; eval "$lines"; '
                'for v in $(printf "%s\\n" "$lines" | sed -n "s/^export \\([A-Za-z_0-9]*\\)=.*/\\1/p"); do '
                'printf "%s=%s\\0" "$v" "${!v}"; done')
        r = subprocess.run(["bash", "-c", code, self.script], env=self.base_env, capture_output=True, text=True,
                           timeout=60, check=True)
        return dict(item.split("=", 1) for item in r.stdout.split("\0") if item)

    def status(self) -> int:
        return self.run("status", timeout=60).returncode

    def pid(self) -> int | None:
        for f in Path(self.state).glob(f"*/{'sshd' if self.name == 'sftp' else self.name}.pid"):
            try:
                return int(f.read_text().strip())
            except ValueError:
                return None
        return None

    def stop(self) -> None:
        self.run("stop", timeout=120)

    def cleanup(self) -> None:
        self.stop()
        if self._own_state:
            shutil.rmtree(self.state, ignore_errors=True)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
