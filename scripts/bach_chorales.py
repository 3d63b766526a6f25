#!/usr/bin/env python3
"""Converts the Bach chorales that music21 ships in its corpus into the `sequences` format of the
`seq2seq` workload: harmonisation, the soprano line as the source and the alto, tenor and bass
lines as the target.

Each chorale is sampled on a grid of `--step` quarter notes (default an eighth note). At each step,
the soprano's sounding pitch is one source token (`S67`: MIDI pitch 67; `Sr`: a rest) and the
three lower voices are three target tokens in the order alto, tenor, bass (`A62 T55 B48`), so
target token i belongs to voice i mod 3 (`voices = 3` in the sweep file reports note accuracy per
voice). Chorales are cut into windows of `--window` steps every `--hop` steps. Every
`--test-every`-th chorale (in music21's Riemenschneider order) goes to test.txt, whole, so no
window of a test chorale is trained on.

    .venv/bin/pip install music21
    .venv/bin/python scripts/bach_chorales.py --out data/bach-chorales

music21 is BSD-licensed; the chorale encodings in its corpus are in the public domain.
"""

import argparse
import math
import os
import sys

VOICES = ("Soprano", "Alto", "Tenor", "Bass")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder to create for train.txt and test.txt")
    p.add_argument("--step", type=float, default=0.5, help="grid step in quarter notes (0.5: eighth notes)")
    p.add_argument("--window", type=int, default=32, help="steps per example")
    p.add_argument("--hop", type=int, default=16, help="steps between the starts of two examples")
    p.add_argument("--test-every", type=int, default=10, help="every N-th chorale goes to the test split")
    a = p.parse_args()
    if a.step <= 0 or a.window < 1 or a.hop < 1 or a.test_every < 2:
        p.error("--step must be > 0, --window and --hop >= 1, --test-every >= 2")
    return a


def voice_parts(score):
    """The four voices by part name, or None when the chorale does not name all four."""
    parts = {}
    for part in score.parts:
        name = (part.partName or "").strip()
        for voice in VOICES:
            if name.lower().startswith(voice.lower()) and voice not in parts:
                parts[voice] = part
    return [parts[v] for v in VOICES] if len(parts) == 4 else None


def sounding(part, steps, step):
    """MIDI pitch (or None for a rest) at the start of each grid step."""
    grid = [None] * steps
    for n in part.flatten().notes:
        pitch = max(p.midi for p in n.pitches)  # the top note of a chord in one voice
        start = n.offset
        end = n.offset + n.quarterLength
        first = math.ceil(start / step - 1e-9)
        last = math.ceil(end / step - 1e-9)
        for i in range(first, min(last, steps)):
            grid[i] = pitch
    return grid


def token(prefix, pitch):
    return f"{prefix}{'r' if pitch is None else pitch}"


def main():
    a = parse_args()
    try:
        from music21 import corpus
    except ImportError:
        sys.exit("music21 is not installed: .venv/bin/pip install music21")
    if os.path.exists(a.out):
        sys.exit(f"{a.out}: already exists; choose a new folder for --out")
    names = list(corpus.chorales.Iterator(returnType="filename"))
    splits = {"train": [], "test": []}
    skipped = []
    for index, name in enumerate(names):
        score = corpus.parse(name)
        parts = voice_parts(score)
        if parts is None:
            skipped.append(name)
            continue
        steps = int(math.ceil(score.highestTime / a.step))
        rolls = [sounding(p, steps, a.step) for p in parts]
        split = "test" if index % a.test_every == 0 else "train"
        for start in range(0, max(steps - a.window, 0) + 1, a.hop):
            window = range(start, min(start + a.window, steps))
            source = [token("S", rolls[0][t]) for t in window]
            target = [token(v[0], rolls[k][t]) for t in window for k, v in enumerate(VOICES[1:], 1)]
            splits[split].append(" ".join(source) + "\t" + " ".join(target))
    os.makedirs(a.out)
    for split, lines in splits.items():
        with open(os.path.join(a.out, f"{split}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    chorales = len(names) - len(skipped)
    print(
        f"{a.out}: {len(splits['train'])} training and {len(splits['test'])} test windows from {chorales} chorales"
        f" ({len(skipped)} without Soprano, Alto, Tenor and Bass parts skipped)"
    )


if __name__ == "__main__":
    main()
