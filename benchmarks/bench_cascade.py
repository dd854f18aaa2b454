"""The attack cascade on `demo-linf`: image-gradient evaluations and wall time, without vs with it.

Runs `robench eval --ckpt demo-gap --suite demo-linf --limit N` twice into fresh stores: once with
``cascade = false`` (every attack on every image at every eps, as before issue #16) and once with the
default cascade (each cell attacks only the images earlier cells left robust). Prints, per run, the
images passed backward through the model (image-gradient evaluations, counted by the attack
template), the forward passes, the wall time and the worst-case robust accuracy per eps, then the
before/after ratios. The worst case may only go down with the cascade (images broken at a smaller
eps count as broken), and equals the plain one when every attack is monotone in eps.

    OMP_NUM_THREADS=2 python benchmarks/bench_cascade.py [--limit 200] [--only cascade]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from robench.evaluate import EvalConfig, run_eval
from robench.report import load_results
from robench.suites import builtin_suites


def run(suite_text: str, name: str, limit: int, workdir: Path, batch: int) -> dict[str, object]:
    path = workdir / f"{name}.toml"
    path.write_text(suite_text)
    t = time.perf_counter()
    summary = run_eval(EvalConfig(ckpts=("demo-gap",), suite=str(path), limit=limit, out=workdir / name,
                                  batch_size=batch))
    wall = time.perf_counter() - t
    df = load_results(summary.store, indices=True)
    att = df[df.kind == "attack"]
    worst = {eps: len(set.intersection(*(set(v) for v in g.robust_idx))) / int(g.n.iloc[0])
             for eps, g in att.groupby("eps", sort=False)}
    return {"backwards": int(att.backwards.sum()), "forwards": int(att.forwards.sum()), "wall": wall, "worst": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40, help="images (the issue's figure: 200)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--only", choices=["plain", "cascade"], help="run one side only (e.g. to time it)")
    args = parser.parse_args()

    text = builtin_suites().get("demo-linf").read_text(encoding="utf-8")
    assert "\n[attacks]\n" in text
    variants = {"plain": text.replace("\n[attacks]\n", "\n[attacks]\ncascade = false\n"), "cascade": text}
    print(f"demo-linf, demo-gap, {args.limit} images, batch {args.batch}, {torch.get_num_threads()} threads")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, suite_text in variants.items():
            if args.only and name != args.only:
                continue
            r = results[name] = run(suite_text, name, args.limit, Path(tmp), args.batch)
            worst = ", ".join(f"RA@{e} {100 * v:.1f} %" for e, v in r["worst"].items())
            print(f"{name:8s}: {r['backwards']:>9,d} image gradients, {r['forwards']:>9,d} image forwards, "
                  f"{r['wall']:7.1f} s; {worst}")
    if len(results) == 2:
        plain, cascade = results["plain"], results["cascade"]
        print(f"ratio plain/cascade: image gradients {plain['backwards'] / cascade['backwards']:.2f}x, "
              f"image forwards {plain['forwards'] / cascade['forwards']:.2f}x, wall time "
              f"{plain['wall'] / cascade['wall']:.2f}x")


if __name__ == "__main__":
    main()
