"""What `epochstream --help` costs (interpreter start plus the CLI's imports, which every command pays), for
one or more checkouts, interleaved so that each is measured under the same load.

    .venv/bin/python bench/cli_startup.py [--runs 5] [CHECKOUT ...]

Each CHECKOUT (default: this one) is put first on PYTHONPATH and `epochstream --help` is run `--runs`
times, round-robin; the median of each is printed, with the load average. Pass the main branch's checkout
and a branch's to compare them in the same run. It also lists which heavy engines `import epochstream.cli`
loads in each (`python -X importtime -c "import epochstream.cli"` says the same, module by module).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("pyarrow", "duckdb", "fastapi", "torch", "rq", "httpx", "pydantic", "redis")
CHECK = ("import json, sys, epochstream.cli; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
         f"{set(HEAVY)!r})))")


def env_for(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def time_help(checkout: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from epochstream.cli import main; main()", "--help"], cwd=checkout,
                   env=env_for(checkout), capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("checkouts", nargs="*", type=Path, default=[Path(__file__).resolve().parents[1]])
    args = parser.parse_args()
    times: dict[Path, list[float]] = {c: [] for c in args.checkouts}
    for _ in range(args.runs):
        for checkout in args.checkouts:
            times[checkout].append(time_help(checkout))
    print(f"load average {os.getloadavg()[0]:.1f}; median of {args.runs} runs, interleaved")
    for checkout, values in times.items():
        heavy = json.loads(subprocess.run([sys.executable, "-c", CHECK], cwd=checkout, env=env_for(checkout),
                                          capture_output=True, text=True, check=True).stdout)
        loads = ", ".join(heavy) if heavy else f"none of {', '.join(HEAVY)}"
        print(f"{checkout}: epochstream --help {statistics.median(values):.3f} s "
              f"({', '.join(f'{v:.3f}' for v in values)}); import epochstream.cli loads {loads}")


if __name__ == "__main__":
    main()
