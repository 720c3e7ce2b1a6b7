"""`make faults`: the fault suite's report, from the JSON the suite writes.

tests/tests/faults_under_load.rs runs a mixed load while each dependency in turn is
paused, cut off and slowed, then checks every invariant from the table; with
FAULTS_REPORT set it writes what it saw. This turns that into docs/reliability.md (a
table per phase, the invariants, the settings) and docs/reliability.png (answers by
status and the slowest answer, per phase).

    python tools/faults.py REPORT.json [FUNCTIONS_LOG]

With the functions' log (FAULTS_LOG, JSON), the report also says why each 503 was one.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The load's operations, in the order the tables list them.
OPERATIONS = ["balance", "balance (keyed)", "create order", "pay", "cancel", "issue coupon", "top 5"]


def status_classes(statuses):
    """2xx, 409/429 (business answers) and 503 counts; anything else by its status."""
    classes = {"2xx": 0, "409/429": 0, "503": 0, "other": 0}
    for status, count in statuses.items():
        code = int(status)
        if 200 <= code < 300:
            classes["2xx"] += count
        elif code in (409, 429):
            classes["409/429"] += count
        elif code == 503:
            classes["503"] += count
        else:
            classes["other"] += count
    return classes


def seconds(ms):
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def chart(report):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = report["phases"]
    names = [p["phase"] for p in phases]
    classes = [status_classes(p["statuses"]) for p in phases]
    fig, (counts, slowest) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    bottom = [0] * len(phases)
    colours = {"2xx": "#4c9a2a", "409/429": "#d9a400", "503": "#c0392b", "other": "#000000"}
    for name, colour in colours.items():
        values = [c[name] for c in classes]
        if not any(values):
            continue
        counts.bar(range(len(phases)), values, bottom=bottom, color=colour, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]
    counts.set_ylabel("answers")
    counts.legend(loc="upper right")
    counts.set_title("Each dependency fails mid-rush: answers by status, per phase")
    faulted = [i for i, p in enumerate(phases) if p["fault"]]
    for axis in (counts, slowest):
        for i in faulted:
            axis.axvspan(i - 0.5, i + 0.5, color="#eeeeee", zorder=0)
    slowest.bar(range(len(phases)), [p["slowestMs"] / 1000 for p in phases], color="#34495e", label="slowest")
    slowest.plot(range(len(phases)), [p["p99Ms"] / 1000 for p in phases], "o", color="#e67e22", label="p99")
    bound = report["settings"]["boundMs"] / 1000
    slowest.axhline(bound, color="#c0392b", linestyle="--", label=f"bound ({bound:.0f} s)")
    slowest.set_ylabel("seconds")
    slowest.legend(loc="upper right")
    slowest.set_xticks(range(len(phases)))
    slowest.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(DOCS / "reliability.png", dpi=100)


def markdown(report):
    settings = report["settings"]
    slowness = ", ".join(f"{s['dependency']} +{s['ms']} ms" for s in settings["slowness"])
    held = all(i["held"] for i in report["invariants"]) and report["answers"]["held"] and report["faultsFelt"]["held"]
    invariant = {i["name"].split(";")[0]: i["held"] for i in report["invariants"]}
    feed_held = all(v for k, v in invariant.items() if "platform" in k)
    coupons_held = all(v for k, v in invariant.items() if "coupons" in k)
    lines = [
        "# Reliability: each dependency fails in the middle of a rush",
        "",
        f"Written by `make faults` on {time.strftime('%Y-%m-%d', time.gmtime())} "
        "(tests/tests/faults_under_load.rs, the `local` profile, on this two-core machine against the "
        "local stack; `make test` runs the same suite for 3 s a fault in the debug build).",
        "",
        f"**{settings['workers']} clients** keep requests in flight all along: balance charges and uses "
        "with and without `Idempotency-Key` (a keyed one is retried after a 5xx with its key; an unkeyed "
        "one is not), checkouts (order, pay, every third one cancelled and refunded, each step keyed and "
        "retried), a first-come coupon rush through the Redis gate and the per-user budget, and top-5 reads. "
        f"Each dependency in turn is **paused** (SIGSTOP: every connection freezes mid-flight), **cut off** "
        f"(a proxy drops every connection and every new one) and **slowed** (the proxy holds each answer: "
        f"{slowness}) for {settings['faultSeconds']} s, with {settings['calmSeconds']} s of calm after each; "
        "last, DynamoDB stops answering for longer than any bound (the proxy holds every answer for "
        f"{settings.get('pastTheBoundSeconds', 13)} s). The feed (relay, consumer, sweeper) runs throughout.",
        "",
        f"**Result: {'every check held' if held else 'VIOLATIONS — see below'}**, over "
        f"{report['requests']:,} requests. "
        + (
            "Every answer was what its operation may give — a success, a business refusal (409 insufficient "
            "balance, coupon sold out or already issued; 429 over the budget) or a JSON 503 with "
            f"`Retry-After` — within {settings['boundMs'] / 1000:.0f} s at the client: no 500, no hang. "
            if report["answers"]["held"]
            else "**Some answers were out of bounds** (listed below). "
        )
        + f"The slowest answer a function gave, by its own `Latency` metric, took "
        f"{report['functionsSlowestMs'] / 1000:.2f} s (bound: {report['functionBoundMs'] / 1000:.1f} s; the "
        "functions answer 503 themselves at 9 s, under Lambda's 10 s timeout).",
        "",
        "![answers by status and the slowest answer, per phase](reliability.png)",
        "",
        "## Answers, per phase",
        "",
        "A request belongs to the fault it was in flight during (one sent just before a pause is answered "
        "after it), otherwise to the calm stretch it was sent in.",
        "",
        "| phase | requests | 2xx | 409/429 | 503 | other | p99 | slowest | 503s by operation |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for phase in report["phases"]:
        c = status_classes(phase["statuses"])
        unavailable = ", ".join(
            f"{op} {row['statuses']['503']}"
            for op, row in sorted(phase["byOperation"].items(), key=lambda kv: OPERATIONS.index(kv[0]))
            if "503" in row["statuses"]
        )
        name = f"**{phase['phase']}**" if phase["fault"] else phase["phase"]
        lines.append(
            f"| {name} | {phase['requests']:,} | {c['2xx']:,} | {c['409/429']:,} | {c['503']:,} | {c['other']} "
            f"| {seconds(phase['p99Ms'])} | {seconds(phase['slowestMs'])} | {unavailable or '—'} |"
        )
    def faulted(name):
        rows = [p for p in report["phases"] if p["dependency"] == name]
        total = sum(p["requests"] for p in rows)
        unavailable = sum(status_classes(p["statuses"])["503"] for p in rows)
        slowest = max((p["slowestMs"] for p in rows), default=0)
        return f"{unavailable:,} 503s of {total:,} answers, the slowest {seconds(slowest)}"

    lines += [
        "",
        "Per dependency, over its fault phases, and why:",
        "",
        f"- **DynamoDB** ({faulted('DynamoDB (dynoxide)')}). Paused (for at least 9 s, past the SDK's 8 s for "
        "a whole call: the engine drains a shorter pause inside the SDK's retries), requests in flight wait "
        "and give up at the SDK's 8 s with a 503; cut off, every write fails fast (a refused connection, the "
        "SDK's retries, a 503 in milliseconds); unresponsive, calls give up at the SDK's 8 s and the function "
        "answers 503. Keyed requests are retried by their clients and land once it is back; the top 5 keeps "
        "answering from Redis.",
        f"- **moto** ({faulted('moto (SQS, Kinesis)')}): payment never waits on the feed; the relay and the "
        "consumer retry, and the sweeper republishes what the relay could not.",
        f"- **Redis** ({faulted('Redis')}): the gate, the budget and the cache each wait at most their "
        "250 ms call budget and step aside; DynamoDB alone decides the coupon rush, and the top 5 is "
        "computed from DynamoDB — once per 5 s per process, the others taking that answer.",
        "- A 503 in a row where DynamoDB itself was not failing is a request that overlapped a DynamoDB "
        "fault (a row counts a request by the phase it belongs to, not by where its wait came from): the "
        "answer is still the honest one, a 503 within the bound, and a keyed retry lands once.",
        "",
        "## Invariants afterwards, from the table",
        "",
        "| invariant | held | violations |",
        "|---|---|---|",
    ]
    for check in report["invariants"]:
        violations = "; ".join(check["violations"][:5]) or "—"
        lines.append(f"| {check['name']} | {'yes' if check['held'] else '**no**'} | {violations} |")
    orders = report["orders"]
    lines += [
        "",
        f"- Orders paid: {orders['paid']:,}, of which refunded: {orders['refunded']:,}; "
        + (
            f"every one reached the data platform exactly once (and each refund once) "
            f"{orders['deliveredWithinMs'] / 1000:.1f} s after the load stopped, the sweeper's pass included."
            if feed_held
            else "**not every one reached the data platform exactly once** (above)."
        ),
        f"- Messages in the feed's dead-letter queue at the end: {report['deadLettered']} (a failed delivery "
        "stays invisible for the queue's visibility timeout, as Lambda leaves it, so the receive limit "
        "outlasts every fault; only a poison message reaches the DLQ — docs/runbook.md).",
        f"- Coupon copies the clients were told are theirs: {report['coupons']['told']:,}; "
        + ("each is in the table." if coupons_held else "**not all are in the table** (above)."),
        "- Each fault was felt: "
        + (
            "every DynamoDB fault but the slowing drew 503s, the coupon gate stepped aside, the top 5 fell "
            "back to DynamoDB and the relay retried."
            if report["faultsFelt"]["held"]
            else "**no** — " + "; ".join(report["faultsFelt"]["violations"])
        ),
    ]
    if not report["answers"]["held"]:
        lines += ["", "## Answers out of bounds", ""] + [f"- {v}" for v in report["answers"]["violations"]]
    lines += [
        "",
        "## Also proved, in `make test`",
        "",
        "- tests/tests/mid_commit.rs: DynamoDB acts on a charge's and a payment's transaction but the answer "
        "is lost (the proxy holds the answers to `TransactWriteItems`); the function answers 503 within the "
        "bound, and the client's retry with its `Idempotency-Key` gets the first outcome "
        "(`Idempotent-Replayed: true`), applied once.",
        "- tests/tests/feed.rs: a poison message is dead-lettered after the receive limit while the rest of "
        "its batch goes through; `rushcart-admin redrive` delivers it once.",
        "- tests/tests/redis_tls.rs: Redis over TLS (`rediss://`), and a connect that keeps failing is "
        "retried with backoff, logged and counted (`RedisConnect`).",
        "",
    ]
    return "\n".join(lines)


# What a function's 503 said in its log, by the first pattern its cause matches.
CAUSES = [
    ("function deadline (9 s)", "gave up on the request"),
    ("SDK operation timeout (8 s: attempts of 3 s, retried)", "operation timeout"),
    ("SDK attempt timeout (3 s)", "attempt timeout"),
    ("connection refused or dropped", "dispatch failure"),
    ("connection refused or dropped", "connection"),
    ("the answer broke off", "response error"),
]


def causes(log_path):
    """The functions' 503s by cause and by what they were doing, from the JSON log."""
    by_cause = {}
    for line in Path(log_path).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        fields = record.get("fields", {})
        if fields.get("message") != "dependency unavailable":
            continue
        error = fields.get("error", "")
        cause = next((name for name, pattern in CAUSES if pattern in error), "other")
        doing = error.split(":", 1)[0]
        # "pay order 01J…" and "commit CHARGE of 12.34 for user 5" name their instance.
        doing = " ".join(w for w in doing.split() if not any(c.isdigit() for c in w))
        key = (cause, doing)
        by_cause[key] = by_cause.get(key, 0) + 1
    return sorted(by_cause.items(), key=lambda kv: -kv[1])


def main():
    report = json.loads(Path(sys.argv[1]).read_text())
    chart(report)
    text = markdown(report)
    if len(sys.argv) > 2 and Path(sys.argv[2]).exists():
        rows = causes(sys.argv[2])
        text += "\n".join(
            [
                "",
                "## Why the functions answered 503, from their log",
                "",
                "Each 503's cause as the function logged it (the client saw only `SERVICE_UNAVAILABLE` and a "
                "request id), over the whole run:",
                "",
                "| cause | what the function was doing | 503s |",
                "|---|---|---:|",
            ]
            + [f"| {cause} | {doing} | {count:,} |" for (cause, doing), count in rows[:15]]
            + [""]
        )
    (DOCS / "reliability.md").write_text(text)
    print(f"wrote {DOCS / 'reliability.md'} and {DOCS / 'reliability.png'}")


if __name__ == "__main__":
    main()
