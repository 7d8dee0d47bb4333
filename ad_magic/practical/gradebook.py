"""What ``ad-magic grade`` writes: ``grades.csv``, Gradescope's ``results/*.json``, each
student's ``feedback/*.html`` and the class's ``report.html``.

Everything here is a function of the grades alone — no clock, no path, no address — and
is written in a fixed order, so grading the same files twice writes the same bytes.
"""
from __future__ import annotations

import csv
import io
import json
import re

from ..engine.formatting import escape

__all__ = ["SubmissionGrade", "result_fields", "without_addresses", "write_csv", "gradescope_json", "feedback_html",
           "report_html", "score_text"]

PASS = "pass"
TIMED_OUT = "stopped after"      # how practical.check begins the message of a question stopped at its limit
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def without_addresses(text) -> str:
    """``text`` without object addresses (``<Tensor object at 0x7f…>`` → ``<Tensor object>``):
    they change from run to run and mean nothing to a student."""
    return _ADDRESS.sub("", str(text))


def result_fields(item) -> dict:
    """A question's Result (or a Question not reached) as plain fields. The one place that
    reads the optional ``points`` (the question's worth, 1 unless it says otherwise) and
    ``cause`` (the key of the question whose failure explains this one). Object addresses
    in messages (``<Tensor object at 0x7f…>``) are dropped: they change on every run."""
    def text(name):
        return without_addresses(getattr(item, name, "") or "")

    points = getattr(item, "points", 1)
    cause = getattr(item, "cause", None)
    return {"part": str(item.part), "key": str(item.key), "title": str(item.title),
            "status": str(getattr(item, "status", "") or ""), "message": text("message"), "hint": text("hint"),
            "points": float(1 if points is None else points), "cause": None if cause is None else str(cause)}


def score_text(value) -> str:
    """2 for 2.0, 1.5 for 1.5: points as a person writes them."""
    return f"{value:g}"


class SubmissionGrade:
    """One submission's grade: ``results`` (one dict per question, as :func:`result_fields`
    gives them, plus ``earned``), ``notes`` (what its code did outside the questions),
    ``pictures`` ({part: {"caption", "svg"}}) and ``problem`` (None, or one sentence when
    it timed out or crashed)."""

    def __init__(self, name, stem, results, notes=(), pictures=None, problem=None):
        self.name, self.stem = name, stem
        self.results = [dict(r, earned=r["points"] if r["status"] == PASS else 0.0) for r in results]
        self.notes, self.pictures, self.problem = list(notes), dict(pictures or {}), problem

    @property
    def total(self) -> float:
        return sum(r["earned"] for r in self.results)

    @property
    def max(self) -> float:
        return sum(r["points"] for r in self.results)

    def __repr__(self):
        return f"SubmissionGrade({self.name}: {score_text(self.total)}/{score_text(self.max)})"


# --------------------------------------------------------------------------- grades.csv, results/*.json

