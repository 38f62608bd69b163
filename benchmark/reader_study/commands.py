"""``bench reader-study`` handlers: create, serve, add-reader, revoke, rotate, export, analyze
(thin wrappers)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import secrets
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmark.core.errors import BenchError

log = logging.getLogger(__name__)

#: Setting of the database holding the URL readers reach the server at (written by ``serve``).
PUBLIC_URL = "public_url"
DEFAULT_URL = "http://127.0.0.1:8000"


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


def check_url(url: str, option: str) -> str:
    """``url`` without a trailing slash; BenchError unless it is ``http(s)://HOST[:PORT]`` (the
    app is served at the root of its host)."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise BenchError(f"{option}: expected http(s)://HOST[:PORT], got {url!r}")
    return url.rstrip("/")


def create(args: argparse.Namespace) -> int:
    """Prepare the study folder, its database and the admin token (printed once)."""
    from benchmark.reader_study import auth, db
    from benchmark.reader_study.prepare import StudyOptions, create_study, read_pair_keys

    pair_keys = read_pair_keys(args.pairs) if args.pairs else None
    options = StudyOptions(
        cannot_judge=args.cannot_judge,
        comment=args.comment,
        repeats=args.repeats,
        per_reader_labels=not args.shared_labels,
    )
    study = create_study(
        args.run_dir,
        args.out,
        methods=args.methods.split(","),
        n_cases=args.cases,
        pair_keys=pair_keys,
        seed=args.seed,
        options=options,
    )
    admin_token = auth.new_token()
    db.init_db(
        Path(args.out) / db.DB_NAME,
        secret_key=secrets.token_hex(32),
        admin_token_hash=auth.hash_token(admin_token),
        seed=args.seed,
    )
    print(f"study with {len(study['cases'])} case(s) written to {args.out} (private: mode 0700)")
    print(f"admin token (shown once, keep it): {admin_token}")
    print(f"admin page: /admin/login on the server of `bench reader-study serve {args.out}`")
    print(f"add readers with: bench reader-study add-reader {args.out} NAME")
    return 0


def _base_url(conn, given: str | None) -> str:
    """The URL for links: ``--url``, else the one ``serve`` recorded, else the default."""
    from benchmark.reader_study import db

    if given:
        return check_url(given, "--url")
    recorded = db.setting(conn, PUBLIC_URL, "")
    if recorded:
        return recorded
    log.warning(
        "the study has not been served yet: the link assumes %s; pass --url (or run `serve` "
        "first, then `rotate`) if readers reach it elsewhere",
        DEFAULT_URL,
    )
    return DEFAULT_URL


def _print_invitation(name: str, base: str, token: str, days: float) -> None:
    print(f"invitation for {name!r} (works once, within {days:g} days; shown once):")
    print(f"login link: {base}/login#invite={token}")
    print(
        "send it by a private channel; opening it logs the reader in and uses it up (the token "
        "after '#' never reaches the server's logs). "
        f"New link: bench reader-study rotate STUDY_DIR {name!r}"
    )


def _new_invitation(days: float) -> tuple[str, str, float]:
    """A one-time invitation valid for ``days`` days: ``(token, token hash, expiry)`` (unix
    seconds); the token is shown once, only its hash is stored."""
    from benchmark.reader_study import auth

    if not 0 < days <= 365:
        raise BenchError(f"--valid-days must be in (0, 365], got {days}")
    token = auth.new_token()
    return token, auth.hash_token(token), time.time() + days * 86400


def add_reader(args: argparse.Namespace) -> int:
    """Create a reader and print their one-time invitation link."""
    from benchmark.reader_study import db
    from benchmark.reader_study.prepare import load_study

    study = load_study(args.study_dir)
    token, token_hash, expires = _new_invitation(args.valid_days)
    with db.open_study_db(args.study_dir) as conn:
        base = _base_url(conn, args.url)
        options = study["options"]
        reader_id, _ = db.add_reader(
            conn,
            args.name,
            invite_hash=token_hash,
            invite_expires=expires,
            cases={c["id"]: len(c["panels"]["results"]) for c in study["cases"]},
            repeats=int(options["repeats"]),
            per_reader_labels=bool(options["per_reader_labels"]),
        )
    print(f"reader {args.name!r} (id {reader_id}) added")
    _print_invitation(args.name, base, token, args.valid_days)
    return 0


def rotate(args: argparse.Namespace) -> int:
    """Replace the reader's invitation by a new one-time link; ends their sessions."""
    from benchmark.reader_study import db

    token, token_hash, expires = _new_invitation(args.valid_days)
    with db.open_study_db(args.study_dir) as conn:
        row = db.reader_by_name(conn, args.name)
        if row["removed"]:
            raise BenchError(f"reader {args.name!r} was removed")
        base = _base_url(conn, args.url)
        db.set_invitation(conn, int(row["id"]), token_hash, expires)
    print(f"old invitation and sessions of {args.name!r} ended")
    _print_invitation(args.name, base, token, args.valid_days)
    return 0


