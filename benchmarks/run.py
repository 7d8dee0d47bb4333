"""Run every benchmarks/bench_*.py in sequence, each in its own subprocess, and print
their Markdown one after the other.

    .venv/bin/python benchmarks/run.py            # full run (several minutes)
    .venv/bin/python benchmarks/run.py --quick    # smoke run: small sizes, few repeats
    .venv/bin/python benchmarks/run.py engine     # only bench_engine.py (names or globs)
    .venv/bin/python benchmarks/run.py engine -- --only W1,W2   # options after -- go to the scripts

Every script should accept --quick (a smoke run); one that does not is run with its
defaults under --quick, and says so.

Each script runs with 1 thread per pool (OMP/OPENBLAS/MKL_NUM_THREADS=1) and with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment (together, and only
for these benchmark subprocesses: they slow a current NumPy; tests and CI keep them).
Exit status: 0 if every script exited 0, else 1 (a script's failure is also reported
in the output, and the remaining scripts still run).
"""
from __future__ import annotations

import argparse
import fnmatch
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import bench_env  # noqa: E402


def discover(selected=()):
    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if not selected:
        return scripts
    out = []
    for s in scripts:
        name = os.path.basename(s)[len("bench_"):-len(".py")]
        if any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(os.path.basename(s), pat) for pat in selected):
            out.append(s)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every script (a smoke run)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per script (default 3600)")
    ap.add_argument("names", nargs="*", help="only these scripts, e.g. engine or 'bench_w*' (default: all)")
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []
    if "--" in argv:  # everything after -- goes to the scripts
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    args = ap.parse_args(argv)

    scripts = discover(args.names)
    if not scripts:
        print(f"no benchmarks/bench_*.py matching {args.names or '*'}", file=sys.stderr)
        return 1
    env = bench_env()
    env["_AD_MAGIC_BENCH_REEXEC"] = "1"  # the environment is already right: no re-exec needed
    failed = []
    print(f"# ad_magic benchmarks{' (quick)' if args.quick else ''}\n", flush=True)
    for script in scripts:
        name = os.path.relpath(script, os.path.dirname(HERE))
        with open(script, encoding="utf-8") as f:
            knows_quick = "--quick" in f.read()
        cmd = [sys.executable, script] + (["--quick"] if args.quick and knows_quick else []) + extra
        if args.quick and not knows_quick:
            print(f"<!-- {name} has no --quick option: run with its defaults -->", flush=True)
        print(f"<!-- {' '.join([name] + cmd[2:])} -->", flush=True)
        t0 = time.perf_counter()
        try:
            # stdout (the Markdown) streams through; stderr (progress) goes to our stderr
            rc = subprocess.run(cmd, env=env, timeout=args.timeout, cwd=os.path.dirname(HERE)).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        dt = time.perf_counter() - t0
        if rc != 0:
            failed.append(name)
            print(f"\n**{name} failed** ({'timed out' if rc == 'timeout' else f'exit status {rc}'}) "
                  f"after {dt:.0f} s.\n", flush=True)
        else:
            print(f"\n_{name}: {dt:.0f} s_\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
