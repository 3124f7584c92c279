"""Time and peak memory of building MUSE probes from a large dictionary.

Writes a synthetic MUSE-format dictionary (``en-de.txt``: English words in order, one to four
translations each, a few identical pairs) of ``--mb`` megabytes, then builds, each in a
fresh process, the German probes and the English (pivot) probes from it the way the workflow
does (streamed: ``probes.muse.language_pairs`` / ``pivot_language_pairs``), and, as the
baseline, the same probes from the whole file read into memory (``read_dictionary`` +
``pivot_pairs``, what the workflow did before) on a ``--baseline-mb`` dictionary (the whole-file
path needs about 17 GB at 200 MB). Prints wall seconds and peak memory (max RSS) of each, and
the ratios of the streamed builds against the baseline on the same baseline-size file.

    python benchmarks/dictionary.py [--mb 200] [--baseline-mb 20] [--max-words 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_dictionary(path: Path, megabytes: float, seed: int = 0) -> int:
    """An en-de dictionary of about ``megabytes`` MB laid out as MUSE's are: English words in
    frequency order, each with one to four German translations (2% spelled alike); returns its
    line count."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzäöü"
    german = ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(400_000)]
    target, lines, written, i = int(megabytes * 1_000_000), 0, 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            block = []
            for _ in range(10_000):
                i += 1
                en = "".join(rng.choices(letters[:26], k=rng.randint(3, 8))) + f"{i:x}"
                for _ in range(rng.randint(1, 4)):
                    block.append(f"{en} {en if rng.random() < 0.02 else rng.choice(german)}\n")
            text = "".join(block)
            handle.write(text)
            written += len(text.encode())
            lines += len(block)
    return lines


def child(mode: str, path: str, max_words: int) -> None:
    sys.path.insert(0, str(REPO / "workflow"))
    from polyneuron.plan.languages import LANGUAGE_NAMES
    from polyneuron.probes.muse import (
        build_probes,
        language_pairs,
        pivot_language_pairs,
        pivot_pairs,
        read_dictionary,
    )

    sources = {"de": "en-de.txt"}
    start = time.perf_counter()
    if mode == "streamed-de":
        frame, _ = language_pairs(path, "en", "de", max_words)
        probes = build_probes({"de": frame}, sources, "en", ["de"], LANGUAGE_NAMES, max_words)
    elif mode == "streamed-en":
        pairs, _ = pivot_language_pairs({"de": path}, "en", max_words)
        probes = build_probes(pairs, sources, "en", ["en", "de"], LANGUAGE_NAMES, max_words)
    else:  # the whole file in memory
        frame, _ = read_dictionary(path)
        pairs = {"de": pivot_pairs(frame, False)}
        probes = build_probes(pairs, sources, "en", ["en", "de"], LANGUAGE_NAMES, max_words)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = {lang: frame.height for lang, frame in probes.items()}
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "probes": rows}))


def run(mode: str, path: Path, max_words: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), "--max-words", str(max_words)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200)
    parser.add_argument("--baseline-mb", type=float, default=20)
    parser.add_argument("--max-words", type=int, default=1000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.max_words)
        return
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small" / "en-de.txt", Path(tmp) / "large" / "en-de.txt"
        for path, mb in ((small, args.baseline_mb), (large, args.mb)):
            path.parent.mkdir()
            lines = write_dictionary(path, mb)
            print(f"{path.parent.name}: {path.stat().st_size / 1e6:.0f} MB, {lines:,} lines")
        base = run("whole", small, args.max_words)
        print(f"\nbaseline, whole file in memory, {args.baseline_mb:g} MB: "
              f"{base['seconds']:.1f} s, peak {base['peak_mb']:.0f} MB")  # fmt: skip
        print(f"{'build':<12} {'size':>7} {'seconds':>8} {'peak MB':>8} {'time ratio':>11} "
              f"{'memory ratio':>13}")  # fmt: skip
        for mode in ("streamed-de", "streamed-en"):
            for path, mb in ((small, args.baseline_mb), (large, args.mb)):
                result = run(mode, path, args.max_words)
                ratios = ("", "")
                if path == small:
                    ratios = (f"{base['seconds'] / result['seconds']:.1f}x",
                              f"{base['peak_mb'] / result['peak_mb']:.1f}x")  # fmt: skip
                print(f"{mode:<12} {mb:>5g}MB {result['seconds']:>8.1f} "
                      f"{result['peak_mb']:>8.0f} {ratios[0]:>11} {ratios[1]:>13}")  # fmt: skip
        print("(ratios: baseline / streamed on the same file; above 1 is better)")


if __name__ == "__main__":
    main()
