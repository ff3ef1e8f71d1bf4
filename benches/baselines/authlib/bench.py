"""Runs kit-oauth's `storm` and `fleet` shapes against the Authlib baseline (app.py).

Each run starts its own kit-sandbox (confidential client, --auto-approve, --rotation reuse-detection
unless --no-reuse-detection, a short --access-ttl), installs the connections through the real authorization-code flow, waits
until every access token is expired at the sandbox *and* at the client (Authlib computes
``expires_at`` from its own clock plus ``expires_in``), resets the sandbox's counters, starts the
app's worker processes at the same instant, then reads /_sandbox/stats and checks every
connection: a connection is dead when the refresh token the store holds no longer refreshes.

Invoked by run.sh; ``bench.py worker`` is the body of one app process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

# Loopback HTTP to the sandbox: Authlib refuses plain http unless told (its documented switch).
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import authlib  # noqa: E402
import requests  # noqa: E402
from authlib.integrations.base_client import OAuthError  # noqa: E402

from app import KitSettings, TokenStore, get_account, kit_session  # noqa: E402

CLIENT_ID = "baseline-app"
CLIENT_SECRET = "baseline-secret"
REDIRECT_URI = "http://127.0.0.1:9/kit/oauth/callback"
HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------------
# One app process
# --------------------------------------------------------------------------------------------


def classify(call) -> str:
    """Runs one API call and names its outcome."""
    try:
        response = call()
    except OAuthError as error:  # the refresh itself failed (Authlib raises on an error body)
        return f"refresh failed: {error.error}"
    except requests.RequestException as error:
        return f"transport error: {type(error).__name__}"
    if response.status_code == 200:
        return "ok"
    try:
        detail = "; ".join(response.json().get("errors", []))
    except ValueError:
        detail = response.text[:80]
    return f"API {response.status_code}: {detail}"


def worker(args: argparse.Namespace) -> None:
    settings = KitSettings(args.base, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    store = TokenStore(args.db)
    if args.scenario == "storm":
        jobs = [args.connection] * args.threads
    else:  # fleet: this process goes through every connection, in the store's order
        jobs = store.connection_ids()
    work: queue.Queue[int] = queue.Queue()
    for job in jobs:
        work.put(job)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def run() -> None:
        local: Counter[str] = Counter()
        delay = args.start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        while True:
            try:
                connection_id = work.get_nowait()
            except queue.Empty:
                break
            local[classify(lambda: get_account(settings, store, connection_id))] += 1
        with lock:
            outcomes.update(local)

    threads = [threading.Thread(target=run) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"outcomes": outcomes, "finished_at": time.time()}))


# --------------------------------------------------------------------------------------------
# The orchestrator
# --------------------------------------------------------------------------------------------


class Sandbox:
    def __init__(self, binary: str, access_ttl: int, reuse_detection: bool) -> None:
        self.process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1:0",
                "--client-id", CLIENT_ID,
                "--client-secret", CLIENT_SECRET,
                "--redirect-uri", REDIRECT_URI,
                "--auto-approve",
                "--access-ttl", str(access_ttl),
                "--rotation", "reuse-detection" if reuse_detection else "strict",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        prefix = "kit-sandbox listening on "
        if not line.startswith(prefix):
            self.process.kill()
            raise SystemExit(f"kit-sandbox did not start: {line!r}")
        self.base = line[len(prefix):]
        self.http = requests.Session()

    def get(self, path: str) -> dict:
        response = self.http.get(self.base + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict | None = None) -> None:
        self.http.post(self.base + path, json=body, timeout=30).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def install_all(settings: KitSettings, store: TokenStore, count: int, threads: int) -> None:
    """Installs through the real flow: authorize (auto-approved) → code → token exchange."""
    work: queue.Queue[int] = queue.Queue()
    for i in range(1, count + 1):
        work.put(i)
    errors: list[str] = []

    def run() -> None:
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                return
            account = f"baseline-{i}"
            try:
                with kit_session(settings, store, None) as session:
                    # A tenant per connection: the sandbox derives account ids from names
                    # into 9,000,000 values, so 10,000 names collide a few times; grants are
                    # keyed by (account, client, tenant), so distinct tenants keep them apart.
                    url, _state = session.create_authorization_url(
                        settings.authorize_url, sandbox_account=account, tenant_name=f"tenant-{i}"
                    )
                    redirect = session.get(url, allow_redirects=False, withhold_token=True)
                    location = redirect.headers["location"]
                    token = session.fetch_token(
                        settings.token_url, authorization_response=location
                    )
                store.insert(i, account, token)
            except Exception as error:  # noqa: BLE001 — reported below, the run stops
                errors.append(f"install {i}: {error!r}")

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} installs failed, first: {errors[0]}")


def verify(settings: KitSettings, store: TokenStore, threads: int) -> Counter[str]:
    """Is each connection still alive? Refresh with the stored refresh token, then call the API."""
    work: queue.Queue[int] = queue.Queue()
    for connection_id in store.connection_ids():
        work.put(connection_id)
    verdicts: Counter[str] = Counter()
    lock = threading.Lock()

    def check(connection_id: int) -> str:
        try:
            with kit_session(settings, store, connection_id) as session:
                session.refresh_token(settings.token_url)
                response = session.get(f"{settings.base_url}/v4/account")
        except OAuthError:
            return "dead"
        return "alive" if response.status_code == 200 else "dead"

    def run() -> None:
        while True:
            try:
                connection_id = work.get_nowait()
            except queue.Empty:
                return
            verdict = check(connection_id)
            with lock:
                verdicts[verdict] += 1

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return verdicts


def one_run(args: argparse.Namespace, scenario: str, run_number: int) -> dict:
    runs_dir = HERE / ".runs"
    runs_dir.mkdir(exist_ok=True)
    db_path = runs_dir / f"{scenario}-{run_number}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)

    sandbox = Sandbox(args.sandbox_bin, args.access_ttl, not args.no_reuse_detection)
    try:
        settings = KitSettings(sandbox.base, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
        store = TokenStore(str(db_path))
        connections = 1 if scenario == "storm" else args.connections
        started = time.time()
        install_all(settings, store, connections, threads=8)
        installed_in = time.time() - started

        # Wait until every access token is past its expiry at the sandbox; Authlib's own check
        # (expires_at - leeway < now, expires_at = its clock + expires_in) is then true as well.
        time.sleep(args.access_ttl + 1)
        clock = sandbox.get("/_sandbox/clock")["now"]
        grants = sandbox.get("/_sandbox/grants")["grants"]
        not_expired = [g for g in grants if g["alive"] and g["access_expires_at"] > clock]
        if not_expired or len(grants) != connections:
            raise SystemExit(f"expected {connections} expired grants, got {len(grants)} grants, "
                             f"{len(not_expired)} not expired")
        sandbox.post("/_sandbox/stats/reset")

        start_at = time.time() + 1.5  # every worker thread of every process starts then
        per_process = args.callers // args.processes if scenario == "storm" else args.threads
        procs = [
            subprocess.Popen(
                [
                    sys.executable, str(HERE / "bench.py"), "worker",
                    "--base", sandbox.base, "--db", str(db_path), "--scenario", scenario,
                    "--connection", "1", "--threads", str(per_process),
                    "--start-at", repr(start_at),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.processes)
        ]
        outcomes: Counter[str] = Counter()
        finished = start_at
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"a worker process failed with exit code {proc.returncode}")
            report = json.loads(out)
            outcomes.update(report["outcomes"])
            finished = max(finished, report["finished_at"])
        stats = sandbox.get("/_sandbox/stats")
        verdicts = verify(settings, store, threads=8)
    finally:
        sandbox.stop()

    calls = sum(outcomes.values())
    return {
        "scenario": scenario,
        "run": run_number,
        "connections": connections,
        "calls": calls,
        "refresh_calls": stats["requests"]["token"],
        "refreshes_ok": stats["refreshes_ok"],
        "invalid_grant": stats["invalid_grant_total"],
        "invalid_grant_causes": stats["invalid_grant"],
        "reuse_attempts": stats["refresh_reuse_attempts"],
        "grants_revoked": stats["grants_revoked"],
        "dead": verdicts["dead"],
        "alive": verdicts["alive"],
        "api_ok": outcomes["ok"],
        "failed_calls": calls - outcomes["ok"],
        "failures": {k: v for k, v in outcomes.items() if k != "ok"},
        "install_secs": installed_in,
        "scenario_secs": finished - start_at,
    }


COLUMNS = [
    ("scenario", lambda r: r["scenario"]),
    ("run", lambda r: str(r["run"])),
    ("connections", lambda r: f"{r['connections']:,}"),
    ("API calls", lambda r: f"{r['calls']:,}"),
    ("refresh calls", lambda r: f"{r['refresh_calls']:,}"),
    ("refreshes ok", lambda r: f"{r['refreshes_ok']:,}"),
    ("`invalid_grant`", lambda r: f"{r['invalid_grant']:,}"),
    ("reuse attempts detected", lambda r: f"{r['reuse_attempts']:,}"),
    ("dead connections", lambda r: f"{r['dead']:,} / {r['connections']:,}"),
    ("failed API calls", lambda r: f"{r['failed_calls']:,}"),
    ("scenario time", lambda r: f"{r['scenario_secs']:.1f} s"),
]

RANGED = [
    ("refresh calls", "refresh_calls"),
    ("`invalid_grant`", "invalid_grant"),
    ("reuse attempts detected", "reuse_attempts"),
    ("dead connections", "dead"),
    ("failed API calls", "failed_calls"),
]


def print_tables(results: list[dict]) -> None:
    print("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|")
    for r in results:
        print("| " + " | ".join(cell(r) for _, cell in COLUMNS) + " |")
    print()
    for r in results:
        causes = ", ".join(f"{k} {v}" for k, v in sorted(r["invalid_grant_causes"].items()))
        failures = ", ".join(f"{k} ×{v}" for k, v in sorted(r["failures"].items()))
        print(f"- {r['scenario']} run {r['run']}: invalid_grant causes: {causes or 'none'}; "
              f"failed calls: {failures or 'none'}; grants revoked by reuse detection: "
              f"{r['grants_revoked']}; installs took {r['install_secs']:.1f} s")
    print()
    for scenario in sorted({r["scenario"] for r in results}):
        rows = [r for r in results if r["scenario"] == scenario]
        if len(rows) < 2:
            continue
        ranges = []
        for name, key in RANGED:
            low, high = min(r[key] for r in rows), max(r[key] for r in rows)
            ranges.append(f"{name} {low:,}" + (f"–{high:,}" if high != low else ""))
        print(f"- {scenario}, {len(rows)} runs: " + "; ".join(ranges))


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        w = argparse.ArgumentParser(prog="bench.py worker")
        w.add_argument("--base", required=True)
        w.add_argument("--db", required=True)
        w.add_argument("--scenario", choices=["storm", "fleet"], required=True)
        w.add_argument("--connection", type=int, default=1)
        w.add_argument("--threads", type=int, required=True)
        w.add_argument("--start-at", type=float, required=True)
        worker(w.parse_args(sys.argv[2:]))
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=["storm", "fleet"],
                        help="storm, fleet (default: both)")
    parser.add_argument("--sandbox-bin", required=True)
    parser.add_argument("--callers", type=int, default=100, help="storm: K concurrent callers")
    parser.add_argument("--connections", type=int, default=1000, help="fleet: M connections")
    parser.add_argument("--processes", type=int, default=2, help="app processes sharing the store")
    parser.add_argument("--threads", type=int, default=8, help="fleet: threads per process")
    parser.add_argument("--runs", type=int, default=1, help="repeat each scenario")
    parser.add_argument("--access-ttl", type=int, default=2,
                        help="sandbox --access-ttl: lifetime of the installed access tokens")
    parser.add_argument("--no-reuse-detection", action="store_true",
                        help="a lenient server: a spent refresh token fails but revokes nothing")
    parser.add_argument("--command-line", default=None, help="the command to print")
    args = parser.parse_args()
    for scenario in args.scenarios:
        if scenario not in ("storm", "fleet"):
            parser.error(f"unknown scenario {scenario!r} (storm, fleet)")

    print(f"Command: `{args.command_line or shlex.join(sys.argv)}`")
    print(f"Baseline: Authlib {authlib.__version__} (OAuth2Session, requests {requests.__version__}), "
          f"Python {platform.python_version()}; {args.processes} OS processes sharing one SQLite "
          f"token store, no cross-process lock; {os.cpu_count()} CPUs. Sandbox: "
          f"--rotation {'strict' if args.no_reuse_detection else 'reuse-detection'} "
          f"--auto-approve --access-ttl {args.access_ttl}.")
    print(f"storm: {args.callers} callers ({args.callers // args.processes} threads per process) "
          f"on one expired connection; fleet: {args.connections:,} expired connections, each "
          f"process ({args.threads} threads) calls GET /v4/account once per connection.")
    print()
    results = []
    for scenario in args.scenarios:
        for run_number in range(1, args.runs + 1):
            result = one_run(args, scenario, run_number)
            results.append(result)
            print(f"  {scenario} run {run_number}: refresh calls {result['refresh_calls']}, "
                  f"invalid_grant {result['invalid_grant']}, dead {result['dead']}",
                  file=sys.stderr, flush=True)
    print_tables(results)


if __name__ == "__main__":
    main()
