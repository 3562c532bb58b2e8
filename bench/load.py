#!/usr/bin/env python3
"""deedbolt's load benchmark: a release build on loopback, driven by wrk.

Usage:
    python3 bench/load.py                 # full run: every scenario, c = 8, 32, 64, 10 s each, plus the peer
    python3 bench/load.py --smoke         # 2-second run at c = 32 on the debug build, no peer (what CI runs)
    python3 bench/load.py --no-peer --alg EdDSA --concurrency 32 --duration 5
    python3 bench/load.py --no-peer --populate 1000000   # growth: 10^6 registered clients
    DATABASE_URL=postgres://USER@HOST:PORT/postgres python3 bench/load.py --backend postgres --duration 5
                                          # PostgreSQL: 1 and 2 instances on a fresh database
    DATABASE_URL=… REDIS_URL=redis://HOST:PORT python3 bench/load.py --backend postgres --redis --duration 5
                                          # the same with the shared state on Redis (the scale-out setup)

For each scenario and concurrency it prints requests/s, p50/p99 latency, server CPU per
request (user + system time of the server process, from /proc) and peak RSS, and writes
everything as JSON (default bench/results/latest.json). The peer is panva's oidc-provider
(npm), configured for client credentials with ES256 JWT access tokens, started and stopped
by pid in the same run; ratios deedbolt/peer are reported.

With `--backend postgres` the server runs on a fresh database (created with `psql` on the
server of DATABASE_URL, dropped afterwards): the token endpoint, introspection and the
guarded API with one instance, then the same with two instances on that database, the
load split evenly between them (two wrk processes at once, c/2 connections each; the
figures are the sum of requests/s, the slower of the two latencies, and the CPU of both
servers per request). No code flows and no peer on this backend.

Requires wrk (Debian package `wrk`) and, for the peer, Node.js and npm; `psql` (Debian
package `postgresql-client`) for `--backend postgres`.
"""

