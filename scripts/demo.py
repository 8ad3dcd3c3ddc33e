"""`make demo`: DNS + nullmx-milter + Postfix in a private network namespace, one message.

Starts Knot (serving the test zones) on 127.0.0.1:53, the installed milter and a private
Postfix wired with config/postfix/main.cf, all inside a throw-away network namespace; sends one
message to a good and a null-MX recipient with swaks; prints the SMTP transcript, what reached
the next hop and the milter's metrics; tears everything down. Needs root (network namespace).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mta_postfix import PostfixInstance, shipped_main_cf
from mta_stack import MtaStack

SENDER = "newcomer@real.test"
GOOD, NULL_MX = "friend@real.test", "nobody@null.test"


def heading(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def main() -> int:
    stack = MtaStack("demo")
    postfix: PostfixInstance | None = None
    ok = False
    try:
        heading("starting Knot DNS, nullmx-milter, smtp-sink and Postfix in a network namespace")
        stack.start()
        postfix = PostfixInstance(
            stack.netns,
            stack.folder("postfix"),
            next_hop=stack.sink.port,
            main_cf=shipped_main_cf(),
        ).start()
        milter = stack.milter(unix_socket=postfix.milter_socket())
        print(f"namespace {stack.netns.name}: Postfix on 127.0.0.1:{postfix.port}")
        print(f"main.cf += config/postfix/main.cf; the milter on {milter.libmilter_socket}")

        heading(f"swaks: one message to <{GOOD}> (real MX) and <{NULL_MX}> (null MX)")
        swaks = stack.netns.run(
            [
                "swaks",
                "--server",
                f"127.0.0.1:{postfix.port}",
                "--from",
                SENDER,
                "--to",
                f"{GOOD},{NULL_MX}",
                "--header",
                "Subject: nullmx-milter demo",
                "--body",
                "Hello from the demo.",
            ]
        )
        print(swaks.stdout + swaks.stderr, end="")

        heading("delivered to the next hop (smtp-sink)")
        delivered = stack.sink.wait_for_recipients(lambda got: GOOD in got)
        for recipient in delivered:
            print(f"  <{recipient}>")

        heading("nullmx-milter metrics (the nullmx_* counters that are not zero)")
        for line in stack.metrics_text(milter).splitlines():
            name = line.split("{")[0].split(" ")[0]
            if (
                name.startswith("nullmx_")
                and not name.endswith(("_created", "_bucket"))
                and not line.endswith(" 0.0")
            ):
                print(f"  {line}")

        ok = GOOD in delivered and NULL_MX not in delivered and "556 5.1.10" in swaks.stdout
        heading(
            "done: "
            + (
                "the null-MX recipient got 556 5.1.10, the other one got the mail"
                if ok
                else "UNEXPECTED RESULT"
            )
        )
    finally:
        # Tear down before printing: a closed stdout (`make demo | head`) must not leave
        # the namespace and its processes behind.
        if postfix is not None:
            postfix.stop()
        stack.stop()
    heading("torn down: processes stopped, namespace and files removed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
