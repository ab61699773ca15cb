"""The ``easfast`` command.

``easfast serve`` runs the local EAS simulator in the foreground and prints
its addresses, then a line ``ready``; ``easfast demo`` runs the demo in
``easfast.demo``.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from easfast.testing import DEFAULT_WEIGHT, LocalEAS

log = logging.getLogger(__name__)

#: The line ``easfast serve`` prints once every server listens.
READY_LINE = "ready"

_SERVE_EPILOG = """\
output, one item per line, then the ready line:
  service NAME
  processor NAME
  token set|none
  discovery 127.0.0.1:PORT       endpoint for the direct type
  gateway 127.0.0.1:PORT         endpoint for the default (gateway) type
  predict_url URL                the gateway's full predict URL
  instance 127.0.0.1:PORT weight W   (one line per instance)
  ready

example:
  easfast serve --instances 3 --weights 5,1,1 --processor tf --duration 60
"""


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a number of seconds, such as 30"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: it must be a number of seconds above 0"
        )
    return seconds


def _instance_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"invalid instance count {text!r}: expected an integer >= 1"
        )
    return count


def _weight_list(text: str) -> list[int]:
    try:
        weights = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid weights {text!r}: expected integers separated by commas, "
            "such as 5,1,1"
        ) from None
    if any(weight < 0 for weight in weights):
        raise argparse.ArgumentTypeError(
            f"invalid weights {text!r}: weights must be >= 0"
        )
    return weights


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instances",
        type=_instance_count,
        default=3,
        metavar="N",
        help="number of service instances to start (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        type=_weight_list,
        metavar="W1,W2,...",
        help="comma-separated weight of each instance, as discovery lists them; "
        f"one per instance (default: {DEFAULT_WEIGHT} each)",
    )
    parser.add_argument(
        "--service",
        default="mnist",
        metavar="NAME",
        help="service name; predict calls go to /api/predict/NAME "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--processor",
        choices=("tf", "torch", "string"),
        default="tf",
        help="request format the instances accept: tf and torch take "
        "PredictRequests for the bundled digit classifier, string responds with "
        "the body reversed (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="service token that predict requests must carry, raw or as an "
        "EAS signature (default: no token check)",
    )
    parser.add_argument(
        "--duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C or SIGTERM)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log server starts, stops and instance changes to stderr",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``easfast`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="easfast",
        description="Tools of easfast, the fast client for PAI-EAS services.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve",
        help="run a local EAS service (instances, discovery, gateway) on 127.0.0.1",
        description="Run a simulated EAS service in the foreground: the instances,\n"
        "a discovery server and a gateway, each on a free port of 127.0.0.1.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_serve_arguments(serve)
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo",
        help="send predictions to a local service and check every response",
        description="Start a local service, send predictions through "
        "PredictClient over the direct channel and check each response.",
    )
    try:
        from easfast import demo as demo_module
    except ImportError as exc:
        demo.add_argument("demo_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        demo.set_defaults(handler=_demo_unavailable, import_error=exc)
    else:
        demo_module.add_arguments(demo)
        demo.set_defaults(handler=demo_module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``easfast`` command with ``argv``; return the exit status."""
    args = build_parser().parse_args(argv)
    status = args.handler(args)
    return int(status or 0)


def _demo_unavailable(args: argparse.Namespace) -> int:
    print(
        f"easfast demo: the demo cannot be imported ({args.import_error}); "
        "reinstall easfast or run 'easfast serve' instead",
        file=sys.stderr,
    )
    return 2


def _serve(args: argparse.Namespace) -> int:
    weights = args.weights
    if weights is not None and len(weights) != args.instances:
        print(
            f"easfast serve: got {len(weights)} weights for {args.instances} "
            "instances; give one weight per instance with --weights",
            file=sys.stderr,
        )
        return 2
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
        )

    try:
        eas = LocalEAS(
            instances=args.instances,
            weights=weights,
            service_name=args.service,
            processor=args.processor,
            token=args.token,
        )
    except ValueError as exc:
        print(f"easfast serve: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    restore = _stop_on_signals(stop)
    try:
        with eas:
            _print_addresses(eas)
            stop.wait(args.duration)
    except KeyboardInterrupt:
        pass  # Ctrl-C where no handler could be installed: stop as asked
    finally:
        restore()
    print("stopped", flush=True)
    return 0


def _print_addresses(eas: LocalEAS) -> None:
    lines = [
        f"service {eas.service_name}",
        f"processor {eas.processor}",
        f"token {'set' if eas.token else 'none'}",
        f"discovery {eas.endpoint}",
        f"gateway {eas.gateway_endpoint}",
        f"predict_url {eas.predict_url}",
    ]
    lines += [f"instance {i.address} weight {i.weight}" for i in eas.instances]
    lines.append(READY_LINE)
    print("\n".join(lines), flush=True)


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT and SIGTERM; return a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be set in the main thread

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("easfast serve: signal %d received, stopping", signum)
        stop.set()

    previous = {
        signum: signal.signal(signum, handle)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


if __name__ == "__main__":
    sys.exit(main())
