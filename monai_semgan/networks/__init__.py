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
"""SemanticGAN's networks: the joint image-label generator, its two discriminators, and the W+ encoder."""

from __future__ import annotations

from monai_semgan.networks.encoder import LatentEncoder
from monai_semgan.networks.equalized import EqualizedConv2d, EqualizedLinear
from monai_semgan.networks.generator import INPUT_SPACES, NOISE_MODES, SemanticGenerator, SynthesisBlock
from monai_semgan.networks.image_discriminator import ImageDiscriminator, MinibatchStdDev, ResidualDownBlock
from monai_semgan.networks.joint_discriminator import JointDiscriminator, PatchDiscriminator
from monai_semgan.networks.mapping import MappingNetwork
from monai_semgan.networks.modulated_conv import ModulatedConv2d, StyledConv, StyledOutput
from monai_semgan.networks.weights import checkpoint_resolution, load_network_weights

__all__ = [
    "INPUT_SPACES",
    "NOISE_MODES",
    "EqualizedConv2d",
    "EqualizedLinear",
    "ImageDiscriminator",
    "JointDiscriminator",
    "LatentEncoder",
    "MappingNetwork",
    "MinibatchStdDev",
    "ModulatedConv2d",
    "PatchDiscriminator",
    "ResidualDownBlock",
    "SemanticGenerator",
    "StyledConv",
    "StyledOutput",
    "SynthesisBlock",
    "checkpoint_resolution",
    "load_network_weights",
]
