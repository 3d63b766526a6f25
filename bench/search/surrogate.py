#!/usr/bin/env python3
"""LCBench surrogate server: one process per benchmark run loads YAHPO Gym's ONNX surrogate (about
a second of start-up) and answers bench/search/client.py over a Unix socket, so a trial process
never loads it. Runs in the peer venv (yahpo-gym, onnxruntime).

The first request for a configuration evaluates all of its epochs in one batch and keeps the
curve (the last --cache curves); later epochs of the same configuration are answered from it.
Accuracies are fractions (the surrogate's percent / 100), sim_time is the surrogate's `time`: the
simulated seconds of training up to that epoch.

    surrogate.py --data /work/shared/bench-data/yahpo-lcbench --socket /tmp/x/lcbench.sock
                 # prints `ready` on stdout once it answers; stops on SIGTERM
"""

import argparse
import contextlib
import json
import os
import socketserver
import sys
import threading
from collections import OrderedDict
from pathlib import Path

# config_space.json's types, as the client protocol names them.
TYPES = {"uniform_int": "int", "uniform_float": "float"}
INSTANCE, FIDELITY = "OpenML_task_id", "epoch"


def read_benchmark(data):
    """Search space, last epoch and instances, from the benchmark's own config_space.json."""
    hps = {h["name"]: h for h in json.loads((data / "config_space.json").read_text())["hyperparameters"]}
    space = [{"name": h["name"], "type": TYPES[h["type"]], "log": bool(h["log"]), "lower": h["lower"],
              "upper": h["upper"]} for name, h in sorted(hps.items()) if name not in (INSTANCE, FIDELITY)]
    return {"space": space, "epochs": int(hps[FIDELITY]["upper"]), "instances": list(hps[INSTANCE]["choices"])}


class Model:
    """YAHPO Gym's lcbench surrogate with a cache of whole learning curves."""

    def __init__(self, data, workdir, cache):
        self.info = read_benchmark(data)
        self.names = [p["name"] for p in self.info["space"]]
        self.cache = cache
        self.curves = OrderedDict()
        self.lock = threading.Lock()
        self.misses = 0
        # yahpo-gym finds the model under <data path>/lcbench and keeps its data path in a settings
        # file: point both into the work folder, leaving the user's ~/.config/yahpo_gym alone.
        (workdir / "lcbench").symlink_to(data.resolve())
        os.environ["YAHPO_LOCAL_CONFIG"] = str(workdir / "yahpo_gym.yaml")
        from yahpo_gym import BenchmarkSet, local_config
        local_config.init_config(data_path=str(workdir))
        with contextlib.redirect_stdout(sys.stderr):  # it prints its citations on stdout
            self.bench = BenchmarkSet("lcbench", check=False, multithread=False)

    def check(self, instance, config, epoch):
        if instance not in self.info["instances"]:
            raise ValueError(f"instance: expected an OpenML task id of lcbench, got {instance!r}")
        if sorted(config) != sorted(self.names):
            raise ValueError(f"config: expected exactly {', '.join(self.names)}, got {', '.join(sorted(config))}")
        for p in self.info["space"]:
            v = config[p["name"]]
            slack = 1e-9 * max(abs(p["lower"]), abs(p["upper"]))
            if not isinstance(v, (int, float)) or not p["lower"] - slack <= v <= p["upper"] + slack:
                raise ValueError(f"config.{p['name']}: expected a number in [{p['lower']}, {p['upper']}], got {v!r}")
            if p["type"] == "int" and v != int(v):
                raise ValueError(f"config.{p['name']}: expected an integer, got {v!r}")
        if not 1 <= epoch <= self.info["epochs"]:
            raise ValueError(f"epoch: expected 1 to {self.info['epochs']}, got {epoch}")

    def epoch(self, instance, config, epoch):
        self.check(instance, config, epoch)
        key = (instance, *(config[n] for n in self.names))
        with self.lock:
            curve = self.curves.get(key)
            if curve is None:
                rows = self.bench.objective_function(
                    [{**config, INSTANCE: instance, FIDELITY: e} for e in range(1, self.info["epochs"] + 1)])
                curve = [{"val_accuracy": float(r["val_accuracy"]) / 100, "val_error": 1 - float(r["val_accuracy"]) / 100,
                          "sim_time": float(r["time"])} for r in rows]
                self.curves[key] = curve
                self.misses += 1
                if len(self.curves) > self.cache:
                    self.curves.popitem(last=False)
            else:
                self.curves.move_to_end(key)
        return curve[epoch - 1]

    def answer(self, request):
        if request.get("op") == "describe":
            return self.info
        if request.get("op") == "epoch":
            return self.epoch(str(request["instance"]), request["config"], int(request["epoch"]))
        raise ValueError(f"op: expected `describe` or `epoch`, got {request.get('op')!r}")


def serve(model, path):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                try:
                    out = model.answer(json.loads(line))
                except Exception as e:  # the caller gets the reason; the server keeps serving
                    out = {"error": f"{type(e).__name__}: {e}"}
                self.wfile.write((json.dumps(out) + "\n").encode())

    class Server(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True

    with Server(str(path), Handler) as server:
        print("ready", flush=True)
        server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the yahpo-lcbench folder (model.onnx, config_space.json)")
    ap.add_argument("--socket", type=Path, required=True,
                    help="where to listen; its folder also holds yahpo-gym's settings and a link to --data")
    ap.add_argument("--cache", type=int, default=2000, help="learning curves kept (all epochs of one configuration each) [2000]")
    args = ap.parse_args()
    serve(Model(args.data, args.socket.parent, args.cache), args.socket)


if __name__ == "__main__":
    main()
