"""A fresh PostgreSQL database per test on the server scripts/postgres.sh started (FLOW_BEAM_PG_URL)."""
import contextlib
import os
import uuid

import pytest


@contextlib.contextmanager
def fresh_database():
    base = os.environ.get("FLOW_BEAM_PG_URL")
    if not base:
        pytest.skip("PostgreSQL not running: start it with `bash scripts/postgres.sh start` and "
                    "`eval $(bash scripts/postgres.sh env)`")
    import psycopg

    name = f"fbtest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
