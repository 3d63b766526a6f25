#!/usr/bin/env python3
"""Dispatch overhead of sweep beside Optuna and Ray Tune: the same `command` trial script
(bench/dispatch/trial.sh: five epochs of 50 ms, one metric line each), the same number of trials,
the same concurrency, each system storing every epoch's result durably its own way:

- sweep: `sweep-coordinator` and one `sweep-agent` with N slots, separate processes, as on a
  cluster; the sweep is a grid of `--trials` command trials submitted with `sweep submit`. Every
  epoch row and completion is committed to the coordinator's SQLite store before it is
  acknowledged. Time: from the sweep's creation to its last completion, both by the store's clock
  (`sweeps.created_at_ms`, `max(trials.finished_at_ms)`); the client's wall time around
  `sweep submit` + `sweep watch`, CLI start-ups included, is shown beside it.
- Optuna: `study.optimize(objective, n_trials, n_jobs=N)` on SQLite storage with a GridSampler
  over the same grid (or `--optuna-sampler random`); the objective runs the script as a subprocess and calls `trial.report` per
  epoch (each a committed SQLite write). Time: the `optimize` call.
- Ray Tune: `Tuner.fit()` with `max_concurrent_trials=N` (and `num_cpus=N`, so N trials fit) over
  `grid_search` of the same grid; the trainable runs the script and calls `tune.report` per
  epoch, which Ray writes to its storage folder. Time: the `fit` call.
- pool: a plain thread pool of N running the script and reading its lines, storing nothing: what
  the script and process start cost on this machine, with no system around them.

Start-up (the coordinator and agent registered, `import optuna` + `create_study`, `ray.init`) is
outside the timed part and shown on its own. Rounds are interleaved (every system once per round,
the order rotated), and the table shows medians. The floor is trials x 5 x 50 ms / N.

    bench/dispatch/compare.py                      # 200 trials, 8 at a time, 3 rounds
    bench/dispatch/compare.py --rounds 5 --skip ray --profile debug

Optuna and Ray go into their own virtual environment (default ~/.cache/sweep-bench-dispatch/venv,
or $DISPATCH_PEER_VENV), installed from PyPI on first use; neither is needed by the build or tests.
"""

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import peer_venv  # noqa: E402  (bench/peer_venv.py, shared by the benchmarks that run peers)
TRIAL = ROOT / "bench" / "dispatch" / "trial.sh"
PEER_VENV = Path(os.environ.get("DISPATCH_PEER_VENV", Path.home() / ".cache" / "sweep-bench-dispatch" / "venv"))
EPOCHS, EPOCH_S = 5, 0.05
SYSTEMS = ("sweep", "optuna", "ray", "pool")


def ensure_peer_venv():
    return peer_venv.ensure_peer_venv(PEER_VENV, ["optuna", "ray[tune]"], "optuna, ray.tune")


def peer_versions(py):
    code = "import optuna, ray, sqlalchemy, sqlite3, sys; print(optuna.__version__, ray.__version__, " \
           "sqlalchemy.__version__, sqlite3.sqlite_version, sys.version.split()[0])"
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(["optuna", "ray", "sqlalchemy", "sqlite", "python"], out))


# ---------------------------------------------------------------------------------------- sweep

