"""How strong is each corruption for a 288-px model under the two candidate rules of ``resolution = "model"``?

The official ImageNet-C protocol corrupts a 224-px crop. For a model whose native input is 288 px
(timm's ResNet-50 a1 at its test size, timm #184) two rules are possible:

- **native** (robench's rule): the published parameter set nearest in size (here ImageNet's) applied
  to the model's own 288-px crop;
- **224-then-resize**: the 288-px crop resized to 224, corrupted with ImageNet's table, resized back.

For natural images (scikit-image's bundled photographs) and every test corruption at severities 1, 3
and 5, the script prints the root-mean-square pixel change (``[0, 1]`` scale) each rule causes,
relative to the official protocol at 224 px, plus the change the 288 → 224 → 288 round trip alone
causes (what the second rule adds before any corruption).

    OMP_NUM_THREADS=1 python benchmarks/resolution_rule.py [--severities 1 3 5]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robench._rng import SampleRNG
from robench.corruptions import CORRUPTIONS

IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg")


def photographs() -> list[Image.Image]:
    from pathlib import Path

    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [Image.open(folder / name).convert("RGB") for name in IMAGES]


def prepared(img: Image.Image, resize: int, crop: int, mode: Image.Resampling) -> torch.Tensor:
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), mode)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    arr = np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1)


def resized(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean().sqrt())


def corrupt(name: str, x: torch.Tensor, severity: int) -> torch.Tensor:
    rng = SampleRNG.for_batch(len(x), seed=0, key=f"imagenet/{name}/{severity}")
    return CORRUPTIONS.get(name)(x.clone(), severity, rng=rng, param_set="imagenet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--native", type=int, default=288)
    args = parser.parse_args()
    imgs = photographs()
    official = torch.stack([prepared(i, 256, 224, Image.Resampling.BILINEAR) for i in imgs])
    size = args.native
    native = torch.stack([prepared(i, math.floor(size / 0.95), size, Image.Resampling.BICUBIC) for i in imgs])
    round_trip = rms(resized(resized(native, 224), size), native)
    print(f"{len(imgs)} photographs; native {size} px; the {size}→224→{size} round trip alone changes pixels by "
          f"RMS {round_trip:.4f}")
    print(f"{'corruption':<18} sev  official  native/official  224-then-resize/official")
    ratios: dict[str, list[tuple[float, float]]] = {}
    for name, c in CORRUPTIONS.items():
        if not c.test:
            continue
        for s in args.severities:
            ref = rms(corrupt(name, official, s), official)
            nat = rms(corrupt(name, native, s), native)
            via = rms(resized(corrupt(name, resized(native, 224), s), size), native)
            ratios.setdefault(c.family.value, []).append((nat / ref, via / ref))
            print(f"{name:<18} {s:>3}  {ref:8.4f}  {nat / ref:15.2f}  {via / ref:24.2f}")
    print("family medians (native/official, 224-then-resize/official):")
    for family, rs in ratios.items():
        a, b = np.median(np.asarray(rs), axis=0)
        print(f"  {family:<8} {a:.2f}  {b:.2f}")


if __name__ == "__main__":
    main()
