"""``python -m aioforest.worker``: join a cluster master and fit trees for it.

Exit status: 0 after the master said ``bye`` or after SIGTERM/SIGINT (a clean leave),
1 when the master cannot be reached (after ``--max-retries`` attempts), 2 for bad usage,
3 when authentication or the protocol version is refused (never retried).
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Sequence

from ._runtime import int_argument, run
from .cluster import Backoff, Faults, Worker
from .wire import (
    AuthenticationError,
    VersionMismatch,
    check_tls_pair,
    client_ssl_context,
    load_token,
)

__all__ = ["build_parser", "main", "parse_address"]

EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

_EXAMPLES = """\
examples:
  # on the master machine
  aioforest-master --data train.csv --bind 0.0.0.0 --port 7341 --token-file token --workers 2
  # on each worker machine (same token file content)
  aioforest-worker --connect master.example:7341 --token-file token --processes 8
  # the token may come from the environment instead of a file
  AIOFOREST_TOKEN=$(cat token) python -m aioforest.worker --connect 10.0.0.5:7341
  # a master serving TLS (and requiring a worker certificate)
  aioforest-worker --connect master.example:7341 --token-file token --tls-ca ca.pem \
      --tls-cert worker.pem --tls-key worker.key
"""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` to ``(host, port)``; ``ValueError`` otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    return host, port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioforest-worker",
        description="Join an aioforest cluster master and fit trees for it in a process pool.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--connect", required=True, metavar="HOST:PORT",
                        help="the master's address")
    parser.add_argument("--token-file", metavar="FILE",
                        help="file holding the cluster token (default: $AIOFOREST_TOKEN)")
    parser.add_argument("--processes", type=int_argument(1), metavar="N",
                        help="pool processes, i.e. trees fitted at once (default: all cores)")
    parser.add_argument("--name", help="worker name shown by the master (default: host-pid)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="where this machine mounts the partition files of --mode data "
                             "fits (the master names them relative to the dataset's root; "
                             "default: that same root)")
    parser.add_argument("--peer-host", metavar="HOST",
                        help="the address other workers ship rows to in --mode data fits "
                             "(local subtrees; a free port is chosen, the cluster token "
                             "authenticates; default: this machine's address towards the "
                             "master)")
    parser.add_argument("--max-retries", type=int_argument(1), metavar="N",
                        help="give up after N failed connection attempts (default: never)")
    tls = parser.add_argument_group("TLS (when the master serves TLS)")
    tls.add_argument("--tls-ca", metavar="FILE",
                     help="CA certificate(s) to verify the master with; turns TLS on")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="this worker's certificate, for a master that requires one")
    tls.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--inject-fault", action="append", default=[], metavar="NAME=VALUE",
                        help="misbehave on purpose, for fault-injection tests: "
                             "crash-on-tree=N (SIGKILL itself on the task fitting tree N), "
                             "slowdown=F (hold every task F times as long as its fit)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aioforest-worker`` / ``python -m aioforest.worker``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        host, port = parse_address(args.connect)
    except ValueError as exc:
        parser.error(f"--connect: {exc}")
    try:
        token = load_token(args.token_file)
    except (OSError, ValueError) as exc:
        print(f"{prog}: error: cannot read the token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=f"{prog} %(levelname)s: %(message)s",
    )
    try:
        check_tls_pair(args.tls_cert, args.tls_key, ("--tls-cert", "--tls-key"))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        faults = Faults.parse(args.inject_fault)
    except ValueError as exc:
        parser.error(f"--inject-fault: {exc}")
    if args.tls_cert is not None and args.tls_ca is None:
        parser.error("--tls-cert needs --tls-ca (the CA that signed the master's certificate)")
    context = None
    if args.tls_ca is not None:
        try:
            context = client_ssl_context(args.tls_ca, args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"{prog}: error: cannot load the TLS files: {exc}", file=sys.stderr)
            return EXIT_USAGE
    worker = Worker(
        host, port, token, processes=args.processes, name=args.name,
        backoff=Backoff(max_attempts=args.max_retries), ssl=context, faults=faults,
        data_root=args.data_root,
        peer_host=args.peer_host,
    )

    async def serve() -> None:
        worker.install_signal_handlers()
        await worker.run()

    try:
        run(serve())
    except AuthenticationError as exc:
        print(
            f"{prog}: error: authentication with the master at {args.connect} failed: {exc}. "
            "Check that --token-file or AIOFOREST_TOKEN holds the master's token.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    except VersionMismatch as exc:
        print(f"{prog}: error: the master at {args.connect} refused us: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ConnectionError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
