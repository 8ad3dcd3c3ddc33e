"""Wire config, DNS, cache, engine and metrics together and run the milter."""

from __future__ import annotations

import functools
import logging
import logging.handlers
import os
import signal
import sys
from dataclasses import dataclass

import Milter
import milter as libmilter
from prometheus_client import CollectorRegistry

from nullmx_milter import __version__, sd_notify
from nullmx_milter.cache import LookupCache
from nullmx_milter.config import Config
from nullmx_milter.dns_health import DnsHealth
from nullmx_milter.dns_lookup import MxResolver
from nullmx_milter.dnssec import DnssecMode, trust_problem
from nullmx_milter.dnssec_probe import DnssecProbe, DnssecProber, ProbeSettings
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.errors import ConfigError
from nullmx_milter.http_server import MetricsServer
from nullmx_milter.log_thread import BackgroundLogging
from nullmx_milter.lookup_service import MxLookupService, MxSource
from nullmx_milter.metrics import Metrics, runtime_versions
from nullmx_milter.milter_adapter import milter_class
from nullmx_milter.policy import NullMxPolicy
from nullmx_milter.policy_service import PolicyResponder, PolicyServer
from nullmx_milter.status_report import StatusSource

log = logging.getLogger(__name__)

_LIBMILTER_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


@dataclass(frozen=True)
class Components:
    """Everything built from the config, shared by all connections."""

    config: Config
    metrics: Metrics
    resolver: MxResolver
    health: DnsHealth
    cache: LookupCache
    engine: NullMxEngine
    dnssec_probe: DnssecProbe

    def probe_settings(self) -> ProbeSettings:
        """What the DNSSEC validation probe asks, and how often."""
        dns = self.config.dns
        return ProbeSettings(dns.dnssec, dns.dnssec_probe, dns.dnssec_probe_interval, self.resolver)


def check_dns_trust(config: Config) -> None:
    """Raise ConfigError (naming dns.nameservers) when the AD bit cannot be trusted from the
    resolvers `config` uses; the system resolver's are read from /etc/resolv.conf here."""
    dns = config.dns
    configured = tuple(server.host for server in dns.nameservers)
    problem = trust_problem(dns.dnssec, configured, dns.resolver_path_trusted)
    if problem:
        raise ConfigError("dns.nameservers", problem)


def libmilter_version() -> str:
    return ".".join(str(part) for part in libmilter.getversion())


def build(
    config: Config, registry: CollectorRegistry | None = None, source: MxSource | None = None
) -> Components:
    """Build the engine and its parts from `config` (no sockets opened).

    `source` replaces the DNS resolver as the engine's MX source (tests use a fake).
    """
    metrics = Metrics(
        registry or CollectorRegistry(),
        runtime_versions(Milter.__version__, libmilter_version()),
    )
    check_dns_trust(config)
    dnssec = config.dns.dnssec
    resolver = MxResolver(
        config.dns.nameservers, config.dns.timeout, dnssec=dnssec is DnssecMode.REQUIRE
    )
    health = DnsHealth(config.dns.fail_fast_after, config.dns.probe_interval)
    cache = LookupCache(
        config.cache.max_entries,
        config.cache.min_ttl,
        config.cache.max_ttl,
        config.cache.failure_ttl,
    )
    policy_config = config.policy
    policy = NullMxPolicy(
        policy_config.mode,
        policy_config.on_dns_error,
        policy_config.sender_null_mx,
        policy_config.allowlist,
        policy_config.replies.templates(),
        dnssec=dnssec,
    )
    lookups = MxLookupService(source or resolver, cache, health, metrics)
    engine = NullMxEngine(policy, lookups, metrics)
    return Components(config, metrics, resolver, health, cache, engine, DnssecProbe(metrics))