import argparse
import base64
import hashlib
import http.client
import multiprocessing
import resource
import sqlite3
import statistics
import urllib.parse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = TARGET_DIR / "release" / "deedbolt"
# The floor: a bare axum server signing a token per request (crates/deedbolt-http/examples/floor.rs).
FLOOR_BIN = TARGET_DIR / "release" / "examples" / "floor"
# Set by --server-logs: the folder the servers' warnings and errors are written to.
SERVER_LOGS = None
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def children_cpu_seconds():
    """User + system time of this script's finished children (wrk, the flow drivers)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rss_kib(pid, key="VmHWM"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def wait_ready(url, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


LUA = """
wrk.method = "{method}"
wrk.body = {body}
{headers}
"""


def wrk_script(method="GET", body=None, headers=None):
    """A wrk Lua script sending one fixed request; returns its path (the caller removes it)."""
    headers = headers or {}
    script = LUA.format(
        method=method,
        body=json.dumps(body) if body is not None else "nil",
        headers="\n".join(f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items()),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        return f.name


def wrk_command(url, lua, concurrency, duration):
    threads = min(2, concurrency)
    return ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--latency", "-s", lua, url]


def parse_wrk(out):
    """The figures of one wrk report."""
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_ms": to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def run_wrk(url, pid, concurrency, duration, method="GET", body=None, headers=None):
    lua = wrk_script(method, body, headers)
    cpu0, driver0 = cpu_seconds(pid), children_cpu_seconds()
    out = subprocess.run(wrk_command(url, lua, concurrency, duration), capture_output=True, text=True,
                         check=True).stdout
    cpu1, driver1 = cpu_seconds(pid), children_cpu_seconds()
    os.unlink(lua)
    w = parse_wrk(out)
    return {
        "concurrency": concurrency,
        "duration_s": duration,
        "requests": w["requests"],
        "rps": w["rps"],
        "p50_ms": w["p50_ms"],
        "p99_ms": w["p99_ms"],
        "cpu_us_per_request": round((cpu1 - cpu0) * 1e6 / max(w["requests"], 1), 1),
        # wrk's own CPU: on a shared machine, whatever the driver takes the server lacks.
        "driver_cpu_us_per_request": round((driver1 - driver0) * 1e6 / max(w["requests"], 1), 1),
        "non_2xx": w["non_2xx"],
        "socket_errors": w["socket_errors"],
        "server_peak_rss_kib": rss_kib(pid),
    }


def run_wrk_split(targets, concurrency, duration, method="GET", body=None, headers=None):
    """One wrk per (url, pid) target, all at once, `concurrency` connections split evenly.
    Requests/s add up; latencies are the slowest target's; CPU is all servers' together."""
    lua = wrk_script(method, body, headers)
    each = max(1, concurrency // len(targets))
    cpu0 = sum(cpu_seconds(pid) for _, pid in targets)
    procs = [subprocess.Popen(wrk_command(url, lua, each, duration), stdout=subprocess.PIPE, text=True)
             for url, _ in targets]
    outs = [p.communicate()[0] for p in procs]
    cpu1 = sum(cpu_seconds(pid) for _, pid in targets)
    os.unlink(lua)
    for p in procs:
        if p.returncode != 0:
            raise RuntimeError(f"wrk failed with exit status {p.returncode}")
    ws = [parse_wrk(o) for o in outs]
    total = sum(w["requests"] for w in ws)
    return {
        "concurrency": each * len(targets),
        "instances": len(targets),
        "duration_s": duration,
        "requests": total,
        "rps": round(sum(w["rps"] for w in ws), 2),
        "p50_ms": max(w["p50_ms"] for w in ws),
        "p99_ms": max(w["p99_ms"] for w in ws),
        "cpu_us_per_request": round((cpu1 - cpu0) * 1e6 / max(total, 1), 1),
        "non_2xx": sum(w["non_2xx"] for w in ws),
        "socket_errors": [w["socket_errors"] for w in ws if w["socket_errors"]] or None,
        "server_peak_rss_kib": max(rss_kib(pid) for _, pid in targets),
    }


def populate(data_dir, clients):
    """Fills the database with `clients` extra registered clients (random ids, random
    hashes), as many audit records and a tenth as many live revoked token ids, straight
    through SQLite, so that growth can be measured without hours of CLI calls. Must run
    while the server is stopped."""
    db = sqlite3.connect(os.path.join(data_dir, "deedbolt.db"))
    now = int(time.time())
    batch = 50_000
    for start in range(0, clients, batch):
        rows = [
            ("dbc_" + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="), "populated",
             os.urandom(32), "client_credentials", "property:read", now, now)
            for _ in range(min(batch, clients - start))
        ]
        db.executemany("INSERT INTO clients (id, name, secret_hash, grant_types, scopes, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.commit()
    # As many audit records as clients, and a tenth as many live revoked token ids.
    for start in range(0, clients, batch):
        n = min(batch, clients - start)
        db.executemany("INSERT INTO audit_log (at, kind, success, client_id, ip, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       [(now - i, "token_issued", 1, "dbc_populated", "127.0.0.1", "populated") for i in range(n)])
        db.commit()
    revoked = clients // 10
    for start in range(0, revoked, batch):
        n = min(batch, revoked - start)
        db.executemany("INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?)",
                       [(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="), now + 3600, now)
                        for _ in range(n)])
        db.commit()
    db.close()


def post_form(url, form, basic):
    req = urllib.request.Request(url, data=form.encode(), method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    req.add_header("Authorization", "Basic " + basic)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


class Deedbolt:
    """One server. `env` adds DEEDBOLT_* variables (the database URL and the master key on
    PostgreSQL); `issuer` is shared by instances on one database."""

    def __init__(self, data_dir, alg, env=None, issuer=None):
        self.data_dir = data_dir
        self.alg = alg
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, **(env or {}))
        self.issuer = issuer
        self.proc = None

    def cli(self, *args):
        out = subprocess.run(
            [str(BIN), "--data-dir", self.data_dir, "--log", "error", *args],
            capture_output=True, text=True, check=True, env=self.env,
        )
        return json.loads(out.stdout) if out.stdout.strip().startswith(("{", "[")) else out.stdout

    def start(self):
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(BIN), "--data-dir", self.data_dir, "--log", "warn", "serve",
             "--listen", f"127.0.0.1:{self.port}", "--signing-alg", self.alg,
             # Limits raised (not off), so the limiter's cost is part of every figure.
             "--rate-limit-token", "1000000000/1h", "--rate-limit-refresh", "1000000000/1h",
             "--rate-limit-api", "1000000000/1h", "--rate-limit-authorize", "1000000000/1h",
             *(["--issuer", self.issuer] if self.issuer else [])],
            stdout=subprocess.DEVNULL, stderr=self._log_file(), env=self.env,
        )
        wait_ready(self.base + "/readyz")
        return time.monotonic() - t0

    def _log_file(self):
        """Where the server's warnings and errors go: a file under `--server-logs`, so a
        non-2xx count in a row can be explained afterwards; nowhere otherwise."""
        if not SERVER_LOGS:
            return subprocess.DEVNULL
        SERVER_LOGS.mkdir(parents=True, exist_ok=True)
        return open(SERVER_LOGS / f"deedbolt-{self.port}.log", "a")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None


class Peer:
    def __init__(self, client_id, secret):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = ROOT / "bench" / "peer"
        self.env = dict(os.environ, PORT=str(self.port), CLIENT_ID=client_id, CLIENT_SECRET=secret,
                        NODE_ENV="production")
        self.proc = None

    def install(self):
        if not (self.dir / "node_modules" / "oidc-provider").exists():
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=self.dir, check=True)

    def start(self):
        self.proc = subprocess.Popen(["node", "server.mjs"], cwd=self.dir, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.base + "/.well-known/openid-configuration")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None


def code_flow_once(port, client_id, redirect_uri, email, password):
    """One authorization-code flow with a fresh browser (no session): authorize, login,
    consent (remembered after the first approval), code exchange. Returns the token JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    cookies = {}

    def request(method, path, body=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
        if body is not None:
            body = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";", 1)[0]
                if value:
                    cookies[name] = value
                else:
                    cookies.pop(name, None)
        return r.status, r.getheader("Location"), data

    verifier = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    q = urllib.parse.urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                                "scope": "openid tenant:read", "state": "s", "code_challenge": challenge,
                                "code_challenge_method": "S256"})
    status, location, _ = request("GET", "/authorize?" + q)
    assert status == 303 and location.startswith("/login"), (status, location)
    req = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["req"][0]
    status, _, page = request("GET", location)
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
    status, location, _ = request("POST", "/login", {"csrf": csrf, "req": req, "email": email, "password": password})
    assert status == 303, status
    status, location, page = request("GET", location)
    if status == 200:  # first time: the consent page
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
        status, location, _ = request("POST", "/consent", {"csrf": csrf, "req": req, "decision": "approve"})
    assert status == 303 and location.startswith(redirect_uri), (status, location)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    status, _, body = request("POST", "/token", {"grant_type": "authorization_code", "code": code,
                                                  "client_id": client_id, "redirect_uri": redirect_uri,
                                                  "code_verifier": verifier})
    assert status == 200, (status, body)
    conn.close()
    return json.loads(body)


