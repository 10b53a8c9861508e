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
"""Grids of generated images with their label maps overlaid: to TensorBoard and to PNG files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from PIL import Image

from monai_semgan.atomic_write import atomic_path

__all__ = ["ReconstructionGridHandler", "SampleGridHandler", "overlay_grid"]

_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240]], dtype=np.float32
)


def overlay_grid(images: torch.Tensor, labels: torch.Tensor, columns: int = 4, alpha: float = 0.45) -> np.ndarray:
    """Tile images with their label maps overlaid: each sample is shown as (image | image + label overlay).

    Args:
        images: ``[N, 1, H, W]`` in about [-1, 1].
        labels: ``[N, C, H, W]`` label logits (``C == 1``: foreground where > 0; else argmax, class 0 background).
        columns: samples per row.
        alpha: opacity of the overlay.

    Returns:
        ``uint8`` RGB array ``[rows * H, columns * 2 * W, 3]``.
    """
    images = images.detach().float().cpu()
    labels = labels.detach().float().cpu()
    grey = ((images[:, 0].clamp(-1, 1) + 1) * 127.5).numpy()
    classes = (labels[:, 0] > 0).long() if labels.shape[1] == 1 else labels.argmax(dim=1)
    classes = classes.numpy()
    n, h, w = grey.shape
    rows = (n + columns - 1) // columns
    canvas = np.zeros((rows * h, columns * 2 * w, 3), dtype=np.uint8)
    for i in range(n):
        rgb = np.repeat(grey[i][..., None], 3, axis=2)
        over = rgb.copy()
        for c in range(1, int(classes[i].max()) + 1):
            mask = classes[i] == c
            over[mask] = (1 - alpha) * over[mask] + alpha * _COLOURS[(c - 1) % len(_COLOURS)]
        r, col = divmod(i, columns)
        canvas[r * h : (r + 1) * h, col * 2 * w : col * 2 * w + w] = rgb.astype(np.uint8)
        canvas[r * h : (r + 1) * h, col * 2 * w + w : (col + 1) * 2 * w] = over.astype(np.uint8)
    return canvas


class _PeriodicGrid:
    """Every ``interval`` iterations and at the end of training, on rank 0, draw a grid (:meth:`draw`) and write it
    as ``<output_dir>/<prefix>_<iteration>.png`` (atomically) and to TensorBoard under ``tag``."""

    prefix = "grid"
    tag = "grid"

    def __init__(self, output_dir: str | os.PathLike, interval: int, summary_writer=None) -> None:
        self.output_dir = Path(output_dir)
        self.interval = interval
        self.writer = summary_writer
        self.last_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        """Draw on ``ITERATION_COMPLETED(every=interval)`` and ``COMPLETED``."""
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def draw(self, engine: Engine) -> np.ndarray | None:
        """The ``uint8`` RGB grid, or ``None`` when there is nothing to draw."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, engine: Engine) -> None:
        if getattr(engine.state, "rank", 0) != 0:
            return
        grid = self.draw(engine)
        if grid is None:
            return
        iteration = engine.state.iteration
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{self.prefix}_{iteration:07d}.png"
        with atomic_path(path, suffix=".png") as tmp:
            Image.fromarray(grid).save(tmp)
        self.last_path = path
        if self.writer is not None:
            self.writer.add_image(self.tag, grid, iteration, dataformats="HWC")
            self.writer.flush()


class SampleGridHandler(_PeriodicGrid):
    """Every ``interval`` iterations (and at the end), draw fixed latents through the generator (the EMA copy) and
    save the image + label grid as ``samples/iter_<iteration>.png`` and to TensorBoard.

    Args:
        generator: the generator to sample (usually the EMA generator).
        output_dir: folder of the PNG files.
        num_samples: samples in the grid (fixed latents, seed 0, constant noise).
        interval: iterations between grids.
        summary_writer: a TensorBoard ``SummaryWriter``, or ``None``.
        truncation_psi: truncation of the samples.
    """

    prefix = "iter"
    tag = "samples/image_and_label"

    def __init__(
        self,
        generator: torch.nn.Module,
        output_dir: str | os.PathLike,
        num_samples: int = 16,
        interval: int = 100,
        summary_writer=None,
        truncation_psi: float = 1.0,
    ) -> None:
        super().__init__(output_dir, interval, summary_writer)
        self.generator = generator
        self.num_samples = num_samples
        self.truncation_psi = truncation_psi
        self.z = torch.randn(num_samples, generator.z_dim, generator=torch.Generator().manual_seed(0))

    def draw(self, engine: Engine) -> np.ndarray:
        """Fixed latents through the generator, image beside image + label."""
        device = next(self.generator.parameters()).device
        images, labels = self.generator(self.z.to(device), truncation_psi=self.truncation_psi, noise_mode="const")
        return overlay_grid(images, labels)


class ReconstructionGridHandler(_PeriodicGrid):
    """Every ``interval`` iterations (and at the end) of encoder training, show how the encoder embeds real slices:
    each real slice with its mask beside its reconstruction ``G(E(x))`` with the generated label, saved as
    ``samples/recon_<iteration>.png`` and to TensorBoard.

    Args:
        segmenter: a :class:`~monai_semgan.segmentation.SemanticSegmenter` (its encoder and generator are used).
        output_dir: folder of the PNG files.
        batch_key: which batch of the paired batch to show (``"labeled"`` shows the real masks too).
        num_samples: slices in the grid (the first of the current batch).
        interval: iterations between grids.
        summary_writer: a TensorBoard ``SummaryWriter``, or ``None``.
    """

    prefix = "recon"
    tag = "encoder/real_vs_reconstruction"

    def __init__(
        self,
        segmenter: torch.nn.Module,
        output_dir: str | os.PathLike,
        batch_key: str = "labeled",
        num_samples: int = 8,
        interval: int = 100,
        summary_writer=None,
    ) -> None:
        super().__init__(output_dir, interval, summary_writer)
        self.segmenter = segmenter
        self.batch_key = batch_key
        self.num_samples = num_samples

    def draw(self, engine: Engine) -> np.ndarray | None:
        """The current batch's slices beside their reconstructions, with real and generated labels."""
        if engine.state.batch is None:
            return None
        batch = engine.state.batch[self.batch_key]
        device = next(self.segmenter.parameters()).device
        real = torch.as_tensor(batch["image"][: self.num_samples]).float().to(device)
        ws = self.segmenter.encoder(real)
        fake, logits = self.segmenter.generator.synthesis(ws, noise_mode="const")
        if "label" in batch:
            real_labels = (torch.as_tensor(batch["label"][: self.num_samples]).to(device) > 0).float() * 2 - 1
        else:
            real_labels = torch.full_like(logits, -1.0)
        # real and reconstruction side by side, row by row
        images = torch.stack([real, fake], dim=1).flatten(0, 1)
        labels = torch.stack([real_labels.to(logits.dtype), logits], dim=1).flatten(0, 1)
        return overlay_grid(images, labels, columns=2)
