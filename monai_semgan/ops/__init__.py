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
"""The two StyleGAN2 ops, each with a PyTorch reference and a compiled CUDA path behind one signature (``impl=``)."""

from __future__ import annotations

from monai_semgan.ops.bias_act import ACTIVATIONS, bias_act
from monai_semgan.ops.cuda_extension import CudaOpsBuildError, build_cuda_ops, cuda_ops_or_none
from monai_semgan.ops.upfirdn2d import downsample2d, filter2d, setup_kernel, upfirdn2d, upsample2d

__all__ = [
    "ACTIVATIONS",
    "CudaOpsBuildError",
    "bias_act",
    "build_cuda_ops",
    "cuda_ops_or_none",
    "downsample2d",
    "filter2d",
    "setup_kernel",
    "upfirdn2d",
    "upsample2d",
]
