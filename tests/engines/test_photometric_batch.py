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
"""The U-Net baseline's photometric batch preparation, on slices loaded from written phantom volumes."""

from __future__ import annotations

import pytest
import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import default_prepare_batch
from monai.networks.nets import UNet

from monai_semgan.data import make_slice_dataset, make_slice_loader
from monai_semgan.engines import DifferentiableAugment, PhotometricPrepareBatch


@pytest.fixture(scope="module")
def batch(phantom_cases: list[dict]) -> dict:
    dataset = make_slice_dataset(phantom_cases[:1], "ct", 32, labeled=True, slices_per_volume=8)
    return next(iter(make_slice_loader(dataset, batch_size=8, seed=0)))


def test_images_change_labels_do_not(batch: dict) -> None:
    image, label = default_prepare_batch(batch)
    torch.manual_seed(0)
    out_image, out_label = PhotometricPrepareBatch("intensity,gamma")(batch, torch.device("cpu"))
    assert torch.equal(out_label, label)
    assert out_image.shape == image.shape
    changed = (out_image - image).abs().flatten(1).amax(1)
    assert (changed > 1e-3).all(), "every slice gets its own contrast"
    # the same draws as the encoder's input augmentation (train_encoder.json input_augment)
    torch.manual_seed(0)
    assert torch.allclose(out_image, DifferentiableAugment("intensity,gamma")(image))
    # air stays air under gamma alone
    torch.manual_seed(0)
    gamma_only, _ = PhotometricPrepareBatch("gamma")(batch)
    assert torch.equal(gamma_only[image == -1], image[image == -1])


def test_empty_policy_is_the_default_preparation(batch: dict) -> None:
    image, label = default_prepare_batch(batch)
    out_image, out_label = PhotometricPrepareBatch("")(batch)
    assert torch.equal(out_image, image) and torch.equal(out_label, label)


@pytest.mark.parametrize(
    ("policy", "message"), [("gamma,cutout", "input_augment must be photometric"), ("contrast", "unknown")]
)
def test_geometric_or_unknown_operations_are_refused(policy: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhotometricPrepareBatch(policy)


def test_supervised_trainer_sees_augmented_images(phantom_cases: list[dict]) -> None:
    dataset = make_slice_dataset(phantom_cases[:1], "ct", 32, labeled=True, slices_per_volume=8)
    loader = make_slice_loader(dataset, batch_size=4, seed=0)
    network = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8), strides=(2,))
    seen: list[torch.Tensor] = []
    network.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach().clone()))
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        epoch_length=2,
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.01),
        loss_function=lambda pred, label: torch.nn.functional.binary_cross_entropy_with_logits(pred, label.float()),
        prepare_batch=PhotometricPrepareBatch("intensity,gamma"),
        decollate=False,
    )
    trainer.run()
    assert len(seen) == 2
    # the slices the loader gives are in [-1, 1]; contrast changes take the network's inputs outside the originals
    originals = torch.cat([default_prepare_batch(b)[0] for b in make_slice_loader(dataset, batch_size=4, seed=0)])
    assert not any(torch.isin(s.flatten(), originals.flatten()).all() for s in seen)
