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
"""SemanticGAN's networks: the joint image-label generator, its two discriminators, the W+ encoder, and the
self-describing model files they are saved in."""

from __future__ import annotations

from monai_semgan.networks.encoder import LatentEncoder
from monai_semgan.networks.equalized import EqualizedConv2d, EqualizedLinear
from monai_semgan.networks.generator import INPUT_SPACES, NOISE_MODES, SemanticGenerator, SynthesisBlock
from monai_semgan.networks.image_discriminator import ImageDiscriminator, MinibatchStdDev, ResidualDownBlock
from monai_semgan.networks.joint_discriminator import JointDiscriminator, PatchDiscriminator
from monai_semgan.networks.mapping import MappingNetwork
from monai_semgan.networks.model_file import (
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    build_network,
    load_model,
    network_architecture,
    read_model_info,
    save_model,
)
from monai_semgan.networks.modulated_conv import ModulatedConv2d, StyledConv, StyledOutput
from monai_semgan.networks.weights import checkpoint_resolution, load_network_weights

__all__ = [
    "INPUT_SPACES",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
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
    "build_network",
    "checkpoint_resolution",
    "load_model",
    "load_network_weights",
    "network_architecture",
    "read_model_info",
    "save_model",
]
