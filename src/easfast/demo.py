"""``easfast demo``: predictions over the direct channel to a local service.

The demo starts the local EAS simulator (three instances of a digit
classifier with unequal weights), sends every request through
``PredictClient`` over the direct channel, checks each response against the
same model evaluated here with numpy, and prints a report. It exits
with status 1 on any error or wrong response.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from easfast import ENDPOINT_TYPE_DIRECT, PredictClient, PredictException, TFRequest
from easfast.testing import DigitModel, LocalEAS, load_digits

#: Requests the demo sends when ``--requests`` is not given.
DEFAULT_REQUESTS = 3000
#: Instance weights when ``--weights`` is not given.
DEFAULT_WEIGHTS = (5, 2, 1)


@dataclass
class DemoReport:
    """Counts, latencies and instance shares of one demo run."""

    requests: int = 0
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    latencies_ns: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    shares: list[tuple[str, int, int]] = field(default_factory=list)
    total_weight: int = 0
    label_accuracy: float = 0.0

    @property
    def ok(self) -> bool:
        return self.requests > 0 and not self.errors and not self.wrong


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``."""
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        help="number of predictions to send (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        default=",".join(map(str, DEFAULT_WEIGHTS)),
        help="comma-separated instance weights, one per instance "
        "(default: %(default)s)",
    )


def parse_weights(text: str) -> list[int]:
    """Parse ``"5,2,1"`` into weights, raising ValueError on bad input."""
    try:
        weights = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"invalid --weights {text!r}: expected integers separated by commas, "
            "such as 5,2,1"
        ) from None
    if any(w < 0 for w in weights) or not any(weights):
        raise ValueError(
            f"invalid --weights {text!r}: weights must be >= 0 and at least "
            "one must be positive"
        )
    return weights


def run(requests: int, weights: Sequence[int]) -> DemoReport:
    """Run the demo and return its report; nothing is printed."""
    if requests < 1:
        raise ValueError(f"invalid --requests {requests}: expected at least 1")

    images, labels = load_digits()
    scores, classes = DigitModel().predict(images)
    report = DemoReport(total_weight=sum(weights))
    correct_labels = 0

    with LocalEAS(instances=len(weights), weights=list(weights)) as eas:
        client = PredictClient(eas.endpoint, eas.service_name)
        client.set_endpoint_type(ENDPOINT_TYPE_DIRECT)
        client.init()
        try:
            started = time.perf_counter()
            for i in range(requests):
                k = i % len(images)
                request = TFRequest("predict_images")
                request.add_feed("images", [1, 784], TFRequest.DT_FLOAT, images[k])
                sent = time.perf_counter_ns()
                try:
                    response = client.predict(request)
                except PredictException as exc:
                    report.errors.append(f"request {i}: {exc}")
                    continue
                finally:
                    report.latencies_ns.append(time.perf_counter_ns() - sent)
                    report.requests += 1

                got_class = int(response.get_values("classes")[0])
                got_scores = np.asarray(response.get_values("scores"))
                if got_class != classes[k] or not np.allclose(
                    got_scores, scores[k], rtol=1e-5, atol=1e-6
                ):
                    report.wrong.append(
                        f"request {i} (image {k}): class {got_class}, "
                        f"expected {int(classes[k])}"
                    )
                correct_labels += got_class == labels[k]
            report.elapsed_s = time.perf_counter() - started
        finally:
            client.destroy()

        report.shares = [
            (inst.address, inst.weight, inst.request_count) for inst in eas.instances
        ]
    report.label_accuracy = correct_labels / report.requests
    return report


def format_report(report: DemoReport) -> str:
    """Render ``report`` as the text the demo prints."""
    lines = [
        f"requests        {report.requests}",
        f"errors          {len(report.errors)}",
        f"wrong answers   {len(report.wrong)}",
        f"label accuracy  {report.label_accuracy:.1%} "
        "(model against the images' true labels)",
        "instance shares (requests / expected from weight):",
    ]
    served = sum(count for _, _, count in report.shares) or 1
    for address, weight, count in report.shares:
        expected = weight / report.total_weight
        lines.append(
            f"  {address:<21} weight {weight:>3}  {count:>6} "
            f"{count / served:6.1%} / {expected:6.1%}"
        )
    if report.latencies_ns and report.elapsed_s > 0:
        ms = sorted(ns / 1e6 for ns in report.latencies_ns)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        lines += [
            f"throughput      {report.requests / report.elapsed_s:,.0f} requests/s "
            "(one thread, sequential)",
            f"latency         p50 {statistics.median(ms):.3f} ms, p99 {p99:.3f} ms",
        ]
    for message in (report.errors + report.wrong)[:10]:
        lines.append(f"FAILED: {message}")
    lines.append("demo passed" if report.ok else "demo FAILED")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run the demo from parsed command-line ``args``; return the exit status."""
    try:
        weights = parse_weights(args.weights)
        report = run(args.requests, weights)
    except (ValueError, PredictException) as exc:
        print(f"easfast demo: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0 if report.ok else 1
