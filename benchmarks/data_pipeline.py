# Copyright (c) monai-semgan contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Is the data pipeline the bottleneck? Slices/s the cached slice loaders deliver vs slices/s a training step eats.

Measured in one process on the same machine: (1) the time to build the caches, (2) slices per second drawn from the
labeled and unlabeled loaders, (3) slices per second consumed by the default CPU training step of the liver_ct bundle
(unlabeled + labeled slices per iteration, lazy regularization amortized over 16 iterations), and the data share of a
training iteration.

    python -m benchmarks.data_pipeline --data phantom            # the bundle's default data
    python -m benchmarks.data_pipeline --data ../shared/data/chaos_t2spir --modality mri --label_values chaos
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.train_step import CONFIGS
from monai_semgan.data import (
    discover_cases,
    make_slice_dataset,
    make_slice_loader,
    split_cases,
    write_phantom_dataset,
)
from monai_semgan.engines import PairedSliceLoader, SemanticGanTrainer, lazy_adam
from monai_semgan.networks import ImageDiscriminator, JointDiscriminator, SemanticGenerator

__all__ = ["main"]


def _draw(loader: PairedSliceLoader, iterations: int) -> float:
    start = time.perf_counter()
    it = iter(loader)
    for _ in range(iterations):
        next(it)
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="phantom", help="'phantom' (10 cases, like the bundle) or a data folder")
    parser.add_argument("--modality", default="ct")
    parser.add_argument("--label_values", "--label_mapping", default="chaos", help="which label values are the organ")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8, help="unlabeled and labeled slices per iteration each")
    parser.add_argument("--num_labeled", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=32, help="training iterations timed (multiple of 16)")
    args = parser.parse_args()
    torch.manual_seed(0)

    if args.data == "phantom":
        folder = Path(tempfile.mkdtemp()) / "phantom"
        write_phantom_dataset(folder, num_cases=10, seed=0)
        source = folder / args.modality
    else:
        source = Path(args.data)
    cases = discover_cases(source)
    labeled, unlabeled = split_cases(cases, args.num_labeled, 0)

    start = time.perf_counter()
    lab = make_slice_dataset(labeled, args.modality, args.resolution, True, label_values=args.label_values)
    unl = make_slice_dataset(unlabeled, args.modality, args.resolution, False)
    cache_s = time.perf_counter() - start
    loader = PairedSliceLoader(
        make_slice_loader(unl, args.batch), make_slice_loader(lab, args.batch), epoch_length=args.iterations
    )
    _draw(loader, 4)  # warm-up
    data_s = _draw(loader, args.iterations)
    data_rate = 2 * args.batch * args.iterations / data_s

    cpu = CONFIGS["cpu"]  # the bundle's networks (train.json) at this resolution
    g = SemanticGenerator(**{**cpu["generator"], "resolution": args.resolution})
    d_img = ImageDiscriminator(**{**cpu["image_discriminator"], "resolution": args.resolution})
    d_joint = JointDiscriminator(**cpu["joint_discriminator"])
    opts = [
        lazy_adam(g.parameters(), interval=4),
        lazy_adam(d_img.parameters(), interval=16),
        lazy_adam(d_joint.parameters(), interval=16),
    ]
    warm = SemanticGanTrainer(
        "cpu", 1, PairedSliceLoader(loader.unlabeled, loader.labeled, 16), g, d_img, d_joint, *opts
    )
    warm.run()  # one amortization period of warm-up (oneDNN primitive creation)
    trainer = SemanticGanTrainer("cpu", 1, loader, g, d_img, d_joint, *opts)
    start = time.perf_counter()
    trainer.run()
    train_s = time.perf_counter() - start
    train_rate = 2 * args.batch * args.iterations / train_s

    print(
        f"data: {source} ({len(labeled)} labeled + {len(unlabeled)} unlabeled volumes), {args.resolution} px, "
        f"batch {args.batch} + {args.batch}, torch threads {torch.get_num_threads()}"
    )
    print("| quantity | value |")
    print("|---|---|")
    print(f"| cache build (load, RAS, intensity, remap, resize; all volumes) | {cache_s:.1f} s |")
    print(f"| slices/s delivered by the paired loaders | {data_rate:.0f} |")
    print(
        f"| slices/s consumed by the training step (amortized over {args.iterations} iterations) | {train_rate:.1f} |"
    )
    print(f"| s per training iteration, data included | {train_s / args.iterations:.2f} |")
    print(f"| data share of an iteration | {100 * data_s / train_s:.1f} % |")
    print(f"| delivery / consumption | {data_rate / train_rate:.0f} x |")


if __name__ == "__main__":
    main()
