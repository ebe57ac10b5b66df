"""Speed of training data preparation (training/prepare.py): windows per minute.

A window costs one optical flow per source frame it spans (126 at 25 fps, 150 at 30 fps), a
Fourier transform and its shards; the flow dominates. The issue asks for the rate on 2 cores,
with one worker and with two (``--workers``), each worker handling whole sources.

Run:  .venv/bin/python bench/bench_prepare.py [--clips DIR] [--names A B ...] [--stride 40]

By default two clips of ``../shared/data/clips`` with 25 fps footage are prepared with a start
frame every 40 frames (the rate per window does not depend on the stride; a larger stride only
shortens the run) into a temporary folder, once per worker count. The load average is printed
too: on a machine shared with other jobs the figures drop with the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.clips import find_sources  # noqa: E402
from training.prepare import prepare  # noqa: E402
from training.prepare_settings import PrepareSettings  # noqa: E402

DEFAULT_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
DEFAULT_NAMES = ("straw_grass_dyntex.avi", "flag_dyntex_571c110.avi")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=str(DEFAULT_CLIPS), help="folder of videos")
    parser.add_argument("--names", nargs="+", default=list(DEFAULT_NAMES), help="clips of the folder to use")
    parser.add_argument("--stride", type=int, default=40, help="frames between start frames (40)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (1 2)")
    args = parser.parse_args()

    names = set(args.names)
    sources = [source.name for source in find_sources(args.clips) if source.name in names]
    if not sources:
        print(f"none of {sorted(names)} in {args.clips}", file=sys.stderr)
        return 1
    exclude = [source.name for source in find_sources(args.clips) if source.name not in names]
    settings = PrepareSettings(stride=args.stride)
    print(
        f"clips: {', '.join(sources)}; {os.cpu_count()} cores; size {settings.resolution[1]}x{settings.resolution[0]}, window {settings.window}"
    )
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as output:
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            summary = prepare(
                args.clips, output, settings, exclude=exclude, workers=workers, log=None, progress=False
            )
            minutes = (time.perf_counter() - started) / 60
        print(
            f"workers {workers}: {summary.windows} windows in {60 * minutes:.0f} s = "
            f"{summary.windows / minutes:.1f} windows per minute "
            f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
