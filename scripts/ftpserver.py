"""A local FTP server for the ftp connector's tests (pyftpdlib), run by scripts/ftp.sh: see there.

Serves ``--root`` on 127.0.0.1 to two accounts sharing one password (read from the environment variable named by
``--password-env``, never from the command line): ``--user`` may read, write, rename and delete; ``--user``-ro may
only list and read (its writes are refused with 550, for permission-denied tests). Passive data connections use
``--passive`` (``A-B``) on 127.0.0.1. Anonymous login is off.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-env", required=True)
    ap.add_argument("--passive", required=True, help="A-B: the passive port range")
    args = ap.parse_args(argv)
    password = os.environ.get(args.password_env)
    if not password:
        print(f"ftpserver: the environment variable {args.password_env} (the password) is unset", file=sys.stderr)
        return 2
    try:
        low, high = (int(p) for p in args.passive.split("-"))
    except ValueError:
        print(f"ftpserver: --passive must be A-B, not {args.passive!r}", file=sys.stderr)
        return 2
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    os.makedirs(args.root, exist_ok=True)
    auth = DummyAuthorizer()
    auth.add_user(args.user, password, args.root, perm="elradfmwMT")
    auth.add_user(args.user + "-ro", password, args.root, perm="elr")

    class Handler(FTPHandler):
        authorizer = auth
        passive_ports = range(low, high + 1)
        permit_foreign_addresses = False
        banner = "flow-beam test FTP server ready."

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = FTPServer(("127.0.0.1", args.port), Handler)
    server.max_cons = 64
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
