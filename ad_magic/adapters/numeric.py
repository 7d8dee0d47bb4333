"""The chain rule of an op ad_magic's registry does not know, measured from the student's
own forward: :func:`numeric_rules`.

A student's graph may hold ops the registry has never heard of (``softplus``, ``sin``, a
``clamp`` of their own). Their rule can still be judged: the recording of the cell
(``watching.py``) knows which call made each node from which inputs, and can run that call
again (:class:`~.watching.Replay`). Here each such call is run again with one element of
one input's data moved by ±h, and the central difference gives that column of the op's
Jacobian. The chain rule's contribution to an input is then ``upstream · J``, for any
upstream the student's backward later runs the rule with.

Running the student's forward again may change things: a tape the class appends to, a
counter of names, the list of consumers kept on an input. So the calls run in a forked
copy of this process (``os.fork``), which sends the Jacobians back on a pipe and ends;
nothing of the student's objects, nor anything else, changes here. Where there is no
``fork`` (Windows), or the replay does not give the node's own value back, or the op has
a kink at this point (the one-sided differences disagree), or its inputs are too large,
there is no measured rule, and the step is shown without a verdict, with the reason.
"""
from __future__ import annotations

import io
import numbers
import os
import pickle
import select
import signal
import sys
import time
import warnings

import numpy as np

from .structure import follow

__all__ = ["numeric_rules", "MAX_ELEMENTS", "BUDGET"]

MAX_ELEMENTS = 256       # input elements of one op whose derivative is measured (2 calls each)
BUDGET = 3.0             # seconds the forked copy may take for every op of a graph
_STEP = 1e-5             # relative step of the central difference
_KINK = 1e-3             # one-sided differences further apart than this (relatively): a kink


def numeric_rules(graph, nodes) -> dict:
    """``{node: {parent: J or None} or reason}`` for each of ``nodes`` (nodes of ``graph``
    with parents): J, of shape (node.size, parent.size), the node's derivative with respect
    to that parent's data measured by re-running the call that made it (None for a parent
    where the op has a kink) with the relative tolerance it was measured to, as ``(J, rtol)``;
    a reason (one sentence) where nothing could be measured."""
    adapter = graph.adapter
    recording = getattr(adapter, "recording", None)
    found, work = {}, []
    for node in nodes:
        reason, job = _plan(adapter, recording, node)
        if job is None:
            found[node] = reason
        else:
            work.append((node, job))
    if not work:
        return found
    if not hasattr(os, "fork"):
        for node, _ in work:
            found[node] = ("its derivative is measured by running your forward again in a copy of the process, "
                           "which needs os.fork (not on this system)")
        return found
    answers = _in_a_copy(adapter, [job for _, job in work])
    for (node, _), answer in zip(work, answers):
        if isinstance(answer, str) or answer is None:
            found[node] = answer or "measuring its derivative took too long and was stopped"
        else:
            found[node] = {node.parents[i]: jac for i, jac in answer.items()}
    return found


def _plan(adapter, recording, node):
    """(reason, None), or (None, job): the replay to run and which objects to perturb."""
    what = f"{node._function or 'this op'}"
    if recording is None:
        return (f"{what} is not in ad_magic's op registry, and its derivative can be measured only under "
                "%%autodiff (which records how the cell made each node)"), None
    sources = [p.source for p in node.parents]
    wanted = {id(s) for s in sources}
    for replay in recording.replays(node.source):
        if wanted <= {id(i) for i in replay.inputs}:
            break
    else:
        return f"no call of your code that made {what} from its inputs was recorded", None
    sizes = [int(np.size(p.data)) for p in node.parents]
    if sum(sizes) > MAX_ELEMENTS:
        return (f"its inputs have {sum(sizes)} numbers; its derivative is measured only for up to "
                f"{MAX_ELEMENTS}"), None
    paths = []
    for s in sources:
        reading = adapter.reading(s)
        if reading is None or not reading.data:
            return f"where {type(s).__name__} keeps its numbers was not found", None
        paths.append(reading.data)
    return None, (replay, sources, paths, np.asarray(node.data, dtype=np.float64))


# ------------------------------------------------------------------ in the forked copy