def configure_logging(config: Config, syslog_address: str = "/dev/log") -> None:
    """key=value lines on stderr (journald adds the time), optionally syslog facility mail."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    if config.log.syslog:
        syslog = logging.handlers.SysLogHandler(
            syslog_address, facility=logging.handlers.SysLogHandler.LOG_MAIL
        )
        syslog.setFormatter(logging.Formatter("nullmx-milter: %(message)s"))
        handlers.append(syslog)
    logging.basicConfig(level=config.log.level.upper(), handlers=handlers, force=True)


def refuse_root(allow_root: bool) -> str | None:
    """Why the daemon will not start, or None."""
    if os.geteuid() == 0 and not allow_root:
        return (
            "refusing to run as root: the milter parses untrusted input and needs no "
            "privileges; run it as its own user (the systemd unit does) or pass --allow-root"
        )
    return None


def _register(name: str, socket_spec: str) -> None:
    """Milter.runmilter's set-up (pymilter 1.0.5) without its smfi_main, so that systemd
    can be told READY=1 between opening the socket and serving it."""
    libmilter.set_connect_callback(Milter.connect_callback)
    libmilter.set_helo_callback(lambda ctx, host: ctx.getpriv().hello(host))
    libmilter.set_envfrom_callback(lambda ctx, *args: ctx.getpriv().envfrom_bytes(*args))
    libmilter.set_envrcpt_callback(lambda ctx, *args: ctx.getpriv().envrcpt_bytes(*args))
    libmilter.set_header_callback(lambda ctx, name, value: ctx.getpriv().header_bytes(name, value))
    libmilter.set_eoh_callback(lambda ctx: ctx.getpriv().eoh())
    libmilter.set_body_callback(lambda ctx, chunk: ctx.getpriv().body(chunk))
    libmilter.set_eom_callback(lambda ctx: ctx.getpriv().eom())
    libmilter.set_abort_callback(lambda ctx: ctx.getpriv().abort())
    libmilter.set_close_callback(Milter.close_callback)
    libmilter.setconn(socket_spec)
    libmilter.register(
        name,
        data=lambda ctx: ctx.getpriv().data(),
        unknown=lambda ctx, command: ctx.getpriv().unknown(command),
        negotiate=Milter.negotiate_callback,
    )


def serve(config: Config) -> int:
    """Run the milter until SIGTERM; returns the exit status."""
    # libmilter stops on SIGTERM/SIGHUP/SIGINT by sigwait() in its own thread; any thread
    # that does not block them (the metrics server's) would take the default action and
    # kill the process. Block them before any thread starts; they wait until smfi_main.
    signal.pthread_sigmask(signal.SIG_BLOCK, _LIBMILTER_SIGNALS)
    # After the mask, so the log thread blocks the signals too (issue 7: bench/).
    background_logging = BackgroundLogging().start()
    try:
        return _serve(config)
    finally:
        # Flushes the queued records (a startup error among them) before the process exits.
        background_logging.stop()


def _serve(config: Config) -> int:
    try:
        components = build(config)
    except ConfigError as error:
        log.error("config error: %s", error)
        return 2
    prober = DnssecProber(components.dnssec_probe, components.probe_settings).start()
    try:
        return _serve_components(config, components)
    finally:
        prober.stop()


def _serve_components(config: Config, components: Components) -> int:
    # Unix sockets (libmilter's and the policy service's) are created with the process umask.
    os.umask(0o777 & ~config.milter.socket_mode)
    metrics_server = _start_http(config, components)
    try:
        policy_server = _start_policy_service(config, components)
    except OSError as error:
        log.error("cannot serve the policy service on %s: %s", config.policy_service.listen, error)
        if metrics_server is not None:
            metrics_server.stop()
        return 1
    Milter.factory = functools.partial(
        milter_class(components.engine.policy.checks_senders),
        components.engine,
        components.metrics,
    )
    # A backstop: the adapter catches its own errors; anything else must not bounce mail.
    Milter.set_exception_policy(Milter.CONTINUE)
    log.info(
        "starting version=%s socket=%s policy_service=%s nameservers=%s timeout=%s mode=%s"
        " metrics=%s",
        __version__,
        config.milter.socket,
        config.policy_service.listen or "off",
        ",".join(components.resolver.nameservers),
        config.dns.timeout,
        config.policy.mode.value,
        config.metrics.listen or "off",
    )
    try:
        return _serve_milter(config.milter.name, config.milter.socket)
    finally:
        if policy_server is not None:
            policy_server.stop()
        if metrics_server is not None:
            metrics_server.stop()


def status_source(components: Components) -> StatusSource:
    """The 211 status report's view of the running parts."""
    return StatusSource(
        components.config,
        components.resolver.nameservers,
        components.health,
        components.cache,
        components.metrics,
        dnssec=lambda: components.dnssec_probe.status(components.probe_settings()),
    )


def _start_http(config: Config, components: Components) -> MetricsServer | None:
    """/metrics, /status and /healthz, unless metrics.listen is off."""
    if not config.metrics.listen:
        return None
    status = status_source(components)
    server = MetricsServer(config.metrics.listen, components.metrics.registry, status.report)
    server.start()
    return server


def _start_policy_service(config: Config, components: Components) -> PolicyServer | None:
    """The Postfix policy delegation listener on the shared engine, if configured."""
    service = config.policy_service
    if not service.listen:
        return None
    responder = PolicyResponder(components.engine, components.metrics, service.replies())
    server = PolicyServer(service.listen, responder, components.metrics, service.idle_timeout)
    server.start()
    return server


def _serve_milter(name: str, socket_spec: str) -> int:
    """Open the socket, tell systemd READY=1, serve until libmilter stops."""
    try:
        _register(name, socket_spec)
        # Removes a stale socket file left by a crash, as Milter.runmilter does.
        libmilter.opensocket(True)
    except libmilter.error as error:
        log.error("cannot serve on %s: %s", socket_spec, error)
        return 1
    # The kernel queues connections from here on, so the MTA can connect.
    sd_notify.notify(sd_notify.READY)
    try:
        libmilter.main()
    except libmilter.error as error:
        log.error("milter stopped with an error on %s: %s", socket_spec, error)
        return 1
    finally:
        sd_notify.notify(sd_notify.STOPPING)
    log.info("stopped")
    return 0
