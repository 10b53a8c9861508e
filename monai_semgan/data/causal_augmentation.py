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
"""Single-source domain generalization by random appearance: GIN + IPA as MONAI transforms.

Global intensity non-linear augmentation (GIN) and interventional pseudo-correlation augmentation (IPA) of
C. Ouyang, C. Chen, S. Li, Z. Li, C. Qin, W. Bai, D. Rueckert, "Causality-inspired single-source domain
generalization for medical image segmentation", IEEE Transactions on Medical Imaging, 2022
(doi:10.1109/TMI.2022.3224067, arXiv:2111.12525). A segmentation network trained on one modality (CT) with these
random appearances learns shapes rather than intensities, and transfers better to an unseen one (MRI).

Only the augmentation is implemented: the paper's consistency loss between two augmented views of an image is a
change of the training objective, not of the data, and is left out.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

__all__ = ["RandGIN", "RandGINd"]

# guards divisions by a norm or a standard deviation that is zero (constant or empty images)
_EPS = 1e-8


def _check_2d(img: NdarrayOrTensor) -> None:
    """Refuse anything but a channel-first 2-D image, naming its shape."""
    if len(img.shape) != 3:
        raise ValueError(
            f"RandGIN expects a channel-first 2-D image [C, H, W], got shape {tuple(img.shape)}; "
            "apply it to 2-D slices (e.g. after RandAxialSliced)."
        )


class RandGIN(RandomizableTransform):
    """Random appearance of a 2-D image ``[C, H, W]``: a freshly drawn shallow conv network (GIN), optionally two of
    them blended by a smooth random map (IPA).

    GIN: ``n_layers`` convolutions (each with a kernel size drawn from ``kernel_sizes``, width ``n_channels``
    between layers and C at the output, padding that keeps the size) with weights and biases drawn from N(0, 1) on
    every call and LeakyReLU (slope 0.2) between layers. Its output ``g`` is mixed with the image,
    ``a * g + (1 - a) * x`` with ``a ~ U(0, 1)``, and scaled to the Frobenius norm of ``x``, as in the paper. The
    padding repeats the border rather than adding zeros: zero is mid-grey in this project's [-1, 1] and would draw a
    frame around the air.

    IPA (with probability ``ipa_prob``): two independent GIN outputs ``x1``, ``x2`` are blended as
    ``b * x1 + (1 - b) * x2``, where ``b`` is a ``control_points`` x ``control_points`` grid of U(0, 1) values
    interpolated bicubically to the image size and clipped to [0, 1]; the appearance of each region is then drawn
    independently of the others' (the paper's intervention on spurious correlations between objects).

    Range (a decision of this project, not in the paper): after the norm rescale each GIN output is standardized to
    the input's mean and standard deviation per channel and clipped to the input's [min, max] per channel, before
    the IPA blend (a convex combination, so the blend stays in that range too). The paper's images are
    z-scored with an unbounded range; this project's images are in [-1, 1] (CT window, MRI percentiles), the range
    every network and the evaluation see, and a norm rescale alone keeps neither the offset nor the bounds (a GIN
    output may be mostly negative, or have a few extreme values). The norm rescale is a positive factor that the
    standardization absorbs; it is kept so that the first steps are the paper's.

    The consistency loss of the paper (between two augmented views) is not part of this transform.

    Args:
        prob: probability of augmenting an image (otherwise it is returned as it is).
        n_layers: convolution layers of each random network.
        n_channels: width of the layers between the first and the last.
        kernel_sizes: odd kernel sizes each layer draws from.
        ipa_prob: probability of IPA (a blend of two GIN outputs) instead of one GIN output.
        control_points: control points per side of IPA's blend map (at least 2).

    Raises:
        ValueError: for a setting out of its range, a kernel size that is not a positive odd integer.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        prob: float = 1.0,
        n_layers: int = 4,
        n_channels: int = 2,
        kernel_sizes: Sequence[int] = (1, 3),
        ipa_prob: float = 0.5,
        control_points: int = 4,
    ) -> None:
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}.")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}.")
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            # an even kernel cannot keep the size with symmetric padding
            raise ValueError(f"kernel_sizes must be positive odd integers, got {kernel_sizes}.")
        if not 0 <= ipa_prob <= 1:
            raise ValueError(f"ipa_prob must be from 0 to 1, got {ipa_prob}.")
        if control_points < 2:
            raise ValueError(f"control_points must be >= 2, got {control_points}.")
        RandomizableTransform.__init__(self, prob)
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.kernel_sizes = kernel_sizes
        self.ipa_prob = ipa_prob
        self.control_points = control_points
        # the draws of the last randomize(): per GIN branch its layers' (weight, bias) and its mixing weight a
        self._networks: list[list[tuple[np.ndarray, np.ndarray]]] = []
        self._alphas: list[float] = []
        self._control: np.ndarray | None = None

    def _draw_network(self, channels: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (weight, bias) of each layer of one random network from ``channels`` to ``channels`` channels."""
        layers = []
        for i in range(self.n_layers):
            c_in = channels if i == 0 else self.n_channels
            c_out = channels if i == self.n_layers - 1 else self.n_channels
            k = int(self.R.choice(self.kernel_sizes))
            weight = self.R.standard_normal((c_out, c_in, k, k)).astype(np.float32)
            bias = self.R.standard_normal(c_out).astype(np.float32)
            layers.append((weight, bias))
        return layers

    def randomize(self, data: NdarrayOrTensor) -> None:
        """Draw whether to augment and, if so, the networks, mixing weights and IPA's control points for ``data``.

        Args:
            data: the image ``[C, H, W]`` (its channel count sets the networks' input and output width).
        """
        super().randomize(None)
        self._networks, self._alphas, self._control = [], [], None
        if not self._do_transform:
            return
        use_ipa = self.R.rand() < self.ipa_prob
        for _ in range(2 if use_ipa else 1):
            self._networks.append(self._draw_network(int(data.shape[0])))
            self._alphas.append(float(self.R.uniform(0.0, 1.0)))
        if use_ipa:
            self._control = self.R.uniform(0.0, 1.0, (self.control_points, self.control_points)).astype(np.float32)

    def _gin(self, x: torch.Tensor, network: list[tuple[np.ndarray, np.ndarray]], alpha: float) -> torch.Tensor:
        """One GIN output of ``x`` ([1, C, H, W], float32) in ``x``'s range."""
        y = x
        for i, (weight, bias) in enumerate(network):
            pad = weight.shape[-1] // 2
            if pad:  # border padding, see the class docstring
                y = F.pad(y, (pad, pad, pad, pad), mode="replicate")
            y = F.conv2d(y, torch.as_tensor(weight, device=x.device), torch.as_tensor(bias, device=x.device))
            if i < len(network) - 1:
                y = F.leaky_relu(y, 0.2)
        mixed = alpha * y + (1.0 - alpha) * x
        mixed = mixed * (torch.linalg.vector_norm(x) / torch.linalg.vector_norm(mixed).clamp_min(_EPS))
        # back to the input's statistics and bounds, per channel (see the class docstring)
        dims = (0, 2, 3)
        mean, std = x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True, correction=0)
        m_mean, m_std = mixed.mean(dim=dims, keepdim=True), mixed.std(dim=dims, keepdim=True, correction=0)
        out = (mixed - m_mean) / m_std.clamp_min(_EPS) * std + mean
        return torch.clamp(out, x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Augment ``img``.

        Args:
            img: a channel-first 2-D image ``[C, H, W]`` (torch tensor, MetaTensor or numpy array); not modified.
            randomize: draw new networks first (``False`` reuses the last draw, e.g. for several keys).

        Returns:
            the augmented image, of ``img``'s type, dtype and device; ``img`` itself when not augmented.

        Raises:
            ValueError: when ``img`` is not ``[C, H, W]``.
            RuntimeError: for ``randomize=False`` before any draw.
        """
        _check_2d(img)
        if randomize:
            self.randomize(img)
        if not self._do_transform:
            return img
        if not self._networks:
            raise RuntimeError("RandGIN was called with randomize=False before any randomize().")
        with torch.no_grad():
            x = convert_to_tensor(img, dtype=torch.float32, track_meta=False)[None]
            outs = [self._gin(x, net, a) for net, a in zip(self._networks, self._alphas)]
            if self._control is None:
                result = outs[0]
            else:
                control = torch.as_tensor(self._control, device=x.device)[None, None]
                blend = F.interpolate(control, size=x.shape[-2:], mode="bicubic", align_corners=True)
                blend = blend.clamp(0.0, 1.0)  # bicubic overshoots between control points
                result = blend * outs[0] + (1.0 - blend) * outs[1]
        out, *_ = convert_to_dst_type(result[0], dst=img, dtype=img.dtype)
        return out


class RandGINd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandGIN`, for image keys only (labels are never touched).

    Whether to augment is drawn once per call; each key then gets its own random networks (keys may differ in
    channels and size, which the networks and the blend map depend on).

    Args:
        keys: keys of the images to augment (not the labels).
        prob: probability of augmenting the images of a data dict.
        n_layers: see :class:`RandGIN`.
        n_channels: see :class:`RandGIN`.
        kernel_sizes: see :class:`RandGIN`.
        ipa_prob: see :class:`RandGIN`.
        control_points: see :class:`RandGIN`.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: see :class:`RandGIN`.
    """

    backend = RandGIN.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 1.0,
        n_layers: int = 4,
        n_channels: int = 2,
        kernel_sizes: Sequence[int] = (1, 3),
        ipa_prob: float = 0.5,
        control_points: int = 4,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.gin = RandGIN(1.0, n_layers, n_channels, kernel_sizes, ipa_prob, control_points)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandGINd:
        """Seed this transform and its array transform, as MONAI's random dictionary transforms do.

        Args:
            seed: the seed.
            state: a random state to use instead.

        Returns:
            this transform.
        """
        super().set_random_state(seed, state)
        self.gin.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Augment the images of ``data``.

        Args:
            data: a data dict; not modified.

        Returns:
            a new dict with the augmented images and every other entry as it was.

        Raises:
            ValueError: when an image is not ``[C, H, W]``.
        """
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            if self._do_transform:
                d[key] = self.gin(d[key], randomize=True)
            else:
                _check_2d(d[key])  # a 3-D input fails whatever the draw
        return d
