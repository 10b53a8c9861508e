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
"""Figure: axial slices of a volume with the reference liver (green contour) and a predicted mask (red fill), as
written by ``configs/inference.json`` or ``configs/evaluate.json``.

    python -m benchmarks.overlay_figure --image ../shared/data/chaos_t2spir/image_1.nii.gz \
        --label ../shared/data/chaos_t2spir/label_1.nii.gz --label_values 1 \
        --pred runs/eval/image_1_seg.nii.gz --out docs/figures/chaos_image_1_overlay.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--label_values", type=int, nargs="+", default=[1])
    parser.add_argument("--pred", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--slices", type=int, default=4, help="slices shown, evenly spread over the liver")
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # canonical (RAS) arrays so the three files line up and the slices show the usual way up
    image = np.asarray(nib.as_closest_canonical(nib.load(args.image)).dataobj, dtype=np.float32)
    label = np.isin(np.asarray(nib.as_closest_canonical(nib.load(args.label)).dataobj), args.label_values)
    pred = np.asarray(nib.as_closest_canonical(nib.load(args.pred)).dataobj) > 0
    if not image.shape == label.shape == pred.shape:
        raise ValueError(f"shapes differ: image {image.shape}, label {label.shape}, prediction {pred.shape}")
    with_liver = np.flatnonzero(label.any(axis=(0, 1)))
    if with_liver.size == 0:
        raise ValueError(f"{args.label}: no voxel has a value in {args.label_values}")
    picks = with_liver[np.linspace(0, with_liver.size - 1, args.slices + 2).round().astype(int)[1:-1]]
    lo, hi = np.percentile(image, (0.5, 99.5))

    def view(a: np.ndarray) -> np.ndarray:
        # radiological convention: anterior up, the patient's right on the image's left
        return np.fliplr(np.rot90(a))

    fig, axes = plt.subplots(1, len(picks), figsize=(3 * len(picks), 3.3), dpi=110)
    for ax, z in zip(np.atleast_1d(axes), picks):
        ax.imshow(view(image[:, :, z]), cmap="gray", vmin=lo, vmax=hi)
        ax.imshow(np.ma.masked_where(~view(pred[:, :, z]), view(pred[:, :, z])), cmap="autumn", alpha=0.45)
        ax.contour(view(label[:, :, z]), levels=[0.5], colors="lime", linewidths=1.2)
        inter = (pred[:, :, z] & label[:, :, z]).sum()
        dice = 2 * inter / max(pred[:, :, z].sum() + label[:, :, z].sum(), 1)
        ax.set_title(f"slice {z}: 2-D Dice {dice:.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(args.title or Path(args.image).name, fontsize=9)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)


if __name__ == "__main__":
    main()
