"""Keeps benchmarks/bench_engine.py from rotting: every workload runs for ad_magic at tiny
sizes and its gradients must match the hand-written NumPy floor. No timing assertions
(speed lives in benchmarks/, see benchmarks/README.md)."""
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks", "bench_engine.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def results(bench):
    return bench.run_workloads(quick=True, peers=(), timing=False)


def test_every_workload_runs_for_ad_magic_and_the_floor(bench, results):
    keys = [c.key for c in results.cases]
    assert [k[:2] for k in keys] == ["W1", "W2", "W2", "W3", "W4", "W5"]
    for key in keys:
        for engine in (bench.FLOOR, bench.SELF):
            cell = results.cells[(key, engine)]
            assert cell.note == "", f"{engine} on {key}: {cell.note}"


def test_ad_magic_gradients_match_the_numpy_floor(bench, results):
    for case in results.cases:
        assert results.reference[case.key] == bench.FLOOR
        cell = results.cells[(case.key, bench.SELF)]
        assert cell.grad_ok, f"{case.key}: relative gradient error {cell.grad_err:.3g}"
    assert results.grad_failures(bench.SELF) == []


def test_floor_gradients_are_right(bench):
    # W2 has a closed form: d y_N / d y_0 = 1.0001**N
    impl = bench.w2_impl(bench.FLOOR, bench.w2_data(500))
    impl.step()
    assert impl.grads()["y0"] == pytest.approx(bench.A_CHAIN ** 500, rel=1e-12)
    # W5's hand-written backward agrees with central differences on a few coordinates
    import numpy as np

    data = {"x": np.random.default_rng(0).standard_normal(64)}
    impl = bench.w5_impl(bench.FLOOR, data)
    impl.step()
    g = impl.grads()["x"]

    def f(x):
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        return bench._w5_chain(x, np.tanh, sig, lambda v: np.maximum(v, 0), np.exp).sum()

    for i in (0, 7, 31, 63):
        e = np.zeros(64)
        e[i] = 1e-6
        fd = (f(data["x"] + e) - f(data["x"] - e)) / 2e-6
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_report_renders(bench, results):
    text = bench.render(results)
    assert "| workload |" in text and "Gradient check" in text
