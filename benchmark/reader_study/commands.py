"""``bench reader-study`` handlers: create, serve, add-reader, export, analyze (thin wrappers)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import secrets
import sys
from pathlib import Path

from benchmark.errors import BenchError

log = logging.getLogger(__name__)


def login_url(host: str, port: int, path: str = "/login") -> str:
    """``http://HOST:PORT/PATH`` (IPv6 hosts bracketed)."""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create(args: argparse.Namespace) -> int:
    """Prepare the study folder, its database and the admin token (printed once)."""
    from benchmark.reader_study import auth, db
    from benchmark.reader_study.prepare import create_study, read_pair_keys

    pair_keys = read_pair_keys(args.pairs) if args.pairs else None
    study = create_study(
        args.run_dir,
        args.out,
        methods=args.methods.split(","),
        n_cases=args.cases,
        pair_keys=pair_keys,
        seed=args.seed,
    )
    admin_token = auth.new_token()
    db.init_db(
        Path(args.out) / db.DB_NAME,
        secret_key=secrets.token_hex(32),
        admin_token_hash=auth.hash_token(admin_token),
        seed=args.seed,
    )
    print(f"study with {len(study['cases'])} case(s) written to {args.out}")
    print(f"admin token (shown once, keep it): {admin_token}")
    print(
        f"admin page: {login_url('127.0.0.1', 8000, '/admin/login')} (after "
        f"`bench reader-study serve {args.out}`)"
    )
    print(f"add readers with: bench reader-study add-reader {args.out} NAME")
    return 0


def add_reader(args: argparse.Namespace) -> int:
    """Create a reader and print their invitation link (the token is shown once)."""
    from benchmark.reader_study import auth, db
    from benchmark.reader_study.prepare import load_study

    study = load_study(args.study_dir)
    token = auth.new_token()
    conn = db.connect(Path(args.study_dir) / db.DB_NAME)
    try:
        reader_id, _ = db.add_reader(
            conn,
            args.name,
            token_hash=auth.hash_token(token),
            case_ids=[c["id"] for c in study["cases"]],
        )
    finally:
        conn.close()
    print(f"reader {args.name!r} (id {reader_id}) added")
    print(f"invitation token (shown once): {token}")
    print(f"login link: {login_url('127.0.0.1', 8000)}?token={token}")
    return 0


def serve(args: argparse.Namespace) -> int:
    """Serve the study (threaded Werkzeug server); loopback only unless ``--host`` says else."""
    from werkzeug.serving import run_simple

    from benchmark.reader_study.app import create_app

    if not is_loopback(args.host):
        log.warning("!" * 70)
        log.warning(
            "serving on %s: the study is reachable from other machines, over plain "
            "HTTP. Put it behind an HTTPS reverse proxy and set "
            "READER_STUDY_SECURE_COOKIES=1.",
            args.host,
        )
        log.warning("!" * 70)
    if not 0 < args.port < 65536:
        raise BenchError(f"--port must be 1-65535, got {args.port}")
    app = create_app(args.study_dir)
    print(
        f"reader study at {login_url(args.host, args.port, '/')}  "
        f"(admin: {login_url(args.host, args.port, '/admin/login')}); Ctrl-C stops",
        file=sys.stderr,
    )
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False, use_debugger=False)
    return 0


def export(args: argparse.Namespace) -> int:
    """Write the unblinded rankings CSV (case, method, rank, reader)."""
    from benchmark.reader_study.export import write_rankings

    path = write_rankings(args.study_dir, args.out)
    print(f"rankings written to {path}")
    return 0


def analyze(args: argparse.Namespace) -> int:
    """Print the ranking statistics of :mod:`benchmark.stats.ranking` (unblinds)."""
    from benchmark.reader_study.export import rankings_table
    from benchmark.stats.ranking import analyze_rankings

    stats = analyze_rankings(rankings_table(args.study_dir))
    for warning in stats.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
    else:
        print(stats.to_text())
    return 0