def wait_for_line(path, needle, proc, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise SystemExit(f"compare: {proc.args[0]} exited ({proc.returncode}); see {path}")
        time.sleep(0.02)
    raise SystemExit(f"compare: no `{needle}` in {path} within {timeout} s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_sweep(args, tmp, binaries=None):
    binaries = binaries or args.bin_dir or ROOT / "target" / args.profile
    env = {**os.environ, "SWEEP_GPUS": ""}
    t = time.perf_counter()
    coordinator = subprocess.Popen(
        [binaries / "sweep-coordinator", "--listen", "127.0.0.1:0", "--state", tmp / "state", "--results",
         tmp / "results"], stdout=subprocess.PIPE, stderr=open(tmp / "coordinator.log", "w"), text=True, env=env)
    agent = None
    try:
        url = "http://" + coordinator.stdout.readline().strip().rsplit(" ", 1)[-1]
        agent_log = tmp / "agent.log"
        agent = subprocess.Popen(
            [binaries / "sweep-agent", "--coordinator", url, "--name", "bench", "--slots", str(args.concurrency),
             "--work-dir", tmp / "agent", *args.agent_flag],
            stdout=subprocess.DEVNULL, stderr=open(agent_log, "w"), env=env)
        wait_for_line(agent_log, "agent registered", agent, 60)
        startup = time.perf_counter() - t
        grid = ", ".join(str(i) for i in range(args.trials))
        sweep_file = tmp / "bench.toml"
        sweep_file.write_text(f'name = "dispatch-bench"\nworkload = "command"\ncommand = ["{TRIAL}"]\n'
                              f'[grid]\ni = [{grid}]\n')
        cli = {**env, "SWEEP_COORDINATOR": url}
        t = time.perf_counter()
        subprocess.run([binaries / "sweep", "submit", sweep_file], env=cli, check=True, capture_output=True)
        subprocess.run([binaries / "sweep", "watch", "dispatch-bench", "--json"], env=cli, check=True,
                       stdout=subprocess.DEVNULL)
        client_wall = time.perf_counter() - t
        db = sqlite3.connect(f"file:{tmp / 'state' / 'state.db'}?mode=ro", uri=True)
        created = db.execute("SELECT created_at_ms FROM sweeps WHERE name = 'dispatch-bench'").fetchone()[0]
        last, done = db.execute("SELECT MAX(finished_at_ms), SUM(state = 'succeeded') FROM trials "
                                "WHERE sweep = 'dispatch-bench'").fetchone()
        rows = db.execute("SELECT COUNT(*) FROM metrics WHERE sweep = 'dispatch-bench'").fetchone()[0]
        db.close()
        check = f"{done} succeeded, {rows} epoch rows in SQLite"
        ok = done == args.trials and rows == args.trials * EPOCHS
        return {"run": (last - created) / 1e3, "client": client_wall, "startup": startup, "check": check, "ok": ok}
    finally:
        if agent is not None:
            stop(agent)
        stop(coordinator)


# --------------------------------------------------------------------------------------- peers

OPTUNA_PY = r'''
import json, subprocess, sys, time
t = time.perf_counter()
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
script, n, jobs, db, sampler = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
grid = list(range(n))
# The grid, as sweep runs it; or random draws from it, which spare the sampler reading every trial.
sampler = optuna.samplers.GridSampler({"i": grid}) if sampler == "grid" else optuna.samplers.RandomSampler(seed=0)
study = optuna.create_study(storage=f"sqlite:///{db}", study_name="dispatch-bench", sampler=sampler)
startup = time.perf_counter() - t

def objective(trial):
    i = trial.suggest_categorical("i", grid)
    p = subprocess.Popen([script, "--i", str(i)], stdout=subprocess.PIPE, text=True)
    last = None
    for line in p.stdout:
        if line.startswith("{"):
            r = json.loads(line)
            last = r["metrics"]["loss"]
            trial.report(last, r["epoch"])
    if p.wait() != 0:
        raise RuntimeError(f"trial script exited {p.returncode}")
    return last

t = time.perf_counter()
study.optimize(objective, n_trials=n, n_jobs=jobs)
run = time.perf_counter() - t
done = [x for x in study.get_trials(deepcopy=False) if x.state == optuna.trial.TrialState.COMPLETE]
rows = sum(len(x.intermediate_values) for x in done)
distinct = len({x.params["i"] for x in done})
print(json.dumps({"run": run, "startup": startup, "done": len(done), "rows": rows, "distinct": distinct}))
'''

RAY_PY = r'''
import json, os, subprocess, sys, time
t = time.perf_counter()
import ray
from ray import tune
script, n, jobs, storage = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ray.init(num_cpus=jobs, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
startup = time.perf_counter() - t

def trainable(config):
    p = subprocess.Popen([script, "--i", str(config["i"])], stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("{"):
            r = json.loads(line)
            tune.report({"loss": r["metrics"]["loss"], "epoch": r["epoch"]})
    if p.wait() != 0:
        raise RuntimeError(f"trial script exited {p.returncode}")

tuner = tune.Tuner(
    trainable,
    param_space={"i": tune.grid_search(list(range(n)))},
    tune_config=tune.TuneConfig(max_concurrent_trials=jobs, metric="loss", mode="min", reuse_actors=True),
    run_config=tune.RunConfig(storage_path=storage, name="dispatch-bench", verbose=0),
)
t = time.perf_counter()
results = tuner.fit()
run = time.perf_counter() - t
done = sum(1 for r in results if r.error is None)
rows = sum(int(r.metrics.get("training_iteration", 0)) for r in results if r.error is None)
print(json.dumps({"run": run, "startup": startup, "done": done, "rows": rows, "distinct": len(results)}))
'''


def run_peer(code, args, py, tmp, store, *extra):
    cmd = [py, "-c", code, TRIAL, str(args.trials), str(args.concurrency), tmp / store, *extra]
    with open(tmp / "peer.log", "w") as log:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=tmp)
    if out.returncode != 0:
        raise SystemExit(f"compare: peer failed ({out.returncode}); see {tmp / 'peer.log'}:\n"
                         f"{(tmp / 'peer.log').read_text()[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["check"] = f"{r['done']} complete ({r['distinct']} distinct), {r['rows']} epoch reports stored"
    r["ok"] = r["done"] == args.trials and r["rows"] == args.trials * EPOCHS
    return r


def run_pool(args, _tmp):
    def one(i):
        p = subprocess.Popen([TRIAL, "--i", str(i)], stdout=subprocess.PIPE, text=True)
        lines = [json.loads(line) for line in p.stdout if line.startswith("{")]
        return p.wait() == 0 and len(lines) == EPOCHS

    t = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        ok = sum(pool.map(one, range(args.trials)))
    return {"run": time.perf_counter() - t, "startup": 0.0, "check": f"{ok} ran, nothing stored",
            "ok": ok == args.trials}


# ----------------------------------------------------------------------------------------- main

def load():
    return os.getloadavg()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8, help="agent slots, Optuna n_jobs, Ray concurrent trials")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians")
    ap.add_argument("--profile", default="release", choices=["release", "debug"],
                    help="which build of sweep-coordinator, sweep-agent and sweep to run [release]")
    ap.add_argument("--bin-dir", type=Path, help="run sweep-coordinator, sweep-agent and sweep from this folder "
                                                 "instead of target/PROFILE (to compare two builds)")
    ap.add_argument("--before-bin-dir", type=Path, metavar="DIR",
                    help="also run the sweep binaries in DIR (an earlier build), as the row `sweep (before)`")
    ap.add_argument("--optuna-sampler", choices=["grid", "random"], default="grid",
                    help="GridSampler over the same grid [grid], or RandomSampler (draws may repeat a point)")
    ap.add_argument("--skip", default="", help=f"comma-separated systems to leave out: {','.join(SYSTEMS)}")
    ap.add_argument("--agent-flag", action="append", default=[], metavar="FLAG",
                    help="extra flag for sweep-agent (repeat; e.g. --agent-flag=--poll-interval=100ms)")
    ap.add_argument("--keep", action="store_true", help="keep each run's folder (printed) for inspection")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    systems = [s for s in SYSTEMS if s not in skip]
    if args.before_bin_dir:
        systems.insert(1, "before")
    if "sweep" in systems and not args.bin_dir:
        missing = [b for b in ("sweep", "sweep-coordinator", "sweep-agent")
                   if not (ROOT / "target" / args.profile / b).exists()]
        if missing:
            raise SystemExit(f"compare: target/{args.profile}/{', '.join(missing)} missing: run "
                             f"`cargo build {'--release ' if args.profile == 'release' else ''}"
                             f"-p sweep-cli -p sweep-coordinator -p sweep-agent` first")
    py = ensure_peer_venv() if {"optuna", "ray"} & set(systems) else None
    runners = {
        "sweep": run_sweep,
        "before": lambda a, tmp: run_sweep(a, tmp, a.before_bin_dir),
        "optuna": lambda a, tmp: run_peer(OPTUNA_PY, a, py, tmp, "optuna.db", a.optuna_sampler),
        "ray": lambda a, tmp: run_peer(RAY_PY, a, py, tmp, "ray-results"),
        "pool": run_pool,
    }
    floor = args.trials * EPOCHS * EPOCH_S / args.concurrency
    load_before = load()
    results = {s: [] for s in systems}
    for r in range(args.rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for s in order:
            tmp = Path(tempfile.mkdtemp(prefix=f"dispatch-{s}-"))
            out = runners[s](args, tmp)
            extra = f", client {out['client']:.2f} s" if "client" in out else ""
            print(f"compare: round {r + 1} {s}: {out['run']:.2f} s ({out['run'] / floor:.2f}x){extra}; "
                  f"start-up {out['startup']:.2f} s; {out['check']}; load {load()[0]:.2f}", file=sys.stderr)
            if not out["ok"]:
                raise SystemExit(f"compare: {s} did not store every trial and epoch: {out['check']} (in {tmp})")
            results[s].append(out)
            if args.keep:
                print(f"compare: kept {tmp}", file=sys.stderr)
            else:
                subprocess.run(["rm", "-rf", tmp])
    load_after = load()

    labels = {
        "sweep": f"sweep: coordinator + 1 agent x {args.concurrency} slots (separate processes), SQLite",
        "optuna": f"Optuna {'{optuna}'}: SQLite storage, {args.optuna_sampler.capitalize()}Sampler, "
                  f"n_jobs={args.concurrency}",
        "ray": f"Ray Tune {'{ray}'}: max_concurrent_trials={args.concurrency}, local storage",
        "pool": f"plain thread pool of {args.concurrency}, nothing stored",
        "before": f"sweep before (binaries of {args.before_bin_dir}), same setup",
    }
    versions = peer_versions(py) if py else {}
    print(f"\n{args.trials} trials x {EPOCHS} epochs x {EPOCH_S * 1e3:.0f} ms, {args.concurrency} at a time; "
          f"floor {floor:.2f} s; {args.rounds} interleaved rounds; sweep from {args.bin_dir or 'target/' + args.profile}; "
          f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f} / {load_before[1]:.2f} / "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")
    if versions:
        print(f"peers: optuna {versions['optuna']}, ray {versions['ray']}, SQLAlchemy {versions['sqlalchemy']}, "
              f"SQLite {versions['sqlite']}, Python {versions['python']}")
    print("\n| system | median s | x floor | each round s | start-up s (median) |")
    print("| --- | ---: | ---: | --- | ---: |")
    for s in systems:
        runs = results[s]
        med = statistics.median(r["run"] for r in runs)
        each = ", ".join(f"{r['run']:.2f}" for r in runs)
        label = labels[s].format(**versions) if versions else labels[s]
        print(f"| {label} | {med:.2f} | {med / floor:.2f} | {each} | "
              f"{statistics.median(r['startup'] for r in runs):.2f} |")
    for s in ("sweep", "before"):
        if s in results:
            client = statistics.median(r["client"] for r in results[s])
            print(f"\n{s}, client side (`sweep submit` + `sweep watch`, CLI start-ups included): median "
                  f"{client:.2f} s ({client / floor:.2f}x)")


if __name__ == "__main__":
    main()
