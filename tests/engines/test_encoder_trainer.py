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
"""EncoderTrainer on phantom slices: the photometric input augmentation reaches the encoder only."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events

from monai_semgan.data import make_slice_dataset, make_slice_loader, split_cases
from monai_semgan.engines import EncoderTrainer, PairedSliceLoader
from monai_semgan.networks import LatentEncoder, SemanticGenerator

R = 16


def make_trainer(cases: list[dict], **kwargs) -> tuple[EncoderTrainer, list[torch.Tensor]]:
    """A tiny trainer whose encoder records every input it is given."""
    torch.manual_seed(0)
    labeled, unlabeled = split_cases(cases, 1, 0)
    lab = make_slice_loader(make_slice_dataset(labeled, "ct", R, True, label_values="chaos", slices_per_volume=2), 2)
    unl = make_slice_loader(make_slice_dataset(unlabeled, "ct", R, False, slices_per_volume=2), 2)
    g = SemanticGenerator(
        R, z_dim=16, w_dim=16, mapping_layers=1, channel_base=256, channel_multiplier=1, channel_max=16
    )
    enc = LatentEncoder(R, num_ws=g.num_ws, w_dim=16, channel_base=256, channel_multiplier=1, channel_max=16)
    seen: list[torch.Tensor] = []
    enc.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    trainer = EncoderTrainer(
        "cpu", 1, PairedSliceLoader(unl, lab, 2, seed=0), enc, g, torch.optim.Adam(enc.parameters(), 1e-3), **kwargs
    )
    return trainer, seen


def test_photometric_input_augmentation_reaches_only_the_encoder(phantom_cases: list[dict]) -> None:
    trainer, seen = make_trainer(phantom_cases, input_augment="intensity,gamma")
    batches: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: batches.append(e.state.batch))
    trainer.run()
    assert len(seen) == 4 and len(batches) == 2  # unlabeled and labeled batch per iteration
    originals = [torch.as_tensor(b[k]["image"]).float() for b in batches for k in ("unlabeled", "labeled")]
    for given, original in zip(seen, originals):
        assert given.shape == original.shape and not torch.allclose(given, original, atol=1e-3)
        # monotone per slice: the encoder sees the same anatomy, brighter or darker
        order = original.flatten(1).argsort(dim=1)
        assert (given.flatten(1).gather(1, order).diff(dim=1) >= -1e-5).all()
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.state.output.values())


def test_without_input_augmentation_the_encoder_sees_the_slices(phantom_cases: list[dict]) -> None:
    trainer, seen = make_trainer(phantom_cases)
    batches: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: batches.append(e.state.batch))
    trainer.run()
    originals = [torch.as_tensor(b[k]["image"]).float() for b in batches for k in ("unlabeled", "labeled")]
    assert all(torch.equal(given, original) for given, original in zip(seen, originals))


@pytest.mark.parametrize("policy", ["translation", "intensity,cutout"])
def test_geometric_input_augmentation_is_refused(phantom_cases: list[dict], policy: str) -> None:
    with pytest.raises(ValueError, match="input_augment must be photometric"):
        make_trainer(phantom_cases, input_augment=policy)


@pytest.mark.parametrize("amp, dtype", [("auto", None), ("off", None), ("bf16", torch.bfloat16)])
def test_the_encoder_trains_in_float32_unless_bf16_is_asked_for(
    phantom_cases: list[dict], amp: str, dtype: torch.dtype | None
) -> None:
    trainer, _ = make_trainer(phantom_cases, amp=amp)
    assert trainer.amp_dtype == dtype
    trainer.run()
    assert all(math.isfinite(v) for v in trainer.state.output.values())
