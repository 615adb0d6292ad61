"""Run every pad benchmark and print one summary: ``.venv/bin/python bench/run_all.py``.

Every bench but bench_scale.py (run on its own), each timed. Each script prints its own table with its
baselines and writes bench/results/<name>.json; this one runs them in turn and stops at the
first failure. Pass ``--quick`` for a smaller run (minutes, not for quoting).
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
QUICK = "--quick" in sys.argv
RUNS = [
    ("execute", ["bench_execute.py"] + (["--n", "5000", "--repeats", "1", "--baseline-n", "100"] if QUICK else [])),
    ("generate", ["bench_generate.py"] + (["--questions", "200", "--repeats", "1"] if QUICK else [])),
    ("store", ["bench_store.py"] + (["--sizes", "10000,100000", "--repeats", "1"] if QUICK else [])),
    ("ray", ["bench_ray.py"] + (["--n", "5000", "--repeats", "1"] if QUICK else [])),
    ("labels", ["bench_labels.py"] + (["--sizes", "100000", "--repeats", "3"] if QUICK else [])),
    ("live", ["bench_live.py"] + (["--n", "20000", "--repeats", "1"] if QUICK else [])),
]

for name, cmd in RUNS:
    print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]], check=True)
    print(f"=== {name} took {time.perf_counter() - t:.0f} s", flush=True)
print(f"\nresults: {HERE / 'results'}/*.json")
