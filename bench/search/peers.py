#!/usr/bin/env python3
"""The peers of bench/search/compare.py on the LCBench surrogate, run in the peer venv: Ray Tune's
random search under ASHA, and Optuna's TPE sampler with its Hyperband pruner. One process runs
every (instance, seed) it is given, one after the other (Ray starts once). A run ends once
--budget epochs, of any trials, have been reported; its epoch results, in the order they arrived,
go to <out>/<method>-<instance>-s<seed>.json:

    {"method", "instance", "seed", "wall_s", "stream": [[seconds since start, trial, epoch, val_accuracy], ...]}

wall_s is the search itself (`Tuner.fit()`, `study.optimize()`), not `ray.init` or imports. Every
epoch is one request to the surrogate server through bench/search/client.py, as in sweep's trial.

    peers.py ray-asha --socket S --runs 3945:0,3945:1 --budget 5200 --concurrency 4 --out DIR
    peers.py --versions
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from client import Surrogate, typed

HERE = Path(__file__).resolve().parent


class EpochLog:
    """Every epoch result of one run in arrival order, and the run's epoch budget. Shared by the
    searcher's threads (Optuna) or called from Ray's driver loop."""

    def __init__(self, budget):
        self.budget = budget
        self.reserved = 0
        self.stream = []
        self.lock = threading.Lock()
        self.start = time.perf_counter()

    def take(self):
        """Reserves one epoch of the budget; False once it is spent."""
        with self.lock:
            if self.reserved >= self.budget:
                return False
            self.reserved += 1
            return True

    def record(self, trial, epoch, accuracy):
        with self.lock:
            self.stream.append([round(time.perf_counter() - self.start, 6), trial, int(epoch), accuracy])

    def spent(self):
        with self.lock:
            return len(self.stream)

    # Ray pickles the run's configuration, stopper included, to its storage folder; a lock does
    # not pickle. The run itself uses this object, not a copy (compare.py checks the stream).
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state):
        self.__dict__.update(state, lock=threading.Lock())


# ----------------------------------------------------------------------------------------- Ray

def ray_space(space):
    from ray import tune
    dims = {}
    for p in space:
        lo, hi = p["lower"], p["upper"]
        if p["type"] == "int":  # Ray's integer bounds exclude the upper one
            dims[p["name"]] = tune.lograndint(lo, hi + 1) if p["log"] else tune.randint(lo, hi + 1)
        else:
            dims[p["name"]] = tune.loguniform(lo, hi) if p["log"] else tune.uniform(lo, hi)
    return dims


def ray_asha(instance, seed, bench, args, storage):
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    space, epochs, socket_path = bench["space"], bench["epochs"], args.socket

    def trainable(config):
        with Surrogate(socket_path) as surrogate:
            config = typed(space, config)
            for epoch in range(1, epochs + 1):
                tune.report(surrogate.epoch(instance, config, epoch))

    log = EpochLog(args.budget)

    class Budget(tune.Stopper):
        """Records each result as the driver receives it; ends the run once the budget is spent."""

        def __call__(self, trial_id, result):
            log.record(trial_id, result["training_iteration"], result["val_accuracy"])
            return False

        def stop_all(self):
            return log.spent() >= log.budget

    tuner = tune.Tuner(
        trainable,
        param_space=ray_space(space),
        tune_config=tune.TuneConfig(
            metric="val_accuracy", mode="max",
            scheduler=AsyncHyperBandScheduler(time_attr="training_iteration", max_t=epochs, grace_period=1,
                                              reduction_factor=3),
            search_alg=BasicVariantGenerator(random_state=seed),
            # Each trial spends at least one epoch, so the budget bounds the number of trials.
            num_samples=args.budget, max_concurrent_trials=args.concurrency, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name=f"lcbench-{instance}-s{seed}", stop=Budget(), verbose=0),
    )
    t = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - t, log.stream


# -------------------------------------------------------------------------------------- Optuna

def optuna_tpe_hyperband(instance, seed, bench, args, _storage):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space, epochs = bench["space"], bench["epochs"]
    log = EpochLog(args.budget)
    local = threading.local()  # one connection per Optuna worker thread

    def objective(trial):
        config = typed(space, {p["name"]: (trial.suggest_int if p["type"] == "int" else trial.suggest_float)(
            p["name"], p["lower"], p["upper"], log=p["log"]) for p in space})
        if not hasattr(local, "surrogate"):
            local.surrogate = Surrogate(args.socket)
        for epoch in range(1, epochs + 1):
            if not log.take():
                trial.study.stop()
                raise optuna.TrialPruned()
            accuracy = local.surrogate.epoch(instance, config, epoch)["val_accuracy"]
            log.record(trial.number, epoch, accuracy)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3))
    t = time.perf_counter()
    study.optimize(objective, n_trials=args.budget, n_jobs=args.concurrency)
    return time.perf_counter() - t, log.stream


# ---------------------------------------------------------------------------------------- main

METHODS = {"ray-asha": ray_asha, "optuna-tpe-hyperband": optuna_tpe_hyperband}


def versions():
    import numpy
    import onnxruntime
    import optuna
    import pyarrow
    import ray
    from importlib.metadata import version
    return {"ray": ray.__version__, "optuna": optuna.__version__, "yahpo-gym": version("yahpo-gym"),
            "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
            "python": sys.version.split()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", nargs="?", choices=sorted(METHODS))
    ap.add_argument("--socket", help="the surrogate server")
    ap.add_argument("--runs", help="comma-separated INSTANCE:SEED")
    ap.add_argument("--budget", type=int, help="epochs per run, of any trials")
    ap.add_argument("--concurrency", type=int, default=4, help="trials at a time")
    ap.add_argument("--out", type=Path, help="folder for each run's JSON")
    ap.add_argument("--versions", action="store_true", help="print the peers' versions as JSON and exit")
    args = ap.parse_args()
    if args.versions:
        print(json.dumps(versions()))
        return
    if not all([args.method, args.socket, args.runs, args.budget, args.out]):
        ap.error("METHOD, --socket, --runs, --budget and --out are required")
    runs = [(r.split(":")[0], int(r.split(":")[1])) for r in args.runs.split(",")]
    with Surrogate(args.socket) as surrogate:
        bench = surrogate.describe()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"search-{args.method}-") as storage:
        if args.method == "ray-asha":
            import ray
            # Ray's workers import client.py as the trainable does. Ray's session folder (logs,
            # staged results: tens of MB per run) goes under `storage` too, and with it.
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
            os.environ["RAY_TMPDIR"] = storage
            ray.init(num_cpus=args.concurrency, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        for instance, seed in runs:
            wall, stream = METHODS[args.method](instance, seed, bench, args, storage)
            run = {"method": args.method, "instance": instance, "seed": seed, "budget": args.budget,
                   "concurrency": args.concurrency, "wall_s": wall, "stream": stream}
            (args.out / f"{args.method}-{instance}-s{seed}.json").write_text(json.dumps(run))
            print(json.dumps({"instance": instance, "seed": seed, "wall_s": wall, "epochs": len(stream)}), flush=True)
        if args.method == "ray-asha":
            ray.shutdown()


if __name__ == "__main__":
    main()
