"""Command-line options the speed scripts share: which nets, at what size, on how many threads."""

from __future__ import annotations

import argparse
import json


def add_model_args(p: argparse.ArgumentParser, *, width: float) -> argparse.ArgumentParser:
    """--archs, --width, --size, --timesteps, --batch and --threads, with this script's default width."""
    p.add_argument("--archs", default="resnet19,vgg16")
    p.add_argument("--width", type=float, default=width)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--timesteps", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    return p


def measure_or_json(p: argparse.ArgumentParser, measure, argv, *, repeats: int):
    """Add --repeats and --json, parse ``argv`` and run ``measure(args)``.

    With --json the result is printed as JSON and ``(args, None)`` comes back; else ``(args, result)``.
    """
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = measure(args)
    if args.json:
        print(json.dumps(res, indent=2))
        return args, None
    return args, res
