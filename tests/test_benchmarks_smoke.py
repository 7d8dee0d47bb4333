"""Keeps benchmarks/bench_engine.py from rotting: every workload runs for ad_magic at tiny
sizes and its gradients must match the hand-written NumPy floor (for the forward-only W6,
the loss values; a forward() replay must equal the graph built anew). No timing assertions
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
    assert [k[:2] for k in keys] == ["W1", "W2", "W2", "W3", "W4", "W5", "W6", "W6", "W6", "W6"]
    assert keys[-4:] == ["W6a", "W6b", "W6c", "W6d"]
    for case in results.cases:
        for engine in (bench.FLOOR, bench.SELF):
            cell = results.cells[(case.key, engine)]
            expected = "" if engine in case.engines else "n/a"  # the replay rows have ad_magic only
            assert cell.note == expected, f"{engine} on {case.key}: {cell.note}"
    assert [c.key for c in results.cases if bench.FLOOR not in c.engines] == ["W6b", "W6d"]


def test_ad_magic_gradients_match_the_numpy_floor(bench, results):
    for case in results.cases:
        replay = bench.FLOOR not in case.engines  # checked against the same graph built anew
        assert results.reference[case.key] == (bench.REBUILT if replay else bench.FLOOR)
        cell = results.cells[(case.key, bench.SELF)]
        assert cell.grad_ok, f"{case.key}: relative gradient error {cell.grad_err:.3g}"
    assert results.grad_failures(bench.SELF) == []


@pytest.mark.parametrize("graph", ["scalar", "tensor"])
def test_forward_replay_equals_the_graph_built_anew(bench, graph):
    """W6b/W6d: after new parameter data, ad_magic's loss.forward() gives what building the
    loss anew gives; W6a/W6c's rebuilt values (ad_magic and the floor) agree with it."""
    if graph == "scalar":
        data, build, replay = bench.w1_data(quick=True), bench.w6_build_impl, bench.w6_replay_impl
    else:
        data, build, replay = bench.w3_data(quick=True), bench.w6_mlp_build_impl, bench.w6_mlp_replay_impl
    impl = replay(bench.SELF, data)
    start = float(impl.grads()["loss"])
    seen = []
    for _ in range(3):  # the parameters move by W6_DELTA, back, and again
        impl.step()
        replayed, rebuilt = float(impl.grads()["loss"]), float(impl.reference()["loss"])
        assert replayed == pytest.approx(rebuilt, rel=1e-12, abs=0)
        seen.append(replayed)
    assert seen[0] != pytest.approx(start, rel=1e-9)  # the replay did follow the new data
    assert seen[1] == pytest.approx(start, rel=1e-12) and seen[2] == pytest.approx(seen[0], rel=1e-12)
    for engine in (bench.FLOOR, bench.SELF):  # the starting values, built anew
        b = build(engine, data)
        b.step()
        assert float(b.grads()["loss"]) == pytest.approx(start, rel=1e-12), engine
    with pytest.raises(bench.NotApplicable):
        replay("torch", data)


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
    assert "| **W6b** W1's graph replayed" in text  # (the replay-vs-rebuild ratios need timings)