def run_code_flows(db, concurrency, duration):
    """Runs complete code flows from `concurrency` threads for `duration` seconds."""
    # One user per thread: the login throttle counts attempts in flight per account, as a
    # brute-force defence, so many parallel logins of one account would be refused.
    password = "bench tenant passphrase"
    users = getattr(db, "flow_users", [])
    for i in range(len(users), concurrency):
        email = f"bench-tenant-{i}@example.com"
        subprocess.run([str(BIN), "--data-dir", db.data_dir, "--log", "error", "user", "create", "--email", email,
                        "--role", "tenant", "--password-stdin"], input=password + "\n", text=True, check=True,
                       capture_output=True)
        users.append(email)
    db.flow_users = users
    if not getattr(db, "flow_client", None):
        db.flow_client = db.cli("client", "create", "--name", "bench-spa", "--public", "--grant",
                                "authorization_code", "--redirect-uri", "http://127.0.0.1/cb", "--scope",
                                "openid tenant:read", "--json")["client_id"]
        time.sleep(1.2)  # the server notices CLI changes at its next sync
    for email in users:  # first flow per user: the consent page, approved once
        code_flow_once(db.port, db.flow_client, "http://127.0.0.1/cb", email, password)
    # One process per user (not threads: one interpreter lock would make the driver the
    # bottleneck); the driver's own CPU is measured and reported next to the server's.
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    stop = time.monotonic() + duration
    cpu0, driver0 = cpu_seconds(db.proc.pid), children_cpu_seconds()
    t0 = time.monotonic()
    procs = [ctx.Process(target=flow_worker, args=(db.port, db.flow_client, users[i], password, stop, results))
             for i in range(concurrency)]
    for p in procs:
        p.start()
    latencies, errors = [], []
    for _ in procs:
        lat, err = results.get()
        latencies += lat
        errors += err
    for p in procs:
        p.join()
    elapsed = time.monotonic() - t0
    cpu1, driver1 = cpu_seconds(db.proc.pid), children_cpu_seconds()
    latencies.sort()
    n = len(latencies)
    return {
        "concurrency": concurrency,
        "duration_s": duration,
        "requests": n,
        "rps": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "cpu_us_per_request": round((cpu1 - cpu0) * 1e6 / max(n, 1), 1),
        "driver_cpu_us_per_request": round((driver1 - driver0) * 1e6 / max(n, 1), 1),
        "non_2xx": len(errors),
        "socket_errors": errors[:3] or None,
        "server_peak_rss_kib": rss_kib(db.proc.pid),
    }


