"""`make soak`: the soak's report, from the JSON each run writes.

The soak (tests/src/soak/, run by the `rushcart-soak` binary) drives a mixed load
against a local API of its own while a seeded nemesis breaks what it stands on, keeps
every request in a history, and has a checker read the history and the tables
afterwards. Each run writes a JSON report; this turns one or more of them into
docs/soak.md (a summary row per run, then per run the schedule, the answers per phase,
the totals per operation and the checks) and docs/soak.png (per run, answers per 5 s
by status and the slowest and p99 answer per 5 s, the faults shaded).

    .venv/bin/python tools/soak.py REPORT.json [REPORT2.json ...]

It exits 0 once it has written both files: the soak itself decides pass or fail.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The load's operations, in the order the tables list them (tests/src/soak/history.rs).
OPERATIONS = ["charge", "use", "create-order", "pay", "cancel", "issue-coupon", "top", "restock", "change-price", "sign-up"]

# Answers by class, in the order the tables and the chart list them, with their colours.
CLASSES = ["2xx", "409", "429", "503", "504", "none", "other"]
COLOURS = {
    "2xx": "#4c9a2a",
    "409": "#d9a400",
    "429": "#8e44ad",
    "503": "#c0392b",
    "504": "#7b1010",
    "none": "#000000",
    "other": "#999999",
}

# The timeline's bucket, when a report has a single bucket to infer it from.
BUCKET_MS = 5000


def status_classes(statuses):
    """Counts by HTTP status ("0": no answer) folded into CLASSES."""
    classes = dict.fromkeys(CLASSES, 0)
    for status, count in statuses.items():
        code = int(status)
        if code == 0:
            classes["none"] += count
        elif 200 <= code < 300:
            classes["2xx"] += count
        elif str(code) in classes:
            classes[str(code)] += count
        else:
            classes["other"] += count
    return classes


def add(into, statuses):
    for status, count in statuses.items():
        into[status] = into.get(status, 0) + count
    return into


def seconds(ms):
    """812 ms below a second, 9.10 s above; a dash when there is nothing to time."""
    if ms is None:
        return "—"
    return f"{ms / 1000:,.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def timed(row, key):
    """A row's time by key, a dash when the row had no calls to time."""
    return seconds(row.get(key)) if row.get("calls", 1) else "—"


def at(ms):
    """A moment in the soak, in seconds with one decimal."""
    return f"{ms / 1000:,.1f}"


def cell(text):
    """Free text made safe for a table cell."""
    return " ".join(str(text).split()).replace("|", "\\|") or "—"


def op_order(name):
    return (OPERATIONS.index(name), name) if name in OPERATIONS else (len(OPERATIONS), name)


def status_order(status):
    """Statuses by code, no answer ("0") last."""
    code = int(status)
    return (code == 0, code)


def totals(report):
    """The whole run's requests, calls and answers by status, over every operation."""
    ops = report["ops"].values()
    statuses = {}
    for row in ops:
        add(statuses, row["statuses"])
    return sum(row["requests"] for row in ops), sum(row["calls"] for row in ops), statuses


def listed(report):
    return sum(len(check.get("violations", [])) for check in report["checks"])


# The chart.


def bucket_ms(timeline):
    if len(timeline) > 1:
        return timeline[1]["fromMs"] - timeline[0]["fromMs"]
    return BUCKET_MS


def shade(axis, schedule, label):
    """Each fault's window as a light grey span; its label, small, at the span's top."""
    for fault in schedule:
        start, end = fault["atMs"] / 1000, (fault["atMs"] + fault["lengthMs"]) / 1000
        axis.axvspan(start, end, color="#e3e3e3", zorder=0, linewidth=0)
        if label:
            axis.text((start + end) / 2, 0.98, fault["label"], transform=axis.get_xaxis_transform(),
                      rotation=90, fontsize=7, va="top", ha="center", color="#333333", zorder=3)


