"""Small helpers shared by the benchmark scripts in this folder (timing, tables, machine info).

Nothing here imports ad_magic; the scripts import this module by putting this folder on
``sys.path`` (it is not part of the installed package).
"""
from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

# Environment variables that slow a current NumPy/OpenBLAS on some processors; they are
# set on this workplace's machines for older OpenBLAS builds. Benchmark runs (and only
# benchmark runs) drop both together -- see benchmarks/README.md.
OPENBLAS_SLOW_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# One thread for every thread pool a peer may use (set before numpy/torch are imported).
ONE_THREAD_VARS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def bench_env(base=None):
    """The environment a benchmark subprocess runs with: OpenBLAS core override dropped
    (both variables together), thread pools pinned to 1 thread."""
    env = dict(os.environ if base is None else base)
    for var in OPENBLAS_SLOW_VARS:
        env.pop(var, None)
    env.update(ONE_THREAD_VARS)
    return env


def reexec_in_bench_env():
    """When a benchmark script is run directly with OPENBLAS_CORETYPE/L2_SIZE still set,
    re-run it once without them (they must be gone before OpenBLAS loads). Only ever
    called from a script's ``__main__`` block, never on import (tests keep them)."""
    wrong = any(v in os.environ for v in OPENBLAS_SLOW_VARS) or any(
        os.environ.get(k) != v for k, v in ONE_THREAD_VARS.items())
    if wrong and not os.environ.get("_AD_MAGIC_BENCH_REEXEC"):
        env = bench_env()
        env["_AD_MAGIC_BENCH_REEXEC"] = "1"
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


@dataclass
class Timing:
    median_s: float
    runs: int
    times_s: list = field(default_factory=list)

    @property
    def ms(self) -> float:
        return self.median_s * 1e3


def measure(step, *, min_runs=5, max_runs=50, budget_s=2.0, long_budget_s=25.0, warmup=1) -> Timing:
    """Median wall time of ``step()``.

    Runs ``warmup`` untimed calls (skipped when a single call already takes > 1 s: for
    multi-second steps the first call is counted instead), then timed calls until
    ``budget_s`` is spent and at least ``min_runs`` are done -- but never past
    ``long_budget_s`` once one run is in (so a 20 s step is measured once or twice).
    Garbage left by earlier measurements is collected first; the collector stays on
    during the timed calls (as in a real training loop).
    """
    gc.collect()
    times = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if dt > 1.0:
            times.append(dt)
            break
    spent = sum(times)
    while len(times) < max_runs:
        if times and spent >= long_budget_s:
            break
        if len(times) >= min_runs and spent >= budget_s:
            break
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return Timing(statistics.median(times), len(times), times)


def fmt_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms:,.0f}"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def fmt_ratio(r: float) -> str:
    if r >= 100:
        return f"{r:,.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def md_table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


def machine_info() -> dict:
    info = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def peak_rss_mib() -> float | None:
    """Peak resident set size of this process so far (VmHWM), in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024 if sys.platform != "darwin" else kb / 2**20
    except Exception:  # pragma: no cover - exotic platforms
        return None


def current_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
