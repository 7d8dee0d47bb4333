"""Small helpers shared by the benchmark scripts in this folder (timing, tables, machine info).

Nothing here imports ad_magic; the scripts import this module by putting this folder on
``sys.path`` (it is not part of the installed package).
"""
from __future__ import annotations

import gc
import math
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
    """Per-step times of one engine on one workload. ``median_s`` is the median CPU time
    of this process per step (see ``measure_rounds``); ``wall_median_s`` the wall time."""

    median_s: float
    runs: int
    times_s: list = field(default_factory=list)
    wall_median_s: float = float("nan")
    wall_s: list = field(default_factory=list)

    @property
    def ms(self) -> float:
        return self.median_s * 1e3

    @property
    def wall_ms(self) -> float:
        return self.wall_median_s * 1e3


def timed(step):
    """Run ``step()`` once; return (wall seconds, CPU seconds of this process)."""
    w0, c0 = time.perf_counter(), time.process_time()
    step()
    c1, w1 = time.process_time(), time.perf_counter()
    return w1 - w0, c1 - c0


def measure_rounds(steps, first=None, *, rounds=3, min_runs=6, max_runs=60, budget_s=2.0,
                   long_budget_s=25.0, on_done=None):
    """Median per-step time of each callable in ``steps`` ({name: step}).

    On a machine shared with other busy processes, wall time swings with the neighbours'
    load; so every engine is timed in ``rounds`` blocks interleaved with the others
    (A A A B B B … then A A A B B B … again), which spreads a busy spell over all of them,
    and the figure reported is the process's CPU time per step (``time.process_time``:
    what the step itself costs, including the garbage collector and page faults, not the
    time spent descheduled). Wall time is kept beside it.

    Within a block an engine's steps run back to back with the garbage collector on, as in
    a training loop; ``gc.collect()`` runs (untimed) between blocks so that no engine pays
    for another's garbage. Each engine gets one untimed warm-up call -- unless its first
    call (``first[name] = (wall, cpu)``, already made by the caller) took over 1 s, in
    which case that call counts as a run. Per engine: runs stop once ``budget_s`` (wall)
    is spent and ``min_runs`` are in, or past ``long_budget_s`` once one run is in.
    """
    first = first or {}
    wall = {n: [] for n in steps}
    cpu = {n: [] for n in steps}
    warm = {n: False for n in steps}
    for n, (w, c) in first.items():
        if n in steps and w > 1.0:
            wall[n].append(w)
            cpu[n].append(c)
            warm[n] = True

    def finished(n, frac=1.0):
        k, spent = len(wall[n]), sum(wall[n])
        if k >= max_runs or (k and spent >= long_budget_s):
            return True
        return k >= math.ceil(min_runs * frac) and spent >= budget_s * frac

    for r in range(rounds):
        frac = (r + 1) / rounds
        for n, step in steps.items():
            if finished(n):
                continue
            gc.collect()
            if not warm[n]:
                step()
                warm[n] = True
            while not finished(n, frac):
                w, c = timed(step)
                wall[n].append(w)
                cpu[n].append(c)
            if r == rounds - 1 and on_done:
                on_done(n)
    gc.collect()
    return {n: Timing(statistics.median(cpu[n]), len(cpu[n]), cpu[n], statistics.median(wall[n]), wall[n])
            for n in steps if wall[n]}


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


def mlp_graph(n_values: int, seed: int = 0, backward: bool = True):
    """The squared error of a scalar MLP (inputs -> tanh hidden layer -> one output),
    micrograd style, with the hidden layer widened until the graph has at least
    ``n_values`` value nodes (leaves, constants and intermediates); backward has run
    when ``backward``. Used by the rendering and widget benchmarks."""
    import numpy as np

    from ad_magic.engine import Tensor, topological_order

    rng = np.random.default_rng(seed)
    n_in = 1 if n_values < 50 else 3
    xs = [Tensor(float(v), name=f"x{i}", requires_grad=False) for i, v in enumerate(rng.normal(size=n_in))]
    width = 1
    while True:
        hidden = []
        for j in range(width):
            act = Tensor(0.0, name=f"b1_{j}")
            for i, x in enumerate(xs):
                act = act + Tensor(float(rng.normal()), name=f"w1_{j}_{i}") * x
            hidden.append(act.tanh())
        out = Tensor(0.0, name="b2")
        for j, a in enumerate(hidden):
            out = out + Tensor(float(rng.normal()), name=f"w2_{j}") * a
        loss = (out - 1.0) ** 2
        if len(topological_order(loss)) >= n_values:
            if backward:
                loss.backward()
            return loss
        width += 1
