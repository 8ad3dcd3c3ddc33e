"""`make bench`: run every benchmark and write the figures into docs/performance.md.

Usage: run.py [--smoke] [--readme docs/performance.md] [--workdir DIR]
              [--only alone|postfix|stop|suggest]
With --only stop, --readme rewrites only the stop-time part of the file's block.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from c_milter import build_null_milter  # noqa: E402
from milter_alone import SMOKE, Sizes, run_milter_alone  # noqa: E402
from report import postfix_section, render, stop_section, write_readme, write_readme_stop  # noqa: E402
from stop_time import STOP_SMOKE, StopSizes, run_stop_time  # noqa: E402
from suggest_cost import SUGGEST_SMOKE, SuggestSizes, run_suggest_cost, suggest_section  # noqa: E402
from through_postfix import POSTFIX_SMOKE, PostfixSizes, run_through_postfix  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does the harness work")
    parser.add_argument(
        "--readme", type=Path, help="the Markdown file whose bench block to rewrite"
    )
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument(
        "--only", choices=("alone", "postfix", "stop", "suggest"), help="run one part only"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nullmx-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        suggest = ""
        if args.only in (None, "suggest"):
            suggest = suggest_section(
                run_suggest_cost(SUGGEST_SMOKE if args.smoke else SuggestSizes())
            )
            print(suggest, flush=True)
        null_milter = build_null_milter(workdir)
        postfix = ""
        if args.only in (None, "postfix"):
            postfix_sizes = POSTFIX_SMOKE if args.smoke else PostfixSizes()
            postfix = postfix_section(run_through_postfix(null_milter, postfix_sizes))
            print(postfix, flush=True)
        stop = ""
        if args.only in (None, "stop"):
            stop = stop_section(run_stop_time(workdir, STOP_SMOKE if args.smoke else StopSizes()))
            print(stop, flush=True)
        alone = None
        if args.only in (None, "alone"):
            alone = run_milter_alone(workdir, null_milter, SMOKE if args.smoke else Sizes())
    block = render(alone, postfix, stop, suggest)
    print(block)
    if args.readme and args.only == "stop":
        write_readme_stop(args.readme, stop)
    elif args.readme:
        write_readme(args.readme, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
