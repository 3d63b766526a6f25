#!/usr/bin/env python3
"""Side-by-side benchmark of the label-tree study against its references, on the same XC files and
the same cores: sweep's `xmc_tree` with its catalogue defaults (balanced 2-means trees, run as a
real trial through `sweep run-trial`, and through `examples/xc` of crate sweep-xmc, also with one
tree), omikuji in Parabel mode (balanced 2-means, one tree and its default three), and PECOS
XR-Linear (PIFA + hierarchical 2-means). Each method runs in its own child process; its peak
memory is that child's maximum resident set (wait4), its time what it spent building and training.

    bench/xmc/compare.py --shape eurlex            # writes a EURLex-4K-shaped synthetic set first
    bench/xmc/compare.py --data data/Eurlex-4K     # train.txt and test.txt of a real set
    bench/xmc/compare.py --generate standard,headheavy,flat --skip sweep
                                                   # sets of bench/xmc/generate.py, one table each

`--shape` sets come from sweep's own generator (`sweep data synth --format xc`, or `examples/xc
synth` when the `sweep` binary is not built); `--generate` sets from bench/xmc/generate.py, a
generator with a different model, run with the references' Python (it needs numpy).

omikuji and libpecos are not needed by the build or the tests. They go into a separate virtual
environment (default ~/.cache/sweep-bench-xmc/venv) that sees the project's .venv (torch, for
libpecos' imports) through a .pth file: libpecos pins numpy < 2 and would otherwise downgrade the
project's numpy and pandas.
"""

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import peer_venv  # noqa: E402  (bench/peer_venv.py, shared by the benchmarks that run peers)
SWEEP = ROOT / "target" / "release" / "sweep"
XC = ROOT / "target" / "release" / "examples" / "xc"
GENERATE = ROOT / "bench" / "xmc" / "generate.py"
GENERATED = ("standard", "headheavy", "flat")
REF_VENV = Path(os.environ.get("XMC_REF_VENV", Path.home() / ".cache" / "sweep-bench-xmc" / "venv"))

# Shapes for `sweep data synth --format xc`: the xmc-small study's set, EURLex-4K and Amazon-670K.
SHAPES = {
    "small": ["--train", "10000", "--test", "4000", "--features", "5000", "--labels", "2000", "--topics", "100"],
    "eurlex": ["--train", "15539", "--test", "3809", "--features", "5000", "--labels", "3993", "--topics", "200"],
    "amazon": ["--train", "490449", "--test", "153025", "--features", "135909", "--labels", "670091",
               "--topics", "33500", "--labels-per-point", "5.45", "--words-per-point", "75"],
}

# Parabel's settings, shared by every method: binary balanced splits, leaves of <= 100 labels,
# squared hinge with C = 1, weights below 0.1 pruned, beam 10.
MAX_LEAF = 100
BEAM = 10


def ensure_ref_venv():
    return peer_venv.ensure_peer_venv(REF_VENV, ["numpy", "omikuji", "libpecos"], "numpy, omikuji, pecos",
                                      see_project_venv=True)


def run_child(cmd, label):
    """Runs cmd, returns (stdout, wall seconds, peak RSS bytes of that process). Its stderr (omikuji
    draws progress bars there) is kept in a file and shown only if it fails."""
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"compare: {label} failed:\n{err.read()[-4000:]}")
    print(f"compare: {label}: {wall:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB", file=sys.stderr)
    return out, wall, usage.ru_maxrss * 1024


# The metrics of the references, defined as sweep-xmc defines them (agent/xmc/src/metrics.rs):
# averaged over every test point, unlabelled ones scoring 0.
METRICS_PY = r'''
def read_labels(path):
    with open(path) as f:
        f.readline()
        out = []
        for line in f:
            first = line.split(" ", 1)[0]
            out.append(set() if (not first or ":" in first) else {int(l) for l in first.split(",")})
        return out

def precision(rankings, truth):
    p = [0.0] * 5
    for ranked, labels in zip(rankings, truth):
        hits = 0
        for k in range(5):
            if k < len(ranked) and ranked[k] in labels:
                hits += 1
            p[k] += hits / (k + 1)
    return [v / len(truth) for v in p]
'''

