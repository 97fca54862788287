"""How fast does ``vretouch`` reject a mistake that needs no model? (issue 12)

Each case runs the installed CLI in a fresh process (``python -m vretouch_cli``), as a user
would, and measures the wall time until it exits with its one-line error. Before issue 12 these
checks came after the 7–8 s start-up (model and face detector loading).

    python benchmarks/cli_early_checks.py [--repeat 3] [--weights W]

Prints a table: case, exit code, the error line, and the best / median wall time of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo_talking.mp4"


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    exists = tmp / "exists.mp4"
    exists.write_bytes(b"keep")
    done = tmp / "masks_done"
    (done / "maps").mkdir(parents=True, exist_ok=True)
    ro = tmp / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o500)
    json_target = ro / "r.json" if not os.access(ro, os.W_OK) else Path("/proc/vretouch-r.json")
    mrfv = tmp / "mrfv"
    mrfv.mkdir(exist_ok=True)
    out = str(tmp / "out.mp4")
    d = str(DEMO)
    return [
        ("empty input", ["run", str(empty), "-o", out]),
        ("text file as input", ["run", str(text), "-o", out]),
        ("--duration 0", ["run", d, "-o", out, "--duration", "0"]),
        ("--start -1", ["run", d, "-o", out, "--start", "-1"]),
        ("-o z.avi", ["run", d, "-o", str(tmp / "z.avi")]),
        (".webm with --codec libx264", ["run", d, "-o", str(tmp / "z.webm"), "--codec", "libx264"]),
        ("--codec ffv1 -o x.mp4", ["run", d, "-o", out, "--codec", "ffv1"]),
        ("--preset fsat (typo)", ["run", d, "-o", out, "--preset", "fsat"]),
        ("existing output", ["run", d, "-o", str(exists)]),
        ("existing masks folder", ["masks", d, "-o", str(done)]),
        ("eval --json read-only", ["eval", "--mrfv", str(mrfv), "--json", str(json_target)]),
        ("usage: --strenght", ["run", d, "-o", out, "--strenght", "0.5"]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for label, argv in cases(tmp):
            times, code, line = [], None, ""
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "vretouch_cli", *argv], capture_output=True, text=True, env=env, cwd=tmp)
                times.append(time.perf_counter() - t0)
                code = proc.returncode
                err = [x for x in proc.stderr.splitlines() if x.strip()]
                line = err[0] if err else ""
            rows.append((label, code, min(times), statistics.median(times), len(err), line))
        (tmp / "ro").chmod(0o700)
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  exit  best s  median s  lines  message")
    for label, code, best, med, n, line in rows:
        print(f"{label:<{width}}  {code:>4}  {best:6.2f}  {med:8.2f}  {n:>5}  {line[:110]}")
    print(f"slowest median: {max(r[3] for r in rows):.2f} s over {len(rows)} cases, {args.repeat} runs each")


if __name__ == "__main__":
    main()
