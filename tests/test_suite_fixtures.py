"""The shared fixtures of tests/conftest.py keep tests apart: a magic test never sees the
variables or outputs of the one before it, and clearing the shell stays cheap."""
import gc
import weakref

from conftest import clear_shell


class Marker:
    """An object whose end a weak reference can see."""


def test_the_magic_shell_forgets_the_previous_test_s_variables_and_outputs(magic_shell):
    ip = magic_shell()
    ip.user_ns["Marker"] = Marker
    ip.run_cell("secret = Marker()\nsecret")          # shown: now in Out, _ and the display hook
    gone = weakref.ref(ip.user_ns["secret"])
    assert ip.user_ns["Out"] and ip.user_ns["_"] is gone()
    clear_shell(ip)
    assert "secret" not in ip.user_ns and "Marker" not in ip.user_ns
    assert ip.user_ns["Out"] == {} and ip.displayhook._ == "" and ip.displayhook.__ == ""
    gc.collect()
    assert gone() is None, "something still holds the last test's output"
    # the shell still works, and still numbers outputs
    ip.run_cell("answer = 6 * 7\nanswer")
    assert ip.user_ns["_"] == 42


def test_clearing_the_shell_runs_no_full_garbage_collection(magic_shell, monkeypatch):
    ip = magic_shell()
    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a, **k: calls.append(a) or 0)
    clear_shell(ip)
    monkeypatch.undo()
    assert calls == []
    assert ip.displayhook.do_full_cache, "the output cache is on again"


def test_property_tests_have_no_deadline_by_default():
    """A loaded machine runs an example slower: hypothesis's 200 ms deadline would fail a
    property test for the machine's load, not for the property."""
    from hypothesis import HealthCheck, settings

    assert settings.default.deadline is None and HealthCheck.too_slow in settings.default.suppress_health_check