OMIKUJI_PY = METRICS_PY + r'''
import json, sys, time, omikuji
train, test, threads, n_trees, max_leaf, beam = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
hp = omikuji.Model.default_hyper_param()
hp.n_trees = n_trees
hp.cluster_k = 2
hp.cluster_balanced = True
hp.min_branch_size = max_leaf
hp.collapse_every_n_layers = 0
t = time.perf_counter()
model = omikuji.Model.train_on_data(train, hp, threads)
train_s = time.perf_counter() - t
truth = read_labels(test)
rankings = []
t = time.perf_counter()
with open(test) as f:
    f.readline()
    for line in f:
        feats = [(int(a), float(b)) for a, b in (tok.split(":") for tok in line.split() if ":" in tok)]
        rankings.append([l for l, _ in model.predict(feats, beam_size=beam, top_k=5)])
infer_s = time.perf_counter() - t
print(json.dumps({"p": precision(rankings, truth), "train_s": train_s, "infer_ms": 1e3 * infer_s / len(truth)}))
'''

PECOS_PY = METRICS_PY + r'''
import json, sys, time
import numpy as np, scipy.sparse as sp
from sklearn.preprocessing import normalize
from pecos.xmc import Indexer, LabelEmbeddingFactory
from pecos.xmc.xlinear.model import XLinearModel
train, test, threads, max_leaf, beam = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def read_xc(path):
    with open(path) as f:
        n, d, L = map(int, f.readline().split())
        xi, xj, xv, yi, yj = [], [], [], [], []
        for i, line in enumerate(f):
            toks = line.split()
            if toks and ":" not in toks[0] and not line.startswith(" "):
                for l in toks[0].split(","):
                    yi.append(i); yj.append(int(l))
                toks = toks[1:]
            for tok in toks:
                a, b = tok.split(":")
                xi.append(i); xj.append(int(a)); xv.append(float(b))
    X = sp.csr_matrix((np.array(xv, dtype=np.float32), (xi, xj)), shape=(n, d))
    Y = sp.csr_matrix((np.ones(len(yi), dtype=np.float32), (yi, yj)), shape=(n, L))
    return normalize(X).astype(np.float32), Y

X, Y = read_xc(train)
Xt, Yt = read_xc(test)
t = time.perf_counter()
feat = LabelEmbeddingFactory.create(Y, X, method="pifa")
chain = Indexer.gen(feat, indexer_type="hierarchicalkmeans", nr_splits=2, max_leaf_size=max_leaf, threads=threads)
model = XLinearModel.train(X, Y, C=chain, threads=threads)
train_s = time.perf_counter() - t
t = time.perf_counter()
P = model.predict(Xt, beam_size=beam, only_topk=5, threads=threads).tocsr()
infer_s = time.perf_counter() - t
rankings = []
for i in range(P.shape[0]):
    row = P.getrow(i)
    order = np.argsort(-row.data, kind="stable")
    rankings.append([int(row.indices[j]) for j in order])
truth = [set(Yt.indices[Yt.indptr[i]:Yt.indptr[i + 1]].tolist()) for i in range(Yt.shape[0])]
print(json.dumps({"p": precision(rankings, truth), "train_s": train_s, "infer_ms": 1e3 * infer_s / len(truth)}))
'''


def run_sweep(train, test, threads, seed, partitioner="kmeans_balanced"):
    """One `xmc_tree` trial through the real trial entry point, `sweep run-trial --spec`."""
    with tempfile.TemporaryDirectory() as tmp:
        sweep_file = Path(tmp) / "bench.toml"
        sweep_file.write_text(
            f'name = "xmc-bench"\nworkload = "xmc_tree"\n[data]\nformat = "xc"\ntrain = "{train}"\ntest = "{test}"\n'
            f'[params]\npartitioner = "{partitioner}"\nbranching = 2\nmax_leaf = {MAX_LEAF}\nbeam = {BEAM}\nthreads = {threads}\n'
            f'seed = {seed}\n'
        )
        # `sweep validate --trials` prints each trial as `  <id>  <resolved params as JSON>`.
        listed = subprocess.run([SWEEP, "validate", sweep_file, "--trials"], capture_output=True, text=True)
        if listed.returncode != 0:
            raise SystemExit(f"compare: sweep validate failed: {listed.stderr}")
        trial_id, params = listed.stdout.strip().splitlines()[-1].split(None, 1)
        spec = {
            "id": trial_id, "sweep": "xmc-bench", "index": 0, "workload": "xmc_tree", "params": json.loads(params),
            "data": {"format": "xc", "options": {"train": str(train), "test": str(test)}}, "resources": {"gpus": 0},
        }
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        out, wall, rss = run_child([SWEEP, "run-trial", "--spec", spec_path], "sweep run-trial")
    record = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])["metrics"]
    return {
        "p": [record["p_at_1"], record["p_at_3"], record["p_at_5"]],
        "train_s": record["build_seconds"] + record["train_seconds"],
        "infer_ms": record["infer_ms_per_query"],
        "rss": rss,
        "wall": wall,
    }


