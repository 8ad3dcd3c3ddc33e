"""Through Postfix: smtp-source -> private Postfix -> smtp-sink, with and without milters.

One Postfix instance in a network namespace (tests/mta_stack.py) with one smtpd listener
per case, so every case runs side by side in the same instance, round after round:

  (a) no milter                         (b) reject_unknown_recipient_domain (Knot on :53)
  (c) nullmx-milter over TCP            (d) nullmx-milter over a unix socket
  (e) do-nothing pymilter milter, TCP   (f) do-nothing C milter (libmilter), TCP
  (g) (e) without a data() callback, TCP: the 40 ms stall the others avoid (1 session only)
  (h) (g) over a unix socket: no stall there (1 session only)
  (i) nullmx-milter's policy service (check_policy_service), unix socket
  (j) the same over TCP

Warm cache, one recipient per message, at 20 sessions and at 1 session; medians of rounds.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from daemon_process import wait_for_port, wait_for_unix_socket
from milter_alone import cpu_seconds
from mta_postfix import PostfixInstance, listener
from mta_stack import MtaStack

SENDER = "bench@real.test"
RECIPIENT = "someone@real.test"
SMTP_PORT = 25
# One listener per case: (label, port, smtpd -o overrides); milters are filled in later.
CASES = ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
# Without data() the cases only show the stall: one session is enough.
ONE_SESSION_ONLY = ("g", "h")
CASE_NAMES = {
    "a": "(a) no milter",
    "b": "(b) reject_unknown_recipient_domain",
    "c": "(c) nullmx-milter, TCP",
    "d": "(d) nullmx-milter, unix socket",
    "e": "(e) do-nothing pymilter, TCP",
    "f": "(f) do-nothing C milter, TCP",
    "g": "(g) do-nothing pymilter without data(), TCP",
    "h": "(h) do-nothing pymilter without data(), unix socket",
    "i": "(i) nullmx-milter policy service, unix socket",
    "j": "(j) nullmx-milter policy service, TCP",
}
# Cases that are a check_policy_service restriction, not a milter.
POLICY_CASES = ("i", "j")
PORTS = {case: 2600 + index for index, case in enumerate(CASES)}
SOCKET_DIR = "nullmx-bench"


@dataclass(frozen=True)
class PostfixSizes:
    rounds: int = 5
    messages_20: int = 2000
    messages_1: int = 300
    # The stalled case runs ~25 msg/s at one session: fewer messages, same conclusion.
    messages_stalled: int = 60


POSTFIX_SMOKE = PostfixSizes(rounds=1, messages_20=40, messages_1=10, messages_stalled=5)


@dataclass
class PostfixResults:
    """msg/s per (case, sessions) for every round, and milter CPU per message."""

    rates: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    cpu_per_message: dict[str, float] = field(default_factory=dict)

    def median(self, case: str, sessions: int) -> float:
        return statistics.median(self.rates[(case, sessions)])

    def ratio(self, case: str, reference: str, sessions: int) -> float:
        """The median over rounds of case / reference within the round."""
        pairs = zip(self.rates[(case, sessions)], self.rates[(reference, sessions)], strict=True)
        return statistics.median(rate / base for rate, base in pairs)


@contextlib.contextmanager
def milter_in_namespace(stack: MtaStack, command: list[str], spec: str) -> Iterator[int]:
    """A do-nothing milter inside the stack's namespace on libmilter socket `spec`."""
    process = subprocess.Popen([*stack.netns.prefix, *command, spec], stdout=subprocess.DEVNULL)
    try:
        if spec.startswith("unix:"):
            wait_for_unix_socket(Path(spec.removeprefix("unix:")))
        else:
            with stack.netns.entered():
                wait_for_port(int(spec.removeprefix("inet:").partition("@")[0]))
        yield process.pid
    finally:
        # It holds no state, and pymilter takes seconds to obey SIGTERM.
        process.kill()
        process.wait()


def smtp_source(stack: MtaStack, port: int, sessions: int, messages: int) -> float:
    """Send `messages` one-recipient messages over `sessions` parallel sessions; msg/s."""
    command = [
        "smtp-source", "-s", str(sessions), "-m", str(messages), "-r", "1",
        "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}",
    ]  # fmt: skip
    started = time.perf_counter()
    completed = stack.netns.run(command, timeout=600)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"smtp-source on port {port} failed: {completed.stdout}{completed.stderr}"
        )
    return messages / seconds