def flow_worker(port, client_id, email, password, stop, results):
    """Runs code flows as `email` until `stop`; puts (latencies, errors) on `results`."""
    latencies, errors = [], []
    while time.monotonic() < stop:
        t0 = time.monotonic()
        try:
            code_flow_once(port, client_id, "http://127.0.0.1/cb", email, password)
            latencies.append(time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - counted and reported
            errors.append(repr(e))
    results.put((latencies, errors))


def run_floor(args, concurrency):
    """The token scenario against the floor server: what a bare Rust server that only signs
    can do on this machine right now, to read deedbolt's figures against."""
    port = free_port()
    proc = subprocess.Popen([str(FLOOR_BIN), f"127.0.0.1:{port}", args.alg], stdout=subprocess.DEVNULL)
    rows = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        for c in concurrency:
            row = run_wrk(f"http://127.0.0.1:{port}/token", proc.pid, c, args.duration, "POST",
                          "grant_type=client_credentials", {"Content-Type": "application/x-www-form-urlencoded"})
            rows.append(row)
            print(f"floor    {'token (sign only)':<26} c={c:<3} {row['rps']:>9.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
                  f"p99 {row['p99_ms']:.2f} ms  {row['cpu_us_per_request']:>6.1f} µs CPU/req  "
                  f"wrk {row['driver_cpu_us_per_request']:>5.1f} µs", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"token_sign_only": rows}


def scenarios_for(server_base, basic, token, introspect_path=None, api=True):
    auth = {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"}
    out = {"token_client_credentials": dict(url=server_base + "/token", method="POST",
                                            body="grant_type=client_credentials&scope=property:read",
                                            headers=auth)}
    if introspect_path:
        out["introspection"] = dict(url=server_base + introspect_path, method="POST",
                                    body="token=" + token, headers=auth)
    if api:
        out["api_properties"] = dict(url=server_base + "/api/properties", method="GET",
                                     headers={"Authorization": "Bearer " + token})
    return out


def psql(server_url, sql):
    """Runs one SQL statement on the PostgreSQL server of `server_url` (its own database)."""
    subprocess.run(["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", server_url, "-c", sql],
                   check=True, capture_output=True, text=True)


def with_database(server_url, name):
    """`server_url` naming database `name` instead (the path of the URL)."""
    u = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def print_row(label, name, row):
    print(f"{label:<8} {name:<26} c={row['concurrency']:<3} {row['rps']:>9.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
          f"p99 {row['p99_ms']:.2f} ms  {row['cpu_us_per_request']:>6.1f} µs CPU/req  "
          f"rss {row['server_peak_rss_kib'] // 1024} MiB  non-2xx {row['non_2xx']}", flush=True)


def run_postgres(args, concurrency, results):
    """Token endpoint, introspection and the guarded API on a fresh PostgreSQL database of
    the DATABASE_URL server: one instance, then two instances on that database with the
    load split between them. The database is dropped afterwards."""
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        sys.exit("--backend postgres needs DATABASE_URL (a server where this role may CREATE DATABASE)")
    if shutil.which("psql") is None:
        sys.exit("psql is required for --backend postgres: apt-get install postgresql-client")
    name = "deedbolt_bench_" + os.urandom(6).hex()
    psql(server_url, f'CREATE DATABASE "{name}"')
    instances = []
    try:
        master_key = subprocess.run([str(BIN), "keys", "generate-master-key"], capture_output=True, text=True,
                                    check=True).stdout.strip()
        env = {"DEEDBOLT_DATABASE_URL": with_database(server_url, name), "DEEDBOLT_MASTER_KEY": master_key}
        if args.redis:
            if not os.environ.get("REDIS_URL"):
                sys.exit("--redis needs REDIS_URL")
            env["DEEDBOLT_REDIS_URL"] = os.environ["REDIS_URL"]
            env["DEEDBOLT_REDIS_PREFIX"] = name + ":"
        label = "pg+rd" if args.redis else "pg"
        results["redis"] = bool(args.redis)
        with tempfile.TemporaryDirectory() as dir1, tempfile.TemporaryDirectory() as dir2:
            first = Deedbolt(dir1, args.alg, env)
            first.issuer = first.base  # both instances: one issuer, as behind a load balancer
            second = Deedbolt(dir2, args.alg, env, issuer=first.base)
            instances = [first, second]
            writer = first.cli("client", "create", "--name", "bench", "--grant", "client_credentials",
                               "--scope", "property:read property:write", "--json")
            basic = base64.b64encode(f"{writer['client_id']}:{writer['client_secret']}".encode()).decode()
            rs = first.cli("client", "create", "--name", "bench-rs", "--grant", "client_credentials", "--scope",
                           "property:read", "--allow-introspection", "--json")
            rs_basic = base64.b64encode(f"{rs['client_id']}:{rs['client_secret']}".encode()).decode()
            results["deedbolt_postgres"] = {"startup_to_ready_s": round(first.start(), 4)}
            token = post_form(first.base + "/token", "grant_type=client_credentials", basic)["access_token"]

            def scenarios(base):
                out = scenarios_for(base, basic, token)
                out["introspection"] = dict(url=base + "/introspect", method="POST", body="token=" + token,
                                            headers={"Authorization": "Basic " + rs_basic,
                                                     "Content-Type": "application/x-www-form-urlencoded"})
                return out

            one = results["deedbolt_postgres"].setdefault("1_instance", {})
            for sc_name, sc in scenarios(first.base).items():
                for c in concurrency:
                    row = run_wrk(sc["url"], first.proc.pid, c, args.duration, sc["method"], sc.get("body"),
                                  sc["headers"])
                    one.setdefault(sc_name, []).append(row)
                    print_row(label + " x1", sc_name, row)
            second.start()
            two = results["deedbolt_postgres"].setdefault("2_instances", {})
            both = [scenarios(first.base), scenarios(second.base)]
            for sc_name, sc in both[0].items():
                for c in concurrency:
                    targets = [(both[0][sc_name]["url"], first.proc.pid), (both[1][sc_name]["url"], second.proc.pid)]
                    row = run_wrk_split(targets, c, args.duration, sc["method"], sc.get("body"), sc["headers"])
                    two.setdefault(sc_name, []).append(row)
                    print_row(label + " x2", sc_name, row)
    finally:
        for inst in instances:
            inst.stop()
        psql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"],
                    help="postgres: 1 and 2 instances on a fresh database of the DATABASE_URL server")
    ap.add_argument("--redis", action="store_true",
                    help="with --backend postgres: shared state on the Redis of REDIS_URL (own key prefix)")
    ap.add_argument("--smoke", action="store_true",
                    help="2-second run at c=32 on the debug build, no peer: checks the script, measures nothing")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binary")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the floor (a bare axum server signing a token per request)")
    ap.add_argument("--only", action="append", choices=["token_client_credentials", "introspection",
                                                        "api_properties", "code_flow_with_login"],
                    help="run only this scenario (repeatable) [default: all]")
    ap.add_argument("--alg", default="ES256", choices=["ES256", "RS256", "EdDSA"])
    ap.add_argument("--concurrency", type=int, action="append")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--populate", type=int, default=0, metavar="N",
                    help="add N clients, N audit records and N/10 revoked tokens before the runs (growth)")
    ap.add_argument("--out", help="where the JSON goes [default: bench/results/latest.json, "
                                  "bench/results/postgres.json with --backend postgres]")
    ap.add_argument("--server-logs", metavar="DIR",
                    help="write each server's warnings and errors to DIR/deedbolt-PORT.log "
                         "(to explain a row's non-2xx count)")
    args = ap.parse_args()
    global SERVER_LOGS
    SERVER_LOGS = Path(args.server_logs) if args.server_logs else None
    if args.out is None:
        args.out = str(ROOT / "bench" / "results" / (
            ("postgres-redis.json" if args.redis else "postgres.json") if args.backend == "postgres" else "latest.json"))
    if args.redis and args.backend != "postgres":
        sys.exit("--redis goes with --backend postgres")
    global BIN
    profile = ["--release"]
    if args.smoke and args.backend != "sqlite":
        sys.exit("--smoke is the CI run on SQLite; run --backend postgres with a short --duration instead")
    if args.smoke:
        args.concurrency, args.duration, args.no_peer = [32], 2, True
        BIN, profile = TARGET_DIR / "debug" / "deedbolt", []
    concurrency = args.concurrency or [8, 32, 64]
    if shutil.which("wrk") is None:
        sys.exit("wrk is required: apt-get install wrk")
    if not args.no_build:
        subprocess.run(["cargo", "build", *profile, "-p", "deedbolt"], cwd=ROOT, check=True)
        if not args.no_floor and not args.smoke:
            subprocess.run(["cargo", "build", *profile, "-p", "deedbolt-http", "--example", "floor"], cwd=ROOT,
                           check=True)

    results = {"alg": args.alg, "concurrency": concurrency, "duration_s": args.duration,
               "machine": {"cpus": os.cpu_count()}, "deedbolt": {}, "peer": {}}
    if args.backend == "postgres":
        run_postgres(args, concurrency, results)
        bad = [(n, r) for label in ("1_instance", "2_instances")
               for n, rows in results["deedbolt_postgres"].get(label, {}).items() for r in rows if r["non_2xx"]]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"startup to ready: {results['deedbolt_postgres']['startup_to_ready_s'] * 1000:.0f} ms; "
              f"results in {args.out}")
        if bad:
            sys.exit(f"non-2xx responses in: {sorted({n for n, _ in bad})}")
        return
    with tempfile.TemporaryDirectory() as data_dir:
        db = Deedbolt(data_dir, args.alg)
        writer = db.cli("client", "create", "--name", "bench", "--grant", "client_credentials",
                        "--scope", "property:read property:write", "--json")
        basic = base64.b64encode(f"{writer['client_id']}:{writer['client_secret']}".encode()).decode()
        db.start()
        db.stop()
        if args.populate:
            t0 = time.monotonic()
            populate(data_dir, args.populate)
            print(f"populated {args.populate} clients in {time.monotonic() - t0:.1f} s", flush=True)
        results["populated_clients"] = args.populate
        results["deedbolt"]["startup_to_ready_s"] = round(db.start(), 4)
        try:
            token = post_form(db.base + "/token", "grant_type=client_credentials", basic)["access_token"]
            rs = db.cli("client", "create", "--name", "bench-rs", "--grant", "client_credentials", "--scope",
                        "property:read", "--allow-introspection", "--json")
            rs_basic = base64.b64encode(f"{rs['client_id']}:{rs['client_secret']}".encode()).decode()
            scenarios = scenarios_for(db.base, basic, token)
            scenarios["introspection"] = dict(url=db.base + "/introspect", method="POST", body="token=" + token,
                                              headers={"Authorization": "Basic " + rs_basic,
                                                       "Content-Type": "application/x-www-form-urlencoded"})
            for name, sc in scenarios.items():
                if args.only and name not in args.only:
                    continue
                rows = results["deedbolt"].setdefault(name, [])
                for c in concurrency:
                    row = run_wrk(sc["url"], db.proc.pid, c, args.duration, sc["method"], sc.get("body"), sc["headers"])
                    rows.append(row)
                    print(f"deedbolt {name:<26} c={c:<3} {row['rps']:>9.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
                          f"p99 {row['p99_ms']:.2f} ms  {row['cpu_us_per_request']:>6.1f} µs CPU/req  "
                          f"wrk {row['driver_cpu_us_per_request']:>5.1f} µs  "
                          f"rss {row['server_peak_rss_kib'] // 1024} MiB  non-2xx {row['non_2xx']}", flush=True)
            # The full authorization-code flow with a password login each time (argon2id-bound
            # by design), from a Python driver: requests/s here are complete flows/s.
            rows = results["deedbolt"].setdefault("code_flow_with_login", [])
            for c in concurrency if not args.only or "code_flow_with_login" in args.only else []:
                row = run_code_flows(db, min(c, 16), args.duration)
                rows.append(row)
                print(f"deedbolt {'code_flow_with_login':<26} c={row['concurrency']:<3} {row['rps']:>9.1f} flows/s  "
                      f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  {row['cpu_us_per_request']:>8.1f} µs CPU/flow  "
                      f"driver {row['driver_cpu_us_per_request']:>7.1f} µs/flow  errors {row['non_2xx']}", flush=True)
        finally:
            db.stop()

    if not args.no_floor and not args.smoke and args.backend == "sqlite":
        results["floor"] = run_floor(args, concurrency)

    if not args.no_peer:
        peer_secret = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        peer = Peer("bench-peer", peer_secret)
        peer.install()
        peer.start()
        try:
            basic = base64.b64encode(f"bench-peer:{peer_secret}".encode()).decode()
            # The peer only introspects opaque tokens; ask for one for the introspection run.
            token = post_form(peer.base + "/token",
                              "grant_type=client_credentials&scope=property:read&resource=urn:deedbolt:bench:opaque",
                              basic)["access_token"]
            for name, sc in scenarios_for(peer.base, basic, token, "/token/introspection", api=False).items():
                rows = results["peer"].setdefault(name, [])
                for c in concurrency:
                    row = run_wrk(sc["url"], peer.proc.pid, c, args.duration, sc["method"], sc.get("body"), sc["headers"])
                    rows.append(row)
                    print(f"peer     {name:<26} c={c:<3} {row['rps']:>9.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
                          f"p99 {row['p99_ms']:.2f} ms  {row['cpu_us_per_request']:>6.1f} µs CPU/req  non-2xx {row['non_2xx']}",
                          flush=True)
        finally:
            peer.stop()
        ratios = {}
        for name, rows in results["peer"].items():
            ours = {r["concurrency"]: r for r in results["deedbolt"].get(name, [])}
            for r in rows:
                if r["concurrency"] in ours and r["rps"] > 0:
                    mine = ours[r["concurrency"]]
                    ratios[f"{name}/c{r['concurrency']}"] = {
                        "rps_ratio": round(mine["rps"] / r["rps"], 2),
                        "cpu_per_request_ratio": round(mine["cpu_us_per_request"] / max(r["cpu_us_per_request"], 0.1), 2),
                    }
        results["ratios_deedbolt_over_peer"] = ratios
        for k, v in ratios.items():
            print(f"ratio {k:<34} throughput x{v['rps_ratio']}  CPU/request x{v['cpu_per_request_ratio']}")

    bad = [(n, r) for n, rows in results["deedbolt"].items() if isinstance(rows, list) for r in rows if r["non_2xx"]]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"startup to ready: {results['deedbolt']['startup_to_ready_s'] * 1000:.0f} ms; results in {args.out}")
    if bad:
        sys.exit(f"non-2xx responses in: {sorted({n for n, _ in bad})}")


if __name__ == "__main__":
    main()