def draw(report, counts, latency):
    timeline = report["timeline"]
    width = bucket_ms(timeline) / 1000
    x = [b["fromMs"] / 1000 for b in timeline]
    classes = [{name: b["statuses"].get(name, 0) for name in CLASSES} for b in timeline]
    bottom = [0] * len(timeline)
    for name in CLASSES:
        values = [c[name] for c in classes]
        if not any(values):
            continue
        counts.bar(x, values, width=width, bottom=bottom, align="edge", color=COLOURS[name], label=name,
                   linewidth=0, zorder=2)
        bottom = [b + v for b, v in zip(bottom, values)]
    # Headroom above the bars for the faults' labels.
    counts.set_ylim(0, max(bottom, default=0) * 1.7 or 1)
    counts.set_ylabel("answers")
    counts.legend(loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=8, frameon=False)
    counts.set_title(f"Seed {report['seed']}: answers per {width:g} s, faults shaded")
    shade(counts, report["schedule"], label=True)

    def series(key):
        return [b[key] / 1000 if b.get(key) is not None else float("nan") for b in timeline]

    ends = x + [x[-1] + width] if x else []
    if timeline:
        # Each bucket's value held across the bucket, as the bars above are.
        latency.stairs(series("slowestMs"), ends, color="#34495e", label="slowest", linewidth=1.4, zorder=2)
        latency.stairs(series("p99Ms"), ends, color="#e67e22", label="p99", linewidth=1.4, zorder=2)
    latency.axhline(1, color="#999999", linestyle=":", linewidth=1, label="1 s (counts as felt)", zorder=1)
    latency.set_ylim(bottom=0)
    latency.set_ylabel("seconds")
    latency.set_xlabel("seconds since the soak's start")
    latency.legend(loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=8, frameon=False)
    shade(latency, report["schedule"], label=False)
    end = max(report["seconds"], ends[-1] if ends else 0)
    latency.set_xlim(0, end)


def chart(reports):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(reports)
    fig = plt.figure(figsize=(12, 4.5 * n), layout="constrained")
    # One sub-figure per report, so the space between two reports does not also part a
    # report's two axes.
    parts = fig.subfigures(n, 1, hspace=0.04) if n > 1 else [fig]
    for report, part in zip(reports, parts):
        counts, latency = part.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        draw(report, counts, latency)
    path = DOCS / "soak.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# The page.


INTRO = [
    "# The soak",
    "",
    "The soak runs a mixed load against a local API of its own while a seeded nemesis breaks what "
    "the API stands on, keeps every request in a history, and then has a checker of the project's "
    "own read the history and the tables and say what, if anything, broke. The load: balance charges "
    "and uses with and without `Idempotency-Key`, checkouts with cancels and refunds, coupon rushes "
    "through the Redis gate, top-5 reads, operator restocks and price changes, and sign-ups through "
    "the post-confirmation trigger's handler. After a calm drawn from a range, the nemesis pauses "
    "(SIGSTOP), cuts off or slows one dependency (the DynamoDB engine, moto, redis-server), kills the "
    "local API or the feed's process with SIGKILL and restarts it, or has the engine answer "
    "`TransactionConflict`; then calm again.",
    "",
    "Run it with `make soak`: `SOAK_SEED` picks the schedule (the same seed gives the same schedule) "
    "and `SOAK_SECONDS` the load's length; each run's section below gives the command that replays "
    "it. `make test` runs a bounded pass of the same soak. The code says the rest: tests/src/soak/ "
    "(the history, the nemesis, the checker) and tests/src/bin/rushcart-soak.rs (the runner).",
    "",
]


