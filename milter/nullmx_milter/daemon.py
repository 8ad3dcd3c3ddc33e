"""Run the milter: build the runtime, serve, reload it on SIGUSR1, stop fast on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import Milter
import milter as libmilter
from prometheus_client import CollectorRegistry

from nullmx_milter import __version__, sd_notify
from nullmx_milter.config import Config
from nullmx_milter.config_reload import ConfigReloader
from nullmx_milter.dnssec_probe import DnssecProbe, DnssecProber, DnssecStatus, ProbeSettings
from nullmx_milter.endpoints import check_inherited_listener, connect_target, inherited_fd
from nullmx_milter.engine import NullMxEngine
from nullmx_milter.http_server import MetricsServer
from nullmx_milter.log_thread import BackgroundLogging
from nullmx_milter.lookup_service import MxSource
from nullmx_milter.metrics import Metrics, runtime_versions
from nullmx_milter.milter_adapter import NullMxMilterBase, milter_class
from nullmx_milter.policy_service import PolicyResponder, PolicyServer
from nullmx_milter.runtime import RuntimeHolder, build_runtime, negotiates_headers
from nullmx_milter.status_report import StatusSource

log = logging.getLogger(__name__)

# libmilter's signal thread sigwaits these three and stops (HUP, TERM) or aborts (INT).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
_RELOAD_SIGNAL = signal.SIGUSR1
# How long the signal loop waits for libmilter to return after a stop request.
_STOP_WAIT = 10.0
# Connections that wake libmilter's listener after a stop request, and the pause between.
_STOP_POKES = 50
_STOP_POKE_INTERVAL = 0.1


@dataclass(frozen=True)
class Components:
    """What the daemon runs on: the metrics, and the runtime a reload swaps."""

    metrics: Metrics
    runtimes: RuntimeHolder
    # Outlives reloads: it probes with whatever the runtime in force says.
    dnssec_probe: DnssecProbe

    @property
    def config(self) -> Config:
        return self.runtimes.current.config

    def probe_settings(self) -> ProbeSettings:
        return self.runtimes.current.probe_settings()

    def dnssec_status(self) -> DnssecStatus:
        return self.dnssec_probe.status(self.probe_settings())

    @property
    def engine(self) -> NullMxEngine:
        return self.runtimes.current.engine


def libmilter_version() -> str:
    return ".".join(str(part) for part in libmilter.getversion())


def build(
    config: Config,
    registry: CollectorRegistry | None = None,
    source: MxSource | None = None,
    config_path: Path | None = None,
) -> Components:
    """The metrics and the first runtime for `config` (no sockets opened).

    `source` replaces the DNS resolver as the engine's MX source (tests use a fake).
    """
    metrics = Metrics(
        registry or CollectorRegistry(),
        runtime_versions(Milter.__version__, libmilter_version()),
    )
    runtime = build_runtime(config, metrics, source=source, config_path=config_path)
    metrics.config_loaded(runtime.loaded_at)
    return Components(metrics, RuntimeHolder(runtime), DnssecProbe(metrics))


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


def set_log_level(level: str) -> None:
    """Apply `[log] level` (at start, and on a reload)."""
    logging.getLogger().setLevel(level.upper())


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


def serve(config: Config, config_path: Path | None = None) -> int:
    """Run the milter until SIGTERM, SIGHUP or SIGINT; returns the exit status."""
    # Signals are taken by sigwait() alone: libmilter's own signal thread waits for the stop
    # signals, and the main thread (the loop in _serve) for those and SIGUSR1. Every thread
    # must block them, or the first one that does not takes the default action and kills the
    # process: block them before any thread starts.
    signal.pthread_sigmask(signal.SIG_BLOCK, (*_STOP_SIGNALS, _RELOAD_SIGNAL))
    # After the mask, so the log thread blocks the signals too.
    background_logging = BackgroundLogging().start()
    try:
        return _serve(config, config_path)
    finally:
        # Flushes the queued records (a startup error among them) before the process exits.
        background_logging.stop()


def exit_process(status: int) -> NoReturn:
    """End the process once serve() has returned and the logs are flushed.

    libmilter's worker and signal threads outlive smfi_main and may still call into Python
    (a session's close callback) while the interpreter finalizes, which can crash the
    process at exit; there is nothing left to clean up, so skip finalization.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def _serve(config: Config, config_path: Path | None) -> int:
    fd = inherited_fd(config.milter.socket)
    if fd is None and _systemd_passed_sockets():
        log.warning(
            "systemd passed a listening socket (nullmx-milter.socket is active) but "
            'milter.socket = %s does not use it; set milter.socket = "fd:3"',
            config.milter.socket,
        )
    if fd is not None:
        try:
            check_inherited_listener(fd)
        except ValueError as error:
            log.error("cannot serve on milter.socket = %s: %s", config.milter.socket, error)
            return 1
    components = build(config, config_path=config_path)
    prober = DnssecProber(components.dnssec_probe, components.probe_settings).start()
    try:
        return _serve_components(config, config_path, components, prober)
    finally:
        prober.stop()


def _serve_components(
    config: Config, config_path: Path | None, components: Components, prober: DnssecProber
) -> int:
    # Unix sockets (libmilter's and the policy service's) are created with the process umask.
    os.umask(0o777 & ~config.milter.socket_mode)
    reloader = ConfigReloader(config_path, components.runtimes, components.metrics, set_log_level)
    try:
        metrics_server = _start_http(config, components, reloader)
    except OSError as error:
        # A busy port: one line naming the key, not a traceback.
        log.error("cannot serve metrics on metrics.listen = %s: %s", config.metrics.listen, error)
        return 1
    try:
        policy_server = _start_policy_service(config, components)
    except OSError as error:
        log.error("cannot serve the policy service on %s: %s", config.policy_service.listen, error)
        if metrics_server is not None:
            metrics_server.stop()
        return 1
    runtimes, metrics = components.runtimes, components.metrics
    # The callbacks negotiated now stay for the life of the process (a reload that would
    # change them reports "needs restart").
    served = milter_class(
        runtimes.current.policy.checks_senders, negotiates_headers(runtimes.current.config)
    )

    def connection() -> NullMxMilterBase:
        # Each MTA connection keeps the runtime in force when it was opened.
        return served(runtimes.current.engine, metrics)

    Milter.factory = connection
    # A backstop: the adapter catches its own errors; anything else must not bounce mail.
    Milter.set_exception_policy(Milter.CONTINUE)
    log.info(
        "starting version=%s socket=%s policy_service=%s nameservers=%s timeout=%s dnssec=%s"
        " mode=%s metrics=%s config=%s",
        __version__,
        config.milter.socket,
        config.policy_service.listen or "off",
        ",".join(runtimes.current.nameservers),
        config.dns.timeout,
        config.dns.dnssec.value,
        config.policy.mode.value,
        config.metrics.listen or "off",
        config_path or "embedded defaults",
    )
    try:
        # After a reload the probe asks again at once: the DNSSEC settings may have changed.
        return _serve_milter(config.milter.name, config.milter.socket, reloader, prober.wake)
    finally:
        if policy_server is not None:
            policy_server.stop()
        if metrics_server is not None:
            metrics_server.stop()


def _systemd_passed_sockets() -> bool:
    """Whether systemd's socket activation handed this process listening sockets."""
    return os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get(
        "LISTEN_FDS", "0"
    ) not in ("", "0")


def status_source(components: Components, reloader: ConfigReloader | None = None) -> StatusSource:
    """The 211 status report's view of the running parts."""
    runtimes = components.runtimes
    return StatusSource(
        runtimes,
        components.metrics,
        reload_status=(lambda: reloader.status) if reloader is not None else None,
        dnssec=components.dnssec_status,
    )


def _start_http(
    config: Config, components: Components, reloader: ConfigReloader
) -> MetricsServer | None:
    """/metrics, /status and /healthz, unless metrics.listen is off."""
    if not config.metrics.listen:
        return None
    status = status_source(components, reloader)
    server = MetricsServer(config.metrics.listen, components.metrics.registry, status.report)
    server.start()
    return server


def _start_policy_service(config: Config, components: Components) -> PolicyServer | None:
    """The Postfix policy delegation listener on the runtime in force, if configured."""
    listen = config.policy_service.listen
    if not listen:
        return None
    responder = PolicyResponder(components.runtimes, components.metrics)
    server = PolicyServer(listen, responder, components.metrics)
    server.start()
    return server


def _serve_milter(
    name: str, socket_spec: str, reloader: ConfigReloader, reloaded: Callable[[], None]
) -> int:
    """Open the socket, tell systemd READY=1, serve until a stop signal."""
    try:
        _register(name, socket_spec)
        # Removes a stale socket file left by a crash, as Milter.runmilter does.
        libmilter.opensocket(True)
    except libmilter.error as error:
        log.error("cannot serve on %s: %s", socket_spec, error)
        return 1
    outcome: list[int] = []
    ended = threading.Event()
    milter_thread = threading.Thread(
        target=_run_libmilter, args=(socket_spec, outcome, ended), name="libmilter", daemon=True
    )
    milter_thread.start()
    # The kernel queues connections from here on, so the MTA can connect.
    sd_notify.notify(sd_notify.READY)
    try:
        if _wait_for_stop_signal(ended, reloader, reloaded):
            _stop_libmilter(socket_spec, ended)
    finally:
        sd_notify.notify(sd_notify.STOPPING)
    milter_thread.join(_STOP_WAIT)
    if milter_thread.is_alive():
        log.error("libmilter did not stop within %g s", _STOP_WAIT)
        return 1
    status = outcome[0] if outcome else 1
    if status == 0:
        log.info("stopped")
    return status


def _run_libmilter(socket_spec: str, outcome: list[int], ended: threading.Event) -> None:
    """smfi_main in its own thread, so that the main thread gets the signals first."""
    try:
        libmilter.main()
    except libmilter.error as error:
        log.error("milter stopped with an error on %s: %s", socket_spec, error)
        outcome.append(1)
    else:
        outcome.append(0)
    finally:
        ended.set()
        # Wakes the signal loop if libmilter stopped by itself (its own signal thread, or
        # an error): SIGUSR1 is one of the signals the loop waits for.
        signal.pthread_kill(threading.main_thread().ident or 0, _RELOAD_SIGNAL)


def _wait_for_stop_signal(
    ended: threading.Event, reloader: ConfigReloader, reloaded: Callable[[], None]
) -> bool:
    """Reload on SIGUSR1 until a stop signal (True) or until libmilter ended itself (False).

    A signal sent to the process goes to the main thread first when it is waiting for it
    (Linux tries the thread group leader before any other thread), so libmilter's own
    signal thread only sees a stop signal that arrives while a reload is running.
    """
    waited = {*_STOP_SIGNALS, _RELOAD_SIGNAL}
    while True:
        received = signal.sigwait(waited)
        if ended.is_set():
            return False
        if received != _RELOAD_SIGNAL:
            log.info("stopping on %s", signal.Signals(received).name)
            return True
        sd_notify.notify(sd_notify.RELOADING)
        if reloader.reload():
            reloaded()
        sd_notify.notify(sd_notify.READY)


def _stop_libmilter(socket_spec: str, ended: threading.Event) -> None:
    """Ask libmilter to stop, and wake its listener until it has.

    smfi_stop() waits for a lock that the listener holds while it polls its socket for up
    to 5 s: it is called from a thread of its own, and connections to the socket make the
    poll return at once (until libmilter has seen the request, so a poke that comes before
    it is not wasted).
    """
    threading.Thread(target=libmilter.stop, name="milter-stop", daemon=True).start()
    try:
        family, address = connect_target(socket_spec)
    except (OSError, ValueError) as error:
        log.warning("cannot find the milter socket to wake its listener: %s", error)
        return
    for _poke in range(_STOP_POKES):
        with socket.socket(family, socket.SOCK_STREAM) as poke:
            poke.settimeout(_STOP_POKE_INTERVAL)
            with contextlib.suppress(OSError):
                poke.connect(address)
        if ended.wait(_STOP_POKE_INTERVAL):
            return