def write_csv(grades, keys) -> str:
    """``grades.csv``: a row per submission (sorted), the points earned per question, total, max."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", *keys, "total", "max"])
    for g in sorted(grades, key=lambda g: g.name):
        earned = {r["key"]: r["earned"] for r in g.results}
        writer.writerow([g.name, *(score_text(earned.get(k, 0.0)) for k in keys), score_text(g.total),
                         score_text(g.max)])
    return buffer.getvalue()


def _verdict(r) -> str:
    if r["status"] == PASS:
        return "passed"
    lines = [r["message"]] if r["message"] else [] if r["cause"] else ["not passed"]
    if r["cause"]:
        lines.append(f"follows from {r['cause']}: fix that one first")
    elif r["hint"]:
        lines.append(f"hint: {r['hint']}")
    return "\n".join(lines)


def gradescope_json(grade) -> str:
    """Gradescope's results.json for one submission: ``score`` and one test per question."""
    tests = [{"name": f"{r['key']} {r['title']}", "score": r["earned"], "max_score": r["points"],
              "output": _verdict(r)} for r in grade.results]
    data = {"score": grade.total, "tests": tests}
    if grade.problem:
        data["output"] = grade.problem
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- pages

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;
padding:0 20px;color:#111827;line-height:1.45}
h1{font-size:1.6em;margin-bottom:4px}h2{font-size:1.2em;margin-top:28px;border-bottom:1px solid #e5e7eb}
.score{font-size:1.25em;color:#374151}.problem{background:#fef2f2;border-left:4px solid #b91c1c;padding:8px 12px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;vertical-align:top;padding:5px 10px 5px 0;
border-bottom:1px solid #f3f4f6}th{color:#4b5563;font-weight:600}.mark{width:1.5em;font-size:1.15em}
.key{width:2.5em;font-weight:600}.pass{color:#065f46}.fail{color:#b91c1c}.hint{color:#92400e}
.follows{color:#6b7280;font-style:italic}.picture{margin:12px 0 4px;overflow-x:auto}
.plot svg{max-width:100%;height:auto}
.caption{color:#4b5563;font-size:.92em}.compare{width:auto;font-family:ui-monospace,monospace;font-size:.9em}
.compare td{padding-right:28px}.notes li{color:#4b5563}.num{text-align:right;width:5em}
"""


def _page(title, body) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _question_row(r) -> str:
    ok = r["status"] == PASS
    mark = '<td class="mark pass">✓</td>' if ok else '<td class="mark fail">✗</td>'
    worth = f"{score_text(r['earned'])} / {score_text(r['points'])}"
    what = ""
    if not ok:
        if r["message"] or not r["cause"]:
            what = f'<div class="fail">{escape(r["message"] or "not passed")}</div>'
        if r["cause"]:
            what += f'<div class="follows">follows from {escape(r["cause"])}: fix that one first</div>'
        elif r["hint"]:
            what += f'<div class="hint">hint: {escape(r["hint"])}</div>'
    return (f'<tr>{mark}<td class="key">{escape(r["key"])}</td><td>{escape(r["title"])}{what}</td>'
            f'<td class="num">{worth}</td></tr>')


def feedback_html(grade) -> str:
    """The page a student reads: each question with its verdict and hint, and for a part
    with a wrong answer, the picture of what their code built."""
    parts = {}
    for r in grade.results:
        parts.setdefault(r["part"], []).append(r)
    body = [f"<h1>TP04 — feedback for {escape(grade.name)}</h1>",
            f'<div class="score">{score_text(grade.total)} / {score_text(grade.max)} points</div>']
    if grade.problem:
        body.append(f'<p class="problem">{escape(grade.problem)}</p>')
    for part, results in parts.items():
        earned = sum(r["earned"] for r in results)
        worth = sum(r["points"] for r in results)
        body.append(f"<h2>Part {escape(part)} — {score_text(earned)} / {score_text(worth)}</h2>")
        body.append("<table>" + "".join(_question_row(r) for r in results) + "</table>")
        shown = grade.pictures.get(part)
        if shown:
            body.append(f'<p class="caption">{escape(shown["caption"])}</p>')
            if shown.get("svg"):
                body.append(f'<div class="picture">{shown["svg"]}</div>')
            if shown.get("rows"):
                body.append('<table class="compare"><tr><th></th><th></th><th>your code gives</th><th>expected</th>'
                            "</tr>" + "".join(f'<tr class="{"pass" if same else "fail"}"><td class="mark">'
                                              f'{"✓" if same else "✗"}</td><td class="key">{escape(what)}</td>'
                                              f"<td>{escape(yours)}</td><td>{escape(want)}</td></tr>"
                                      for what, yours, want, same in shown["rows"]) + "</table>")
    if grade.notes:
        body.append("<h2>What your code did outside the questions</h2>")
        body.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in grade.notes) + "</ul>")
    return _page(f"TP04 feedback — {grade.name}", "\n".join(body))


def _pass_rate_svg(keys, rates, parts) -> str:
    """A bar per question: the share of submissions that passed it (matplotlib, as SVG
    text with no date and a fixed hash salt, so it is the same every time)."""
    import matplotlib
    from matplotlib.figure import Figure

    colours = {"A": "#2563eb", "B": "#059669", "C": "#d97706", "D": "#7c3aed"}
    with matplotlib.rc_context({"svg.hashsalt": "ad-magic-grade", "svg.fonttype": "none", "font.size": 10}):
        fig = Figure(figsize=(max(6.0, 0.42 * len(keys) + 1.5), 3.2))
        ax = fig.add_subplot()
        bars = ax.bar(range(len(keys)), [100 * r for r in rates],
                      color=[colours.get(p, "#6b7280") for p in parts])
        for bar, rate in zip(bars, rates):
            ax.text(bar.get_x() + bar.get_width() / 2, 100 * rate + 1.5, f"{100 * rate:.0f}", ha="center",
                    va="bottom", fontsize=8, color="#374151")
        ax.set_xticks(range(len(keys)), keys)
        ax.set_ylim(0, 112)
        ax.set_ylabel("passed (% of submissions)")
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    return text[text.find("<svg"):]


def _titles(keys, titles, order) -> str:
    """The questions' titles, for a hint seen in at most three of them."""
    return "; ".join(titles.get(k, "") for k in order(keys)) if len(keys) <= 3 else f"{len(keys)} questions"


def report_html(grades, keys) -> str:
    """The class at a glance: pass rate per question, the hints that fired (most first),
    and the submissions that timed out or crashed."""
    grades = sorted(grades, key=lambda g: g.name)
    n = len(grades)
    by_key = {k: [r for g in grades for r in g.results if r["key"] == k] for k in keys}
    rates = [sum(r["status"] == PASS for r in rs) / max(len(rs), 1) for rs in by_key.values()]
    parts = [rs[0]["part"] if rs else "" for rs in by_key.values()]
    titles = {k: rs[0]["title"] for k, rs in by_key.items() if rs}
    totals = [g.total for g in grades]
    worth = max((g.max for g in grades), default=0)
    body = ["<h1>TP04 — the class at a glance</h1>",
            f'<div class="score">{n} submission{"s" * (n != 1)}; mean {score_text(round(sum(totals) / max(n, 1), 2))}'
            f" / {score_text(worth)}, full marks: {sum(t == worth for t in totals)}</div>"]
    if keys:
        plot = _pass_rate_svg(keys, rates, parts)
        body += ["<h2>Pass rate per question</h2>", f'<div class="picture plot">{plot}</div>']
    stopped = []
    for g in grades:
        looped = [r["key"] for r in g.results if r["message"].startswith(TIMED_OUT)]
        what = ([g.problem] if g.problem else []) + (
            [f"stopped at the question's time limit: {' '.join(looped)}"] if looped else [])
        if what:
            stopped.append((g, "; ".join(what)))
    body.append("<h2>Submissions that timed out or crashed</h2>")
    if stopped:
        body.append("<table><tr><th>submission</th><th>what happened</th><th class=\"num\">points</th></tr>" + "".join(
            f'<tr><td>{escape(g.name)}</td><td>{escape(what)}</td>'
            f'<td class="num">{score_text(g.total)} / {score_text(g.max)}</td></tr>' for g, what in stopped)
            + "</table>")
    else:
        body.append("<p>None.</p>")
    order = {k: i for i, k in enumerate(keys)}
    fired = {}                     # hint -> {"keys": set, "who": set}
    for g in grades:
        for r in g.results:
            if r["status"] != PASS and not r["cause"]:
                seen = fired.setdefault(r["hint"] or r["message"], {"keys": set(), "who": set()})
                seen["keys"].add(r["key"])
                seen["who"].add(g.name)
    body.append("<h2>Misconceptions: the hints that fired</h2>")
    if fired:
        def sorted_keys(ks):
            return sorted(ks, key=lambda k: (order.get(k, len(order)), k))

        rows = sorted(fired.items(), key=lambda item: (-len(item[1]["who"]), sorted_keys(item[1]["keys"])[0],
                                                       item[0]))
        body.append('<table><tr><th class="num">students</th><th class="key">questions</th><th>hint</th>'
                    "<th>submissions</th></tr>" + "".join(
                        f'<tr><td class="num">{len(seen["who"])}</td>'
                        f'<td class="key">{escape(" ".join(sorted_keys(seen["keys"])))}</td>'
                        f'<td>{escape(hint)}<div class="caption">{escape(_titles(seen["keys"], titles, sorted_keys))}'
                        f"</div></td>"
                        f'<td class="caption">{escape(", ".join(sorted(seen["who"])))}</td></tr>'
                        for hint, seen in rows) + "</table>")
    else:
        body.append("<p>None: every question passed in every submission.</p>")
    body.append("<h2>Grades</h2><table><tr><th>submission</th><th class=\"num\">points</th><th>not passed</th></tr>"
                + "".join(f'<tr><td>{escape(g.name)}</td><td class="num">{score_text(g.total)} / '
                          f'{score_text(g.max)}</td><td class="caption">'
                          f'{escape(" ".join(r["key"] for r in g.results if r["status"] != PASS))}</td></tr>'
                          for g in grades) + "</table>")
    return _page("TP04 — class report", "\n".join(body))