def repeat(n, run):
    """n runs of one method, summarised: mean P@k (omikuji's clustering is not seeded, so its
    precision varies run to run; sweep's run r takes seed r for the same reason), median seconds
    (the machine may be shared), largest peak RSS. `run` takes the run's index."""
    runs = [run(r) for r in range(max(1, n))]
    med = lambda key: statistics.median(r[key] for r in runs)
    return {"p": [statistics.mean(r["p"][k] for r in runs) for k in range(3)], "train_s": med("train_s"),
            "infer_ms": med("infer_ms"), "wall": med("wall"), "rss": max(r["rss"] for r in runs), "n": len(runs)}


def first_points(path, n, folder):
    """A copy of XC file `path` holding only its first n points, in `folder`."""
    out = folder / f"{path.stem}-first{n}.txt"
    with open(path) as src, open(out, "w") as dst:
        total, features, labels = src.readline().split()
        n = min(n, int(total))
        dst.write(f"{n} {features} {labels}\n")
        for _ in range(n):
            dst.write(src.readline())
    return out


def synth(shape, data, ref_py):
    """Writes the set of `--shape` (sweep's generator) or `--generate` (bench/xmc/generate.py) into
    `data` unless it is there already."""
    if (data / "train.txt").exists():
        return
    if shape in SHAPES:
        if SWEEP.exists():
            subprocess.run([SWEEP, "data", "synth", "--format", "xc", "--out", data, *SHAPES[shape]], check=True)
        elif XC.exists():
            # The same writer, through the developer's tool: its knobs are the flags' names.
            flags = SHAPES[shape]
            knobs = [f"{flags[i][2:].replace('-', '_')}={flags[i + 1]}" for i in range(0, len(flags), 2)]
            subprocess.run([XC, "synth", data, *knobs], check=True)
        else:
            raise SystemExit(f"compare: --shape {shape}: neither {SWEEP} nor {XC} is built")
    else:
        subprocess.run([ref_py, GENERATE, "--shape", shape, "--out", data], check=True)