def _master_cf(sockets: dict[str, str]) -> str:
    overrides: dict[str, list[str]] = {
        "a": [],
        "b": ["smtpd_recipient_restrictions=reject_unknown_recipient_domain"],
    }
    for case, spec in sockets.items():
        if case in POLICY_CASES:
            # A comma separates the restriction from its argument: -o values hold no spaces.
            restriction = f"check_policy_service,{spec},permit_mynetworks"
            overrides[case] = [f"smtpd_recipient_restrictions={restriction}"]
        else:
            overrides[case] = [f"smtpd_milters={spec}"]
    return "".join(listener(PORTS[case], *overrides[case]) for case in CASES)


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_through_postfix(null_milter: Path, sizes: PostfixSizes) -> PostfixResults:
    """Every case, side by side in one Postfix instance, `sizes.rounds` times."""
    results = PostfixResults()
    stack = MtaStack("bench").start()
    postfix: PostfixInstance | None = None
    try:
        ports = {case: _free_tcp_port() for case in ("e", "f", "g", "j")}
        # The TCP daemon serves the policy service over TCP, the unix one over a unix socket.
        tcp_milter = stack.milter(f'[policy_service]\nlisten = "inet:{ports["j"]}@127.0.0.1"\n')
        queue_dir = stack.workdir / "postfix" / "spool"
        unix_socket = queue_dir / SOCKET_DIR / "nullmx-milter.sock"
        stall_socket = queue_dir / SOCKET_DIR / "no-data.sock"
        policy_socket = queue_dir / SOCKET_DIR / "nullmx-policy.sock"
        sockets = {
            "c": f"inet:127.0.0.1:{tcp_milter.milter_port}",
            "d": f"unix:{unix_socket}",
            **{case: f"inet:127.0.0.1:{port}" for case, port in ports.items()},
            "h": f"unix:{stall_socket}",
            "i": f"unix:{SOCKET_DIR}/{policy_socket.name}",
        }
        postfix = PostfixInstance(
            stack.netns,
            stack.folder("postfix"),
            next_hop=stack.sink.port,
            port=SMTP_PORT,
            main_cf="milter_default_action = tempfail\n",
            master_cf=_master_cf(sockets),
        )
        postfix.start()
        # As the MTA tests do: a setgid folder of group postfix keeps the socket usable.
        socket_dir = unix_socket.parent
        socket_dir.mkdir()
        shutil.chown(socket_dir, "root", "postfix")
        socket_dir.chmod(0o2750)
        unix_milter = stack.milter(
            f'[policy_service]\nlisten = "unix:{policy_socket}"\n', unix_socket=unix_socket
        )
        null_pymilter = [sys.executable, str(Path(__file__).parent / "null_pymilter.py")]
        libmilter = {case: f"inet:{port}@127.0.0.1" for case, port in ports.items() if case != "j"}
        no_data = [*null_pymilter, "--no-data"]
        with (
            milter_in_namespace(stack, null_pymilter, libmilter["e"]) as pymilter_pid,
            milter_in_namespace(stack, [str(null_milter)], libmilter["f"]) as c_milter_pid,
            milter_in_namespace(stack, no_data, libmilter["g"]),
            milter_in_namespace(stack, no_data, sockets["h"]),
        ):
            pids = {
                "c": _pid(tcp_milter.process),
                "d": _pid(unix_milter.process),
                "e": pymilter_pid,
                "f": c_milter_pid,
                "i": _pid(unix_milter.process),
                "j": _pid(tcp_milter.process),
            }
            _measure(stack, sizes, results, pids)
    finally:
        if postfix is not None:
            postfix.stop()
        stack.stop()
    return results


def _pid(process: subprocess.Popen[bytes] | None) -> int:
    if process is None:
        raise RuntimeError("milter daemon is not running")
    return process.pid


def _measure(
    stack: MtaStack, sizes: PostfixSizes, results: PostfixResults, pids: dict[str, int]
) -> None:
    for case in CASES:
        smtp_source(stack, PORTS[case], 2, 10)  # warm: DNS cache, Postfix processes
    cpu: dict[str, list[float]] = {case: [] for case in pids}
    for round_number in range(sizes.rounds):
        # Rotate the order so no case always runs first (or right after a slow one).
        shift = round_number % len(CASES)
        order = CASES[shift:] + CASES[:shift]
        for sessions, messages in ((20, sizes.messages_20), (1, sizes.messages_1)):
            for case in order:
                if case in ONE_SESSION_ONLY and sessions == 20:
                    continue
                count = sizes.messages_stalled if case in ONE_SESSION_ONLY else messages
                before = cpu_seconds(pids[case]) if case in pids else 0.0
                rate = smtp_source(stack, PORTS[case], sessions, count)
                if case in pids:
                    cpu[case].append((cpu_seconds(pids[case]) - before) / count)
                results.rates.setdefault((case, sessions), []).append(rate)
    results.cpu_per_message = {case: statistics.median(values) for case, values in cpu.items()}