def revoke(args: argparse.Namespace) -> int:
    """End the reader's sessions and invitation (``rotate`` lets them in again)."""
    from benchmark.reader_study import db

    with db.open_study_db(args.study_dir) as conn:
        row = db.reader_by_name(conn, args.name)
        db.set_invitation(conn, int(row["id"]), None, None)
    print(f"reader {args.name!r}: sessions and invitation revoked (answers kept)")
    return 0


def trusted_hosts(host: str, public_url: str) -> list[str]:
    """Host names the server answers to: the bound address (all names of this machine when bound
    to every interface) and the public URL's host."""
    names = {urlsplit(public_url).hostname or ""}
    if host in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1"}
    else:
        names.add(host)
        if is_loopback(host):
            names |= {"localhost", "127.0.0.1", "::1"}
    names |= {f"[{n}]" for n in names if ":" in n}
    return sorted(n for n in names if n)


def serve(args: argparse.Namespace) -> int:
    """Serve the study with waitress (a production WSGI server) under the body, header,
    connection and timeout limits of :func:`benchmark.reader_study.limits.waitress_settings`;
    loopback only unless ``--host`` says else; ``--trusted-proxy`` names the reverse proxy whose
    ``X-Forwarded-For`` gives the client address. Refuses a study whose key or database other users
    can read (:func:`create_app`)."""
    import waitress

    from benchmark.reader_study import db, limits
    from benchmark.reader_study.app import create_app

    if not 0 < args.port < 65536:
        raise BenchError(f"--port must be 1-65535, got {args.port}")
    if args.threads < 1:
        raise BenchError(f"--threads must be >= 1, got {args.threads}")
    if args.trusted_proxy is not None:
        try:
            ipaddress.ip_address(args.trusted_proxy)
        except ValueError:
            raise BenchError(
                f"--trusted-proxy must be an IP address (the proxy's), got {args.trusted_proxy!r}"
            ) from None
    local = login_url(args.host, args.port, "")
    if args.public_url:
        public = check_url(args.public_url, "--public-url")
    elif is_loopback(args.host):
        public = local
    else:
        public = login_url(socket.getfqdn(), args.port, "")
    if not is_loopback(args.host):
        log.warning("!" * 70)
        log.warning(
            "serving on %s: the study is reachable from other machines%s. Put it behind an HTTPS "
            "reverse proxy and pass --public-url https://...",
            args.host,
            "" if public.startswith("https://") else ", over plain HTTP",
        )
        log.warning("!" * 70)
    config = {
        "STUDY_DIR": args.study_dir,
        "TRUSTED_HOSTS": trusted_hosts(args.host, public),
        "SESSION_COOKIE_SECURE": public.startswith("https://"),
        "SESSION_IDLE_SECONDS": args.idle_minutes * 60.0,
    }
    app = create_app(config)  # refuses a study other users can read
    with db.open_study_db(args.study_dir) as conn:
        db.set_setting(conn, PUBLIC_URL, public)  # links of add-reader/rotate use it
    print(
        f"reader study at {public}/  (admin: {public}/admin/login; listening on {local}); "
        "Ctrl-C stops",
        file=sys.stderr,
    )
    waitress.serve(
        app,
        host=args.host,
        port=args.port,
        threads=args.threads,
        ident="reader-study",
        url_scheme="https" if public.startswith("https://") else "http",
        **limits.waitress_settings(app, trusted_proxy=args.trusted_proxy),
    )
    return 0


def export(args: argparse.Namespace) -> int:
    """Write the unblinded rankings CSV (case, method, rank, reader)."""
    from benchmark.reader_study.export import write_rankings

    for path in write_rankings(
        args.study_dir, args.out, include_unfinished=args.include_unfinished
    ):
        print(f"written {path}")
    return 0


def analyze(args: argparse.Namespace) -> int:
    """Print the ranking statistics of :mod:`benchmark.stats.ranking` (unblinds), and the
    intra-reader agreement when the study repeats cases."""
    from benchmark.reader_study.export import intra_reader_agreement, unblind
    from benchmark.stats.ranking import analyze_rankings

    result = unblind(args.study_dir, include_unfinished=args.include_unfinished)
    for note in result.notes:
        log.warning("%s", note)
    stats = analyze_rankings(result.rankings)
    for warning in stats.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    intra = intra_reader_agreement(result.repeats)
    if args.json:
        out = stats.to_dict()
        if not intra.empty:
            out["intra_reader_agreement"] = intra.to_dict(orient="records")
        if result.notes:
            out["left_out"] = result.notes
        print(json.dumps(out, indent=2))
    else:
        print(stats.to_text())
        if not intra.empty:
            print("\nIntra-reader agreement (repeated cases):")
            print(intra.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0
