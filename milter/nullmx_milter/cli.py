"""The `nullmx-milter` command: run, check, check-config, status, --version."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nullmx_milter import __version__, daemon, runtime, status_client
from nullmx_milter.config import Config, load_config
from nullmx_milter.dnssec import DnssecMode
from nullmx_milter.errors import ConfigError
from nullmx_milter.policy import NULL_MX_UNAUTHENTICATED, Decision

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    """The command line; nullmx-milter(8) says the same at length (a test compares them)."""
    parser = argparse.ArgumentParser(
        prog="nullmx-milter",
        description="Reject mail to domains that publish an RFC 7505 null MX: a milter for "
        "Postfix and Sendmail, and a policy service for Postfix and Exim.",
        epilog="Manuals: nullmx-milter(8), nullmx-milter.toml(5).",
    )
    parser.add_argument("--version", action="version", version=f"nullmx-milter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, details: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=f"{summary}. {details}")
        sub.add_argument(
            "--config",
            type=Path,
            metavar="PATH",
            help="the TOML config file (default: the embedded defaults)",
        )
        return sub

    run = command(
        "run",
        "Serve the milter in the foreground until SIGTERM",
        "Also serves the policy service and the metrics listener when configured. "
        "SIGUSR1 reloads the config file; SIGTERM, SIGHUP and SIGINT stop. "
        "Exit 0 after a graceful stop, 1 when a socket cannot be opened, "
        "2 on a config error or when refused as root.",
    )
    run.add_argument(
        "--allow-root", action="store_true", help="run even as root (not advised: it needs none)"
    )
    check = command(
        "check",
        "Diagnose addresses: DNS answer, classification, reply",
        "Looks up each address as the milter would, with the same config, and prints its "
        "domain, what DNS answered, the classification and the exact reply lines "
        "(or continue). Exit 0, or 2 on a config error.",
    )
    check.add_argument("--sender", action="store_true", help="check as MAIL FROM, not RCPT TO")
    check.add_argument("addresses", nargs="+", metavar="ADDRESS", help="an envelope address")
    command(
        "check-config",
        "Validate a config file and print the effective settings",
        "Exit 0 when it is valid, 2 with the dotted key and the reason when not.",
    )
    status = commands.add_parser(
        "status",
        help="Print the running daemon's 211 status report",
        description="Print the running daemon's 211 status report. Exit 0 when healthy, "
        "1 when the DNS path is failing, 3 when the daemon cannot be reached, "
        "2 on a config error.",
    )
    where = status.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="find the daemon by this config's metrics.listen",
    )
    where.add_argument("--url", metavar="URL", help="the daemon's status URL (http://HOST:PORT/)")
    status.add_argument("--json", action="store_true", help="the same report as a JSON object")
    return parser


def _describe(argument: str, decision: Decision, dnssec: bool) -> list[str]:
    """The check's lines for one address; `dnssec` adds whether DNSSEC authenticated it."""
    address = decision.address
    lookup = decision.lookup
    lines = [
        f"address:  {argument}",
        f"kind:     {address.kind.value}" + (f" ({address.problem})" if address.problem else ""),
        f"domain:   {address.domain or '-'}",
    ]
    if lookup is not None:
        lines.append(f"dns:      {lookup.detail or '-'} (cache ttl {lookup.ttl:g}s)")
        if lookup.canonical_name and lookup.canonical_name != address.domain:
            lines.append(f"cname:    {lookup.canonical_name}")
        lines.append(f"class:    {lookup.mx_class.value}")
        if dnssec:
            authenticated = (
                "authenticated (AD set)" if lookup.authenticated else "not authenticated"
            )
            lines.append(f"dnssec:   {authenticated}")
    lines.append(f"verdict:  {decision.verdict.value} ({decision.reason})")
    suggestion = decision.suggestion
    if suggestion is not None:
        lines.append(
            f"suggest:  {decision.suggested} ({suggestion.distance} edit"
            f"{'' if suggestion.distance == 1 else 's'})"
            if decision.suggested
            else f"suggest:  none ({suggestion.outcome.value})"
        )
    if decision.reason == NULL_MX_UNAUTHENTICATED:
        lines.append("note:     null MX, not DNSSEC-authenticated: accepted")
    if decision.reply is not None:
        wire = decision.reply.wire_lines()
        lines.append(f"reply:    {wire[0]}")
        lines.extend(f"          {line}" for line in wire[1:])
    else:
        lines.append("reply:    continue")
    return lines


def _check(config: Config, addresses: Sequence[str], as_sender: bool) -> int:
    engine = daemon.build(config).engine
    dnssec = config.dns.dnssec is DnssecMode.REQUIRE
    blocks = []
    for argument in addresses:
        decision = engine.check_sender(argument) if as_sender else engine.check_recipient(argument)
        blocks.append("\n".join(_describe(argument, decision, dnssec)))
    print("\n\n".join(blocks))
    return 0


def _show_config(config: Config) -> int:
    print("config OK")
    for section in ("milter", "dns", "cache", "policy", "metrics", "log", "policy_service"):
        print(f"[{section}] {getattr(config, section)}")
    return 0


def _status(config: Config, url: str | None, as_json: bool) -> int:
    try:
        target = (
            status_client.normalise_url(url)
            if url
            else status_client.status_url(config.metrics.listen)
        )
    except ValueError as error:
        print(f"nullmx-milter: {error}", file=sys.stderr)
        return EXIT_CONFIG
    answer = status_client.fetch_status(target, as_json=as_json)
    print(answer.text, end="")
    return answer.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"nullmx-milter: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "status":
        return _status(config, args.url, args.json)
    try:
        # Reads /etc/resolv.conf when no nameserver is configured, so not part of loading.
        runtime.check_dns_trust(config)
    except ConfigError as error:
        print(f"nullmx-milter: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check":
        return _check(config, args.addresses, args.sender)
    if args.command == "check-config":
        return _show_config(config)
    refusal = daemon.refuse_root(args.allow_root)
    if refusal:
        print(f"nullmx-milter: {refusal}", file=sys.stderr)
        return EXIT_CONFIG
    daemon.configure_logging(config)
    # Never returns: see daemon.exit_process.
    return daemon.exit_process(daemon.serve(config, args.config))
