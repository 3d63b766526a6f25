#!/usr/bin/env python3
"""Seeded XC-format data sets from a latent-embedding model, independent of sweep's own generator
(agent/xmc/src/synth.rs), so that the label-tree benchmark does not only measure how well the
defaults fit the data they were tuned on.

The two generators differ on purpose in every part of the model:

  synth.rs                                   this generator
  -----------------------------------------  -----------------------------------------------------
  labels: one topic x one facet each,        labels: points in a continuous latent space, drawn
  topics of equal expected size              around cluster centres whose sizes follow a
                                             Chinese-restaurant process (a few big clusters,
                                             many small ones)
  words: uniform draws from a handful of     words: a log-linear (softmax) emission over the whole
  fixed vocabularies (topic, facet,          vocabulary, logit = sharpness * <point's latent,
  signature) or a Zipf background            word's latent> + log of a Zipf word frequency, plus a
                                             few keyword boosts per label
  a point's further labels: same topic       further labels: near the first one in latent space
  (or any, with probability cross_topic)     (softmax of cosine), else by popularity alone
  labels per point: 1 + Poisson              labels per point: 1 + negative binomial (overdispersed)
  words per point: Poisson                   words per point: log-normal
  values: log(1 + tf), unit length           values: tf x idf (idf from the training split), unit
                                             length

Each point's latent is the mean of its labels' latents plus Gaussian noise, so points of one label
scatter around it; a share of each point's words is drawn from the general word frequencies alone.

    python3 bench/xmc/generate.py --shape standard --out data/xmc-gen-standard
    python3 bench/xmc/generate.py --shape standard --out DIR --seed 7 --zipf 1.2   # any knob overridden

Only numpy is needed. Writes DIR/train.txt and DIR/test.txt, and prints a one-line summary.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# Every knob of the model; a shape overrides some of them.
DEFAULTS = {
    "train": 8000,
    "test": 2000,
    "features": 5000,
    "labels": 1000,
    # Latent space and label clusters.
    "dim": 32,
    "cluster_alpha": 8.0,  # Chinese-restaurant concentration: expected clusters ~ alpha * ln(labels / alpha)
    "label_spread": 0.6,  # a label's offset from its cluster centre, relative to the centre's norm
    # Label frequencies: popularity of the r-th most popular label is r ** -zipf.
    "zipf": 1.0,
    # Labels per point: 1 + negative binomial with this mean and dispersion (smaller: more spread).
    "labels_per_point": 3.0,
    "labels_dispersion": 2.0,
    # Probability that a further label is a latent neighbour of the first (else popularity alone),
    # and how sharply neighbours are preferred (softmax temperature over cosine similarity).
    "neighbour_share": 0.8,
    "neighbour_sharpness": 16.0,
    # Words per point: log-normal with this median and log-space sigma, at least 3.
    "words_per_point": 60.0,
    "words_sigma": 0.5,
    # Emission: logit of word w for a point of latent h is sharpness * <h, v_w> + log f_w (Zipf
    # word frequency with exponent word_zipf) + boost for each keyword of the point's labels.
    "sharpness": 3.0,
    "word_zipf": 1.05,
    "keywords": 5,
    "keyword_boost": 3.5,
    # A point's latent is the mean of its labels' latents plus isotropic noise of about this norm.
    "point_noise": 0.15,
    # Share of a point's words drawn from the word frequencies alone.
    "background": 0.25,
    "seed": 0,
}

# Differently shaped sets: 8,000 / 2,000 points of 1,000 labels, a head-heavy short-text set and a flat, many-label set.
SHAPES = {
    # The size of the report that showed the gap: 8,000 train / 2,000 test points, 1,000 labels.
    "standard": {},
    # Steep popularity, about 1.5 labels per point, short documents over a larger vocabulary,
    # tighter but more numerous clusters.
    "headheavy": {
        "train": 12000, "test": 3000, "features": 10000, "labels": 2000, "zipf": 1.2,
        "labels_per_point": 1.5, "labels_dispersion": 1.0, "words_per_point": 25.0, "words_sigma": 0.7,
        "cluster_alpha": 30.0, "label_spread": 0.45, "keywords": 2, "keyword_boost": 2.5,
        "neighbour_share": 0.5, "neighbour_sharpness": 12.0, "sharpness": 3.5, "point_noise": 0.3,
        "background": 0.3,
    },
    # Flat popularity, about 6 labels per point, long documents over a small vocabulary, a few
    # broad clusters with labels spread widely inside them.
    "flat": {
        "train": 10000, "test": 3000, "features": 4000, "labels": 3000, "zipf": 0.6,
        "labels_per_point": 6.0, "labels_dispersion": 4.0, "words_per_point": 200.0, "words_sigma": 0.4,
        "cluster_alpha": 4.0, "label_spread": 0.8, "keywords": 6, "keyword_boost": 4.5,
        "neighbour_share": 0.85, "neighbour_sharpness": 8.0, "sharpness": 2.5, "point_noise": 0.15,
    },
}


def chinese_restaurant(n, alpha, rng):
    """Cluster ids for n items: each joins an existing cluster with probability proportional to
    its size, or opens a new one with probability proportional to alpha."""
    sizes, out = [], np.empty(n, dtype=np.int64)
    for i in range(n):
        weights = np.array(sizes + [alpha], dtype=float)
        c = rng.choice(len(weights), p=weights / weights.sum())
        if c == len(sizes):
            sizes.append(0)
        sizes[c] += 1
        out[i] = c
    return out, len(sizes)


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class World:
    """The latent structure shared by the train and test points."""

    def __init__(self, k, rng):
        self.k = k
        L, F, d = k["labels"], k["features"], k["dim"]
        cluster, self.n_clusters = chinese_restaurant(L, k["cluster_alpha"], rng)
        centres = unit(rng.standard_normal((self.n_clusters, d)))
        self.u = unit(centres[cluster] + k["label_spread"] * unit(rng.standard_normal((L, d))))
        # Popularity ranks are a random permutation, so neither label ids nor clusters say which
        # labels are frequent.
        self.pop = rng.permutation(np.arange(1, L + 1, dtype=float) ** -k["zipf"])
        self.pop /= self.pop.sum()
        self.v = rng.standard_normal((F, d))
        word_freq = rng.permutation(np.arange(1, F + 1, dtype=float) ** -k["word_zipf"])
        self.log_freq = np.log(word_freq / word_freq.sum())
        self.freq = word_freq / word_freq.sum()
        self.keywords = rng.integers(0, F, size=(L, k["keywords"]))

    def labels(self, rng):
        k, L = self.k, self.k["labels"]
        mean_extra = k["labels_per_point"] - 1.0
        extra = 0
        if mean_extra > 0:
            r = k["labels_dispersion"]
            extra = rng.negative_binomial(r, r / (r + mean_extra))
        first = rng.choice(L, p=self.pop)
        extra = min(extra, L - 1)
        n_near = rng.binomial(extra, k["neighbour_share"])
        chosen = {first}
        if n_near:
            logits = k["neighbour_sharpness"] * (self.u @ self.u[first]) + np.log(self.pop)
            near = np.exp(logits - logits.max())
            near[first] = 0.0
            chosen.update(rng.choice(L, size=n_near, replace=False, p=near / near.sum()))
        if extra > n_near:
            # Drawn without replacement, then merged: a popular label may already be there.
            chosen.update(rng.choice(L, size=extra - n_near, replace=False, p=self.pop))
        return sorted(int(l) for l in chosen)

    def counts(self, label_sets, rng):
        """Word counts (points x features) for points with these label sets."""
        k, F = self.k, self.k["features"]
        n = len(label_sets)
        h = np.stack([self.u[ls].mean(axis=0) for ls in label_sets])
        h = h + k["point_noise"] * rng.standard_normal(h.shape) / np.sqrt(k["dim"])
        logits = k["sharpness"] * (h @ self.v.T) + self.log_freq
        for i, ls in enumerate(label_sets):
            np.add.at(logits[i], self.keywords[ls].ravel(), k["keyword_boost"])
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p = (1 - k["background"]) * p + k["background"] * self.freq
        lengths = np.maximum(3, np.rint(k["words_per_point"] * np.exp(k["words_sigma"] * rng.standard_normal(n))))
        return rng.multinomial(lengths.astype(np.int64), p)


def draw(world, n, rng, chunk=500):
    label_sets = [world.labels(rng) for _ in range(n)]
    counts = np.concatenate([world.counts(label_sets[a:a + chunk], rng) for a in range(0, n, chunk)])
    return label_sets, counts


def write_xc(path, label_sets, counts, idf, n_labels):
    with open(path, "w") as f:
        f.write(f"{len(label_sets)} {counts.shape[1]} {n_labels}\n")
        for ls, row in zip(label_sets, counts):
            j = np.flatnonzero(row)
            v = row[j] * idf[j]
            v = v / np.linalg.norm(v)
            feats = " ".join(f"{a}:{b:.6g}" for a, b in zip(j, v))
            f.write(f"{','.join(map(str, ls))} {feats}\n")


def generate(knobs, out):
    rng = np.random.default_rng(knobs["seed"])
    world = World(knobs, rng)
    train_labels, train_counts = draw(world, knobs["train"], rng)
    test_labels, test_counts = draw(world, knobs["test"], rng)
    # idf from the training split only; a word never seen in training keeps the largest idf.
    df = (train_counts > 0).sum(axis=0)
    idf = np.log((1 + knobs["train"]) / (1 + df)) + 1.0
    out.mkdir(parents=True, exist_ok=True)
    write_xc(out / "test.txt", test_labels, test_counts, idf, knobs["labels"])
    write_xc(out / "train.txt", train_labels, train_counts, idf, knobs["labels"])
    freq = np.bincount(np.concatenate([np.array(ls) for ls in train_labels]), minlength=knobs["labels"])
    top = np.sort(freq)[::-1]
    return {
        "clusters": world.n_clusters,
        "labels_per_point": round(float(np.mean([len(ls) for ls in train_labels])), 2),
        "features_per_point": round(float((train_counts > 0).sum(axis=1).mean()), 1),
        "labels_unseen_in_train": int((freq == 0).sum()),
        "top_label_points": int(top[0]),
        "median_label_points": int(np.median(freq)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="standard")
    ap.add_argument("--out", type=Path, required=True, help="folder for train.txt and test.txt")
    for key, value in DEFAULTS.items():
        ap.add_argument(f"--{key.replace('_', '-')}", type=type(value), help=f"default {value} (before the shape)")
    args = ap.parse_args()
    knobs = {**DEFAULTS, **SHAPES[args.shape]}
    knobs.update({k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None})
    for key in ("train", "test", "features", "labels", "dim", "keywords"):
        if knobs[key] < 1:
            raise SystemExit(f"generate: {key}: expected an integer >= 1, got {knobs[key]}")
    for key in ("background", "neighbour_share"):
        if not 0 <= knobs[key] <= 1:
            raise SystemExit(f"generate: {key}: expected a probability in [0, 1], got {knobs[key]}")
    if knobs["labels_per_point"] < 1:
        raise SystemExit(f"generate: labels_per_point: expected a number >= 1, got {knobs['labels_per_point']}")
    summary = generate(knobs, args.out)
    print(json.dumps({"shape": args.shape, "out": str(args.out), **summary}), file=sys.stderr)


if __name__ == "__main__":
    main()
