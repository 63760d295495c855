"""scripts/postgres.sh keeps its cluster where the server user can reach it WITHOUT changing the permissions of
the user's home (issue 11: it used to `chmod o+x` it). A private instance on a free port, with a home-like state
root of mode 700, started and stopped by the test (the shared server is not touched)."""
import glob
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "postgres.sh")

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_home():
    if os.geteuid() != 0:
        pytest.skip("the home-permission case arises when the script runs as root (the server runs as postgres)")
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("PostgreSQL server binaries are not installed: bash scripts/postgres.sh install")
    home = tempfile.mkdtemp(prefix="fb-home-", dir="/tmp")
    os.chmod(home, 0o700)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _script(env, *args):
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=180)


def test_state_outside_an_unreachable_home_and_home_permissions_unchanged(private_home):
    port = _free_port()
    env = {**os.environ, "FLOW_BEAM_STATE": os.path.join(private_home, "run"), "FLOW_BEAM_PG_PORT": str(port)}
    env.pop("FLOW_BEAM_PG_STATE", None)
    state = f"/var/tmp/flow-beam-pg-0-{port}"
    try:
        out = _script(env, "start")
        assert out.returncode == 0, out.stderr
        assert stat.S_IMODE(os.stat(private_home).st_mode) == 0o700  # untouched
        assert "o+x" not in out.stderr and state in out.stderr
        assert _script(env, "status").returncode == 0
        answer = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-XAtc",
                                 "select 41 + 1"], capture_output=True, text=True, timeout=30)
        assert answer.stdout.strip() == "42", answer.stderr
        st = os.stat(state)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid != 0  # owned by postgres, private
    finally:
        _script(env, "stop")
        shutil.rmtree(state, ignore_errors=True)
    assert _script(env, "status").returncode == 1


def test_explicit_unreachable_state_is_a_clear_error(private_home):
    env = {**os.environ, "FLOW_BEAM_PG_STATE": os.path.join(private_home, "pg"), "FLOW_BEAM_PG_PORT": str(_free_port())}
    out = _script(env, "start")
    assert out.returncode == 1 and "FLOW_BEAM_PG_STATE" in out.stderr and "Traceback" not in out.stderr
    assert stat.S_IMODE(os.stat(private_home).st_mode) == 0o700 and not os.path.exists(env["FLOW_BEAM_PG_STATE"])
