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
"""overlay_grid's layout and colours, and the two grid handlers on a small Ignite engine with a tiny generator and
encoder: when they write PNG files, what the files show, TensorBoard images, nothing on other ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from monai_semgan.handlers import ReconstructionGridHandler, SampleGridHandler, overlay_grid
from monai_semgan.networks import LatentEncoder, SemanticGenerator
from monai_semgan.segmentation import SemanticSegmenter

R = 16
SIZES = {"channel_base": 256, "channel_multiplier": 1, "channel_max": 16}
RED, GREEN = np.array([230, 25, 75]), np.array([60, 180, 75])  # the overlay colours of classes 1 and 2


def make_generator() -> SemanticGenerator:
    torch.manual_seed(0)
    g = SemanticGenerator(R, z_dim=16, w_dim=16, mapping_layers=1, **SIZES).eval()
    with torch.no_grad():  # noise that shows (it starts at strength 0), so the grids tell constant from random noise
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(1.0)
    return g


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def grey(image: torch.Tensor) -> np.ndarray:
    """An image in [-1, 1] as the grid draws it: uint8 grey, as RGB."""
    g = ((image.clamp(-1, 1) + 1) * 127.5).numpy().astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def test_overlay_grid_layout_and_colours() -> None:
    images = torch.full((3, 1, 4, 4), -1.0)
    images[1] = 1.0
    labels = torch.full((3, 1, 4, 4), -5.0)
    labels[0, 0, :2] = 3.0  # the top half of the first sample is foreground
    grid = overlay_grid(images, labels, columns=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 4, 2 * 2 * 4, 3)
    first, first_overlay = grid[:4, :4], grid[:4, 4:8]
    second, second_overlay = grid[:4, 8:12], grid[:4, 12:16]
    third = grid[4:, :4]
    assert (first == 0).all() and (second == 255).all() and (third == 0).all()
    # foreground tinted towards the first colour, background left as the image
    np.testing.assert_allclose(first_overlay[:2], np.broadcast_to(0.45 * RED, (2, 4, 3)), atol=1)
    assert (first_overlay[2:] == 0).all()
    assert (second_overlay == 255).all()  # no foreground
    assert (grid[4:, 4:] == 0).all()  # the empty fourth place and the third sample's overlay on black


def test_overlay_grid_multi_class_labels_take_the_argmax() -> None:
    images = torch.full((1, 1, 2, 2), -1.0)
    labels = torch.zeros(1, 3, 2, 2)
    labels[0, 0, 0, 0] = 9.0  # background
    labels[0, 1, 0, 1] = 9.0  # class 1
    labels[0, 2, 1, :] = 9.0  # class 2
    overlay = overlay_grid(images, labels, columns=1)[:, 2:]
    np.testing.assert_array_equal(overlay[0, 0], [0, 0, 0])
    np.testing.assert_allclose(overlay[0, 1], 0.45 * RED, atol=1)
    np.testing.assert_allclose(overlay[1], np.broadcast_to(0.45 * GREEN, (2, 3)), atol=1)


def test_sample_grid_every_interval_and_at_the_end(tmp_path: Path) -> None:
    generator = make_generator()

    def step(engine: Engine, batch: int) -> None:
        if engine.state.iteration == 3:  # the generator changes after the second grid
            with torch.no_grad():
                for p in generator.parameters():
                    p.mul_(1.5)

    engine = Engine(step)
    writer = SummaryWriter(str(tmp_path / "tb"))
    handler = SampleGridHandler(generator, tmp_path / "samples", num_samples=6, interval=2, summary_writer=writer)
    handler.attach(engine)
    engine.run(range(5), max_epochs=1)
    writer.close()

    files = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert files == ["iter_0000002.png", "iter_0000004.png", "iter_0000005.png"]
    assert handler.last_path == tmp_path / "samples" / "iter_0000005.png"
    at2, at4, at5 = (read_png(tmp_path / "samples" / f) for f in files)
    assert at2.shape == (2 * R, 4 * 2 * R, 3)  # 6 samples, 4 per row, each image beside its overlay
    assert (at2[R:, 2 * 2 * R :] == 0).all()  # the two empty places of the second row
    assert not np.array_equal(at2, at4)  # drawn from the generator as it is now
    np.testing.assert_array_equal(at4, at5)  # fixed latents and noise: same generator, same grid

    # a new handler draws the same fixed latents
    again = SampleGridHandler(generator, tmp_path / "again", num_samples=6, interval=1)
    again(engine)
    np.testing.assert_array_equal(read_png(again.last_path), at5)

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    images = events.Images("samples/image_and_label")
    assert [e.step for e in images] == [2, 4, 5]
    assert (images[0].height, images[0].width) == at2.shape[:2]


def test_sample_grid_writes_nothing_on_other_ranks(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: None)
    engine.state.rank = 1
    handler = SampleGridHandler(make_generator(), tmp_path / "samples", num_samples=2, interval=1)
    handler.attach(engine)
    engine.run(range(2), max_epochs=1)
    assert handler.last_path is None and not (tmp_path / "samples").exists()


def make_segmenter() -> SemanticSegmenter:
    g = make_generator()
    e = LatentEncoder(resolution=R, num_ws=g.num_ws, w_dim=g.w_dim, **SIZES).eval()
    return SemanticSegmenter(g, e).eval()


def paired_batch(seed: int, with_label: bool = True) -> dict:
    gen = torch.Generator().manual_seed(seed)
    labeled = {"image": torch.rand(4, 1, R, R, generator=gen) * 2 - 1}
    if with_label:
        labeled["label"] = (torch.rand(4, 1, R, R, generator=gen) > 0.5).long()
    return {"labeled": labeled, "unlabeled": {"image": torch.rand(4, 1, R, R, generator=gen) * 2 - 1}}


def test_reconstruction_grid_shows_real_slices_with_their_masks(tmp_path: Path) -> None:
    batches = [paired_batch(0), paired_batch(1)]
    engine = Engine(lambda e, b: None)
    writer = SummaryWriter(str(tmp_path / "tb"))
    handler = ReconstructionGridHandler(
        make_segmenter(), tmp_path / "samples", num_samples=3, interval=1, summary_writer=writer
    )
    handler.attach(engine)
    engine.run(batches, max_epochs=1)
    writer.close()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["recon_0000001.png", "recon_0000002.png"]

    grid = read_png(tmp_path / "samples" / "recon_0000002.png")  # the second batch's
    assert grid.shape == (3 * R, 2 * 2 * R, 3)  # a row per slice: real | real + mask | recon | recon + label
    batch = batches[1]["labeled"]
    for row in range(3):
        tiles = grid[row * R : (row + 1) * R]
        real, real_overlay, recon = tiles[:, :R], tiles[:, R : 2 * R], tiles[:, 2 * R : 3 * R]
        np.testing.assert_array_equal(real, grey(batch["image"][row, 0]))
        mask = batch["label"][row, 0].numpy() > 0
        assert (real_overlay[~mask] == real[~mask]).all()  # the real mask is what is tinted
        tinted = np.abs(real_overlay[mask].astype(int) - real[mask].astype(int)).sum(axis=-1)
        assert (tinted > 0).mean() > 0.9
        assert not np.array_equal(recon, real)  # the reconstruction, not the slice again

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("encoder/real_vs_reconstruction")] == [1, 2, 2]  # at the end too


def test_reconstruction_grid_of_unlabeled_slices_has_no_real_mask(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: None)
    handler = ReconstructionGridHandler(make_segmenter(), tmp_path, batch_key="unlabeled", num_samples=2, interval=1)
    handler.attach(engine)
    engine.run([paired_batch(2, with_label=False)], max_epochs=1)
    grid = read_png(tmp_path / "recon_0000001.png")
    assert grid.shape == (2 * R, 2 * 2 * R, 3)
    np.testing.assert_array_equal(grid[:, :R], grid[:, R : 2 * R])  # the real slices without overlay


def test_reconstruction_grid_without_a_batch_or_on_other_ranks_writes_nothing(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: None)  # not run: no batch yet
    handler = ReconstructionGridHandler(make_segmenter(), tmp_path / "samples", interval=1)
    handler(engine)
    assert handler.last_path is None and not (tmp_path / "samples").exists()
    engine.state.batch = paired_batch(3)
    engine.state.rank = 1
    handler(engine)
    assert handler.last_path is None and not (tmp_path / "samples").exists()
    engine.state.rank = 0  # the same call on rank 0 writes the grid
    handler(engine)
    assert handler.last_path == tmp_path / "samples" / "recon_0000000.png"
    first = read_png(handler.last_path)
    handler(engine)
    np.testing.assert_array_equal(read_png(handler.last_path), first)  # constant noise: the same grid again
