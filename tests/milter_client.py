"""An MTA-side milter client (PyPI miltertest) for talking to the daemon directly."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

from miltertest import MilterConnection, constants


@dataclass(frozen=True)
class MilterAnswer:
    """What the milter answered: 'continue', 'reject', 'tempfail' or 'reply' + the SMTP text
    ('not-negotiated': the milter asked not to see this command, so nothing was sent)."""

    kind: str
    code: str = ""
    text: str = ""
    # "-" when the reply has more lines (the first line then reads "556-5.1.10 ...").
    separator: str = " "

    def lines(self) -> list[str]:
        """The reply as SMTP lines, e.g. ['556-5.1.10 ...', '556 5.1.10 ...']."""
        if not self.code:
            return []
        first = f"{self.code}{self.separator}{self.text}"
        return [line for line in first.split("\r\n") if line]


_KINDS = {
    constants.SMFIR_CONTINUE: "continue",
    constants.SMFIR_ACCEPT: "accept",
    constants.SMFIR_REJECT: "reject",
    constants.SMFIR_TEMPFAIL: "tempfail",
    constants.SMFIR_REPLYCODE: "reply",
}


class MilterClient:
    """One milter session: negotiate, connect, then MAIL/RCPT commands."""

    def __init__(
        self, port: int | str | socket.socket, host: str = "127.0.0.1", timeout: float = 30.0
    ) -> None:
        """`port` is a TCP port on `host`, the path of a unix socket, or a connected socket."""
        if isinstance(port, socket.socket):
            self.sock = port
        elif isinstance(port, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(port)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            # A macro packet and its command go out as two writes: without this, Nagle holds
            # the second until the milter's delayed ACK (~40 ms per RCPT).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection = MilterConnection(self.sock)
        self.actions, self.protocol = self.connection.optneg_mta()

    def _answer(self, reply: tuple[str, dict[str, str]]) -> MilterAnswer:
        command, fields = reply
        kind = _KINDS.get(command, command)
        if kind != "reply":
            return MilterAnswer(kind)
        return MilterAnswer(kind, fields["smtpcode"], fields["text"], fields.get("space", " "))

    @property
    def mail_negotiated(self) -> bool:
        """Whether the milter asked to see MAIL FROM (an MTA sends it nothing otherwise)."""
        return not self.protocol & constants.SMFIP_NOMAIL

    def mail(self, sender: str) -> MilterAnswer:
        """The milter's answer to MAIL FROM, or kind 'not-negotiated' (nothing was sent)
        when the milter negotiated MAIL away, as an MTA would."""
        if not self.mail_negotiated:
            return MilterAnswer("not-negotiated")
        return self._answer(self.connection.send_ar(constants.SMFIC_MAIL, args=[sender]))

    def rcpt(self, recipient: str, queue_id: str = "") -> MilterAnswer:
        if queue_id:
            self.connection.send_macro(constants.SMFIC_RCPT, i=queue_id)
        return self._answer(self.connection.send_ar(constants.SMFIC_RCPT, args=[recipient]))

    def message_headers(self, *fields: tuple[str, str]) -> MilterAnswer:
        """DATA, the header fields and end-of-headers, as negotiated; the last answer."""
        if not self.protocol & constants.SMFIP_NODATA:
            answer = self._answer(self.connection.send_ar(constants.SMFIC_DATA))
            if answer.kind != "continue":
                return answer
        for name, value in fields:
            if self.protocol & constants.SMFIP_NOHDRS:
                break
            if self.protocol & constants.SMFIP_NR_HDR:
                self.connection._send(constants.SMFIC_HEADER, name=name, value=value)
                continue
            answer = self._answer(
                self.connection.send_ar(constants.SMFIC_HEADER, name=name, value=value)
            )
            if answer.kind != "continue":
                return answer
        if self.protocol & constants.SMFIP_NOEOH:
            return MilterAnswer("continue")
        return self._answer(self.connection.send_ar(constants.SMFIC_EOH))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection._send(constants.SMFIC_QUIT)
        self.sock.close()

    def __enter__(self) -> MilterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