def summary(reports):
    lines = [
        "| seed | length | faults felt | requests | calls | 2xx | 409 | 429 | 503 | 504 | no answer | other "
        "| slowest answer | violations | verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for report in reports:
        requests, calls, statuses = totals(report)
        c = status_classes(statuses)
        slowest = report.get("slowest") or {}
        verdict = "passed" if report["passed"] else "**FAILED**"
        lines.append(
            f"| {report['seed']} | {report['seconds']:,} s | {report['faultsFelt']}/{len(report['schedule'])} "
            f"| {requests:,} | {calls:,} | "
            + " | ".join(f"{c[name]:,}" for name in CLASSES)
            + f" | {seconds(slowest.get('ms'))} | {report['violations']:,} | {verdict} |"
        )
    return lines + [
        "",
        "Requests are what the clients meant to do; calls are the tries, retries included (a keyed "
        "request is retried after a 5xx or no answer with its key). Answers are counted per call.",
        "",
    ]


def schedule_table(report):
    lines = [
        "### The nemesis's schedule",
        "",
        "A fault was felt when calls made while it lasted, or in the 2 s after, failed, got no answer or "
        "took longer than a second.",
        "",
        "| at (s) | fault | length | felt | evidence |",
        "|---:|---|---:|---:|---|",
    ]
    for fault in report["schedule"]:
        lines.append(
            f"| {at(fault['atMs'])} | {cell(fault['label'])} | {fault['lengthMs'] / 1000:g} s "
            f"| {fault['felt']:,} | {cell(fault.get('evidence', ''))} |"
        )
    if not report["schedule"]:
        lines.append("| — | no fault drawn | | | |")
    return lines + [""]


def phases_table(report):
    lines = [
        "### Answers per phase",
        "",
        "The soak cut into its calm stretches and its faults (in bold), each call's answer by status "
        "over every operation.",
        "",
        "| phase | from–to (s) | calls | 2xx | 409 | 429 | 503 | 504 | none | other | p99 | slowest |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in report["phases"]:
        statuses = {}
        for row in phase["answers"].values():
            add(statuses, row)
        c = status_classes(statuses)
        name = f"**{cell(phase['phase'])}**" if phase["fault"] else cell(phase["phase"])
        lines.append(
            f"| {name} | {at(phase['fromMs'])}–{at(phase['toMs'])} | {phase['calls']:,} | "
            + " | ".join(f"{c[k]:,}" for k in CLASSES)
            + f" | {timed(phase, 'p99Ms')} | {timed(phase, 'slowestMs')} |"
        )
    return lines + [""]


def ops_table(report):
    ops = sorted(report["ops"].items(), key=lambda kv: op_order(kv[0]))
    requests, calls, statuses = totals(report)
    codes = sorted(statuses, key=status_order)
    heads = ["no answer" if code == "0" else code for code in codes]
    lines = [
        "### Per operation, over the whole run",
        "",
        "| operation | requests | calls | " + " | ".join(heads) + " |",
        "|---|---:|---:|" + "---:|" * len(codes),
    ]
    for name, row in ops:
        counts = [f"{row['statuses'][code]:,}" if row["statuses"].get(code) else "·" for code in codes]
        lines.append(f"| {name} | {row['requests']:,} | {row['calls']:,} | " + " | ".join(counts) + " |")
    lines.append(
        f"| **all** | **{requests:,}** | **{calls:,}** | " + " | ".join(f"**{statuses[c]:,}**" for c in codes) + " |"
    )
    slowest = report.get("slowest")
    if slowest:
        lines += [
            "",
            f"The slowest answer took {seconds(slowest['ms'])}: {slowest['op']} (`{slowest['path']}`), "
            + ("no answer" if slowest["status"] == 0 else f"a {slowest['status']}")
            + f", at {at(slowest['atMs'])} s.",
        ]
    return lines + [""]


def checks_table(report):
    lines = [
        "### The checks",
        "",
        "| check | verdict | detail |",
        "|---|---|---|",
    ]
    for check in report["checks"]:
        verdict = "✓ ok" if check["ok"] else "**✗ FAILED**"
        lines.append(f"| {cell(check['name'])} | {verdict} | {cell(check.get('detail', ''))} |")
    lines.append("")
    shown = listed(report)
    if shown:
        lines += ["Violations listed (at most 20 a check), with the history's call ids:", ""]
        for check in report["checks"]:
            for violation in check.get("violations", []):
                ids = ", ".join(str(i) for i in violation.get("calls", []))
                lines.append(
                    f"- **{violation.get('check', check['name'])}**: {' '.join(violation['message'].split())}"
                    + (f" (calls {ids})" if ids else "")
                )
        if report["violations"] > shown:
            lines.append(f"- … and {report['violations'] - shown:,} more not listed in the report.")
        lines.append("")
    elif report["violations"]:
        lines += [f"{report['violations']:,} violations, none listed in the report.", ""]
    return lines


def section(report):
    low, high = report["calm"]
    verdict = (
        "**Passed**: every check held."
        if report["passed"]
        else f"**FAILED**: {report['violations']:,} violation{'s' if report['violations'] != 1 else ''}, below."
    )
    return (
        [
            f"## Seed {report['seed']}",
            "",
            f"Started {report['startedAt']}: {report['seconds']:,} s of load from {report['workers']} clients "
            f"(the `{report['profile']}` profile), a calm of {low}–{high} s before each fault; "
            f"{len(report['schedule'])} faults, {report['faultsFelt']} of them felt. {verdict}",
            "",
            "Replay it:",
            "",
            "```sh",
            report["replay"],
            "```",
            "",
        ]
        + schedule_table(report)
        + phases_table(report)
        + ops_table(report)
        + checks_table(report)
    )


def markdown(reports):
    runs = "one run" if len(reports) == 1 else f"{len(reports)} runs"
    lines = INTRO + [
        f"Written by `make soak` on {time.strftime('%Y-%m-%d', time.gmtime())}, from {runs}.",
        "",
    ]
    lines += summary(reports)
    lines += [
        "![per run: answers per 5 s by status, and the slowest and p99 answer per 5 s, faults shaded](soak.png)",
        "",
        "Per run: above, the answers per 5 s by status; below, the slowest and the p99 answer per 5 s; "
        "each fault's window shaded and labelled.",
        "",
    ]
    for report in reports:
        lines += section(report)
    return "\n".join(lines)


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    reports = [json.loads(Path(path).read_text()) for path in sys.argv[1:]]
    DOCS.mkdir(exist_ok=True)
    png = chart(reports)
    md = DOCS / "soak.md"
    md.write_text(markdown(reports))
    print(f"wrote {md} and {png}")


if __name__ == "__main__":
    main()