def _in_a_copy(adapter, jobs):
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # fork in a process with threads (3.12+)
        pid = os.fork()
    if pid == 0:                                   # the copy: never returns
        status = 0
        try:
            os.close(read)
            sys.stdout = sys.stderr = io.StringIO()    # a kernel's streams need threads a copy has not
            answers = [_measure(adapter, *job) for job in jobs]
            data = pickle.dumps(answers)
            while data:
                data = data[os.write(write, data):]
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write)
    chunks, deadline = [], time.monotonic() + BUDGET
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(read, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:
        return [None] * len(jobs)


def _measure(adapter, replay, sources, paths, value):
    """In the copy: the Jacobian of the replayed call with respect to each source's data."""
    def output():
        out = replay.run()
        reading = adapter.reading(out) if adapter.is_node(out) else None
        if reading is None:
            raise _Unmeasurable(f"running {replay.name} again did not return a node")
        return np.asarray(follow(out, reading.data), dtype=np.float64)

    try:
        again = output()
        if again.shape != value.shape or not np.allclose(again, value, rtol=1e-9, atol=1e-12, equal_nan=True):
            return (f"running {replay.name} again on the same inputs gave {again.tolist()!r}, not the node's "
                    f"value, so its derivative cannot be measured")
        jacobians = {}
        for i, (source, path) in enumerate(zip(sources, paths)):
            if any(source is s for s in sources[:i]):
                continue
            jacobians[i] = _jacobian(source, path, output, again.reshape(-1))
        return jacobians
    except _Unmeasurable as why:
        return str(why)
    except Exception as error:
        return f"running {replay.name} again raised {type(error).__name__}: {error}"


class _Unmeasurable(Exception):
    pass


def _jacobian(source, path, output, middle):
    """(J, rtol): the columns of J by central differences around ``middle`` (the output at
    the inputs as they are), and how closely a rule must agree with them (float32 data is
    measured with a larger step, and less closely)."""
    holder = follow(source, path[:-1]) if len(path) > 1 else source
    name = path[-1]
    raw = getattr(holder, name)
    single = np.asarray(raw).dtype in (np.float32, np.float16)
    step, rtol = (3e-3, 2e-2) if single else (_STEP, 1e-4)
    base = np.asarray(_set(holder, name, raw, np.array(raw, dtype=np.float64)), dtype=np.float64)
    columns = []
    for k in range(base.size):
        h = step * max(1.0, abs(base.flat[k]))
        results, shifts = [], []
        for shift in (h, -h):
            moved = base.copy()
            moved.flat[k] += shift
            written = _set(holder, name, raw, moved)
            if not np.array_equal(np.asarray(getattr(holder, name), dtype=np.float64), written):
                _set(holder, name, raw, base)
                raise _Unmeasurable(f"the numbers of {type(source).__name__} cannot be changed to measure the "
                                    "derivative")
            shifts.append(written.flat[k] - base.flat[k])
            results.append(output().reshape(-1))
        _set(holder, name, raw, base)
        (plus, minus), (up, down) = results, shifts
        if not up > 0 > down:
            raise _Unmeasurable("its numbers are too coarse to measure the derivative")
        forward, backward = (plus - middle) / up, (middle - minus) / -down
        scale = np.maximum(1.0, np.maximum(np.abs(forward), np.abs(backward)))
        column = (plus - minus) / (up - down)
        if np.any(np.abs(forward - backward) > (50 * rtol if single else _KINK) * scale):
            column = np.full_like(column, np.nan)   # a kink here (relu at 0, |x| at 0): no single derivative
        columns.append(column)
    return (np.stack(columns, axis=1) if columns else np.zeros((middle.size, 0))), rtol


def _set(holder, name, raw, array):
    """Write ``array`` where the data was, in the type it had (a float, a list, an array)."""
    if isinstance(raw, np.ndarray):
        value = array.astype(raw.dtype if raw.dtype.kind == "f" else np.float64).reshape(raw.shape)
    elif isinstance(raw, np.generic):
        value = type(raw)(array.reshape(-1)[0]) if raw.dtype.kind == "f" else float(array.reshape(-1)[0])
    elif isinstance(raw, numbers.Real):
        value = float(array.reshape(-1)[0])
    elif isinstance(raw, list):
        value = array.reshape(np.shape(raw)).tolist()
    elif isinstance(raw, tuple):
        value = tuple(array.reshape(np.shape(raw)).tolist())
    else:
        raise _Unmeasurable(f"its numbers are kept as {type(raw).__name__}, which this cannot change")
    setattr(holder, name, value)
    return np.asarray(value, dtype=np.float64).reshape(array.shape)
