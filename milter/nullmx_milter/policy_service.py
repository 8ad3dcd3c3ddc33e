"""The Postfix policy delegation front end (check_policy_service): attributes in, action out.

Exim speaks the same protocol from an ACL (`${readsocket}`, config/exim/) and adds the request
attribute `reply_format=exim`: the answer then carries the milter's whole multi-line reply,
its lines separated by a TAB for the ACL to turn into newlines.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path

from nullmx_milter.endpoints import unix_path
from nullmx_milter.engine import NullMxEngine, log_decision, log_safe
from nullmx_milter.http_server import SHUTDOWN_POLL_SECONDS
from nullmx_milter.metrics import Metrics
from nullmx_milter.policy import Decision, ReplyTemplates, Role, Verdict
from nullmx_milter.reply import ADDRESS_DISPLAY_CHARS, SMTP_LINE_OCTETS, Reply, sanitise
from nullmx_milter.runtime import RuntimeHolder

log = logging.getLogger(__name__)

# Postfix's own attribute lines are short; anything far beyond these is not Postfix.
MAX_LINE_OCTETS = 8192
MAX_ATTRIBUTES = 256
DUNNO = "DUNNO"
# The request attribute that asks for Exim's form of the answer; absent, Postfix's.
REPLY_FORMAT = "reply_format"
EXIM_FORMAT = "exim"
# Reply lines are printable ASCII (reply.Reply checks it), so a TAB can only be a separator.
EXIM_LINE_SEPARATOR = "\t"


def action_for(reply: Reply) -> str:
    """`556 5.1.10 text` as Postfix wants it (no libmilter '%' doubling)."""
    return f"{reply.code} {reply.enhanced} {reply.lines[0].replace('%%', '%')}"


def with_question(action: str, decision: Decision) -> str:
    """`action` with the "did you mean" question appended, when there is one and the
    line Postfix makes of it ("<address>: Recipient address rejected: " in front) fits."""
    suggested = decision.suggested
    if not suggested:
        return action
    question = f"; did you mean <{sanitise(suggested, ADDRESS_DISPLAY_CHARS).replace('%%', '%')}>?"
    code, enhanced, text = action.split(" ", 2)
    prefix = f"<{decision.address.mailbox}>: Recipient address rejected: "
    if len(f"{code} {enhanced} {prefix}{text}{question}\r\n".encode()) > SMTP_LINE_OCTETS:
        return action
    return action + question


def exim_action_for(reply: Reply) -> str:
    """`556 5.1.10 line<TAB>line<TAB>line`: Exim's `message =` wants the code once and one
    line per newline, and repeats code and enhanced code on every line itself."""
    text = EXIM_LINE_SEPARATOR.join(line.replace("%%", "%") for line in reply.lines)
    return f"{reply.code} {reply.enhanced} {text}"


class PolicyResponder:
    """Turns one policy request into one action, through the engine of the runtime in force
    when the request arrived (a reload takes effect between two requests).

    The replies are single lines: Postfix access actions are one line, and Postfix prefixes
    "<address>: Recipient address rejected: " itself.
    """

    def __init__(self, runtimes: RuntimeHolder, metrics: Metrics) -> None:
        self._runtimes = runtimes
        self._metrics = metrics

    @property
    def idle_timeout(self) -> float:
        return self._runtimes.current.config.policy_service.idle_timeout

    def _render(
        self, decision: Decision, role: Role, replies: ReplyTemplates, *, exim: bool
    ) -> str:
        address = decision.address
        if exim and decision.reply is not None:
            # The reply the milter would send, from the [policy.replies] templates.
            self._metrics.count_reply(decision.reply, "exim")
            return exim_action_for(decision.reply)
        if decision.verdict is Verdict.REJECTED:
            template = replies.sender if role is Role.SENDER else replies.recipient
        elif decision.verdict is Verdict.TEMPFAILED:
            template = replies.tempfail
        elif decision.verdict is Verdict.WOULD_REJECT:
            return f"WARN nullmx-milter dry-run: {address.domain} publishes a null MX record"
        elif decision.verdict is Verdict.WOULD_TEMPFAIL:
            return (
                f"WARN nullmx-milter dry-run: DNS lookup of {address.domain} failed "
                f"({decision.reason}); enforcing would answer 451"
            )
        else:
            return DUNNO
        reply = template.render(address.mailbox, address.domain)
        self._metrics.count_reply(reply, "policy")
        return with_question(action_for(reply), decision)

    def _check(
        self,
        engine: NullMxEngine,
        replies: ReplyTemplates,
        role: Role,
        argument: str,
        context: str,
        *,
        exim: bool,
    ) -> tuple[Decision, str]:
        if role is Role.SENDER:
            decision = engine.check_sender(argument)
        else:
            decision = engine.check_recipient(argument)
        log_decision(decision, role, argument, context)
        return decision, self._render(decision, role, replies, exim=exim)

    def respond(self, attributes: Mapping[str, str]) -> str:
        """The action for one request: DUNNO unless a null MX (or the tempfail policy) applies."""
        runtime = self._runtimes.current
        engine, replies = runtime.engine, runtime.policy_service_replies
        state = attributes.get("protocol_state", "").upper()
        exim = attributes.get(REPLY_FORMAT) == EXIM_FORMAT
        front = "exim" if exim else "policy"
        context = f"front={front} qid={log_safe(attributes.get('queue_id') or '-')}"
        sender = attributes.get("sender", "")
        if state in ("MAIL", "RCPT") and sender and engine.policy.checks_senders:
            decision, action = self._check(engine, replies, Role.SENDER, sender, context, exim=exim)
            if decision.verdict in (Verdict.REJECTED, Verdict.TEMPFAILED) or state == "MAIL":
                return action
        if state != "RCPT":
            return DUNNO
        recipient = attributes.get("recipient", "")
        _decision, action = self._check(
            engine, replies, Role.RECIPIENT, recipient, context, exim=exim
        )
        return action


class _Handler(socketserver.StreamRequestHandler):
    """One persistent Postfix connection: requests until EOF or idle timeout."""

    server: PolicyServer

    def setup(self) -> None:
        self.request.settimeout(self.server.responder.idle_timeout)
        super().setup()

    def handle(self) -> None:
        responder = self.server.responder
        metrics = self.server.metrics
        while True:
            try:
                attributes, problem, resync = self._read_request()
            except (TimeoutError, OSError):
                return
            if attributes is None:
                return
            if problem:
                log.info("front=policy malformed request: %s", problem)
                metrics.count_policy_request("malformed")
                action = DUNNO
            else:
                # The one deliberate catch-all of this front end: a bug answers DUNNO.
                try:
                    action = responder.respond(attributes)
                    metrics.count_policy_request("ok")
                except Exception:  # noqa: BLE001 - logged, on one escaped line
                    log.error(
                        "front=policy internal error, answered DUNNO traceback=%a",
                        traceback.format_exc(),
                    )
                    metrics.count_callback_error("policy")
                    action = DUNNO
            self.wfile.write(f"action={action}\n\n".encode())
            self.wfile.flush()
            if not resync:
                return

    def _read_request(self) -> tuple[dict[str, str] | None, str, bool]:
        """(attributes or None at EOF, problem or "", whether the stream is still in sync)."""
        attributes: dict[str, str] = {}
        problem = ""
        lines = 0
        while True:
            raw = self.rfile.readline(MAX_LINE_OCTETS + 1)
            if not raw:
                return (attributes if lines else None), problem or "truncated request", False
            if not raw.endswith(b"\n"):
                return attributes, f"line over {MAX_LINE_OCTETS} octets", False
            line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            if not line:
                return attributes, problem, True
            lines += 1
            name, equals, value = line.partition("=")
            if not equals or not name:
                problem = problem or f"not name=value: {line[:80]!a}"
            elif lines > MAX_ATTRIBUTES:
                problem = problem or f"over {MAX_ATTRIBUTES} attributes"
            else:
                attributes[name] = value


class PolicyServer(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """A thread per Postfix connection, on a unix socket or loopback TCP."""

    daemon_threads = True

    def __init__(
        self,
        spec: str,
        responder: PolicyResponder,
        metrics: Metrics,
    ) -> None:
        super().__init__(spec, _Handler)
        self.responder = responder
        self.metrics = metrics
        self.socket = _listen(spec)
        self._thread = threading.Thread(
            target=self.serve_forever,
            args=(SHUTDOWN_POLL_SECONDS,),
            name="policy-service",
            daemon=True,
        )

    def fileno(self) -> int:
        return self.socket.fileno()

    def get_request(self) -> tuple[socket.socket, object]:
        return self.socket.accept()

    def shutdown_request(self, request: object) -> None:
        if isinstance(request, socket.socket):
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_WR)
            request.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.socket.close()
        path = unix_path(str(self.server_address))
        if path is not None:
            Path(path).unlink(missing_ok=True)


def _listen(spec: str) -> socket.socket:
    """A listening socket for 'unix:/path' or 'inet:PORT@HOST' / 'inet6:PORT@HOST'."""
    path = unix_path(spec)
    if path is not None:
        Path(path).unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The socket's mode follows the process umask (systemd UMask=, as for the milter).
        listener.bind(path)
    else:
        family_name, _, rest = spec.partition(":")
        port, _, host = rest.partition("@")
        family = socket.AF_INET6 if family_name == "inet6" else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
    listener.listen(128)
    return listener
