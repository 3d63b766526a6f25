"""Client of the LCBench surrogate server (bench/search/surrogate.py), standard library only, so a
trial process starts in the time Python takes to start. Every searcher of the benchmark (sweep's
trial script, the Ray Tune trainable, the Optuna objective) asks through this class, one request
per epoch, so each pays the same per-epoch cost.

Protocol: one JSON object per line over a Unix stream socket, one answer line per request.
    {"op": "describe"}               -> {"space": [PARAM, ...], "epochs": 52, "instances": ["3945", ...]}
    {"op": "epoch", "instance": "3945", "config": {...}, "epoch": 7}
                                        -> {"val_accuracy": 0.93, "val_error": 0.07, "sim_time": 68.7}
    any request that fails                                       -> {"error": "..."}
A PARAM is {"name", "type": "int" | "float", "log", "lower", "upper"}, as in config_space.json.
"""

import json
import socket


class SurrogateError(Exception):
    """The server refused a request (an unknown instance, a missing hyperparameter, ...)."""


class Surrogate:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)
        self.reader = self.sock.makefile("r", encoding="utf-8")

    def ask(self, request):
        self.sock.sendall((json.dumps(request) + "\n").encode())
        line = self.reader.readline()
        if not line:
            raise SurrogateError(f"surrogate at {self.path} closed the connection")
        answer = json.loads(line)
        if "error" in answer:
            raise SurrogateError(answer["error"])
        return answer

    def describe(self):
        """The benchmark: its search space (the hyperparameters, without the instance and the
        epoch), the last epoch and the instances (OpenML task ids)."""
        return self.ask({"op": "describe"})

    def epoch(self, instance, config, epoch):
        """What a training run of `config` on task `instance` reports after `epoch` epochs."""
        return self.ask({"op": "epoch", "instance": str(instance), "config": config, "epoch": int(epoch)})

    def close(self):
        self.reader.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def typed(space, config):
    """`config` restricted to the space's names, integer hyperparameters rounded: a log-uniform
    draw of batch_size arrives as 90.6 and trains as 91."""
    out = {}
    for p in space:
        v = float(config[p["name"]])
        out[p["name"]] = int(round(v)) if p["type"] == "int" else v
    return out