def compare(data, args, skip, py):
    """Every method on one set; returns the table's rows as (key, label, summary)."""
    train, test = (data / "train.txt").resolve(), (data / "test.txt").resolve()
    if args.test_limit:
        folder = Path(tempfile.mkdtemp(prefix="xmc-bench-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        test = first_points(test, args.test_limit, folder)

    rows = []
    if "sweep" not in skip:
        rows.append(("sweep", "sweep xmc_tree via `sweep run-trial` (its defaults)",
                     repeat(args.repeat, lambda r: run_sweep(train, test, args.threads, r))))
    # The same code without the sweep binary, whose libtorch adds a few hundred MiB of resident
    # pages to any trial process: the developer's tool `examples/xc` of crate sweep-xmc, with the
    # catalogue's defaults and with one tree.
    def run_xc(r, *extra):
        out, wall, rss = run_child([XC, "train", train, test, "branching=2", f"max_leaf={MAX_LEAF}", f"beam={BEAM}",
                                    f"threads={args.threads}", f"seed={r}", *extra], "examples/xc")
        m = json.loads(out.strip().splitlines()[-1])
        return {"p": [m["p_at_1"], m["p_at_3"], m["p_at_5"]], "train_s": m["build_seconds"] + m["train_seconds"],
                "infer_ms": m["infer_ms_per_query"], "rss": rss, "wall": wall}
    if XC.exists():
        if "xc" not in skip:
            rows.append(("xc", "sweep-xmc alone (`examples/xc`, same code, no libtorch; its defaults)",
                         repeat(args.repeat, run_xc)))
        if "xc1" not in skip:
            rows.append(("xc1", "sweep-xmc alone, 1 tree (`n_trees=1`)",
                         repeat(args.repeat, lambda r: run_xc(r, "n_trees=1"))))
    refs = [
        ("omikuji", "omikuji Parabel mode (1 tree)", [OMIKUJI_PY, train, test, args.threads, 1, MAX_LEAF, BEAM]),
        ("omikuji3", "omikuji Parabel mode (3 trees, its default)", [OMIKUJI_PY, train, test, args.threads, 3, MAX_LEAF, BEAM]),
        ("pecos", "PECOS XR-Linear (PIFA, 2-means, 1 tree)", [PECOS_PY, train, test, args.threads, MAX_LEAF, BEAM]),
    ]
    for key, label, script in refs:
        if key in skip:
            continue
        def run_ref(_r):
            out, wall, rss = run_child([py, "-c", *map(str, script)], label)
            r = json.loads(out.strip().splitlines()[-1])
            r["p"] = r["p"][0:1] + r["p"][2:3] + r["p"][4:5]
            return {**r, "rss": rss, "wall": wall}
        rows.append((key, label, repeat(args.repeat, run_ref)))

    print(f"\ndata: {train.parent} ({open(train).readline().strip()} train, {open(test).readline().split()[0]} test points ranked); "
          f"{args.threads} threads; max leaf {MAX_LEAF}, beam {BEAM}; {args.repeat} runs per method\n")
    print("| method | P@1 | P@3 | P@5 | train s | infer ms/query | peak RSS MiB | process wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for _, label, r in rows:
        p = r["p"]
        print(f"| {label} | {p[0]:.4f} | {p[1]:.4f} | {p[2]:.4f} | {r['train_s']:.2f} | {r['infer_ms']:.3f} | "
              f"{r['rss'] / 2**20:.0f} | {r['wall']:.1f} |", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="folder with train.txt and test.txt (XC BoW format)")
    src.add_argument("--shape", choices=sorted(SHAPES), help="write a synthetic set of this shape first")
    src.add_argument("--generate", metavar="SHAPE[,SHAPE...]",
                     help=f"write sets of bench/xmc/generate.py first ({', '.join(GENERATED)}); one table each, "
                          "then P@1 and P@5 of every set side by side")
    ap.add_argument("--out", type=Path, help="where --shape writes its set [data/xmc-bench-SHAPE]; "
                                             "--generate writes under data/xmc-gen-SHAPE")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per method; the table shows mean P@k, median seconds and the largest peak RSS")
    ap.add_argument("--test-limit", type=int, metavar="N",
                    help="rank only the first N test points (a copy of the test file with its header rewritten), "
                         "for training-time comparisons at a scale where omikuji's one Python call per point "
                         "would take longer than training")
    ap.add_argument("--skip", default="",
                    help="comma-separated methods to leave out: sweep,xc,xc1,omikuji,omikuji3,pecos "
                         "(sweep: the `sweep run-trial` row, which needs `cargo build --release -p sweep-cli`)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "sweep" not in skip and not SWEEP.exists():
        raise SystemExit(f"compare: {SWEEP} is missing; run `cargo build --release -p sweep-cli` first, "
                         "or pass --skip sweep to measure sweep-xmc through examples/xc alone")
    generated = []
    if args.generate:
        generated = [g.strip() for g in args.generate.split(",") if g.strip()]
        unknown = [g for g in generated if g not in GENERATED]
        if unknown or not generated:
            raise SystemExit(f"compare: --generate: expected shapes among {', '.join(GENERATED)}, got {args.generate}")
    needs_py = bool(generated) or not {"omikuji", "omikuji3", "pecos"} <= skip
    py = ensure_ref_venv() if needs_py else None

    if args.data:
        compare(args.data, args, skip, py)
        return
    if args.shape:
        data = args.out or ROOT / "data" / f"xmc-bench-{args.shape}"
        synth(args.shape, data, py)
        compare(data, args, skip, py)
        return
    results = []
    for shape in generated:
        data = ROOT / "data" / f"xmc-gen-{shape}"
        synth(shape, data, py)
        results.append((shape, {key: r for key, _, r in compare(data, args, skip, py)}))
    keys = [k for k in ("sweep", "xc", "xc1", "omikuji", "omikuji3", "pecos") if k in results[0][1]]
    print("\nP@1 / P@5 per set (mean over the runs):\n")
    print("| set | " + " | ".join(keys) + " |")
    print("| --- |" + " --- |" * len(keys))
    for shape, rows in results:
        print(f"| {shape} | " + " | ".join(f"{rows[k]['p'][0]:.4f} / {rows[k]['p'][2]:.4f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
