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
"""A SimpleITK-backed ``monai.data.ImageReader``: any SimpleITK format, and DICOM series folders.

MONAI ships readers for ITK, nibabel, pydicom and PIL but none for SimpleITK, whose DICOM support (GDCM, with
JPEG-2000 and JPEG-lossless decoders) reads compressed series that pydicom needs plugins for. The metadata follows
MONAI's ``ITKReader``: array in ITK index order (x, y, z; ``reverse_indexing=False``), ``affine`` and
``original_affine`` in RAS, ``spatial_shape``, ``spacing``, ``original_channel_dim``, ``space``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from monai.config import PathLike
from monai.data import ImageReader
from monai.data.utils import orientation_ras_lps
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

__all__ = ["SimpleITKReader", "list_dicom_series"]


def list_dicom_series(folder: PathLike) -> dict[str, list[str]]:
    """DICOM series in a folder (not recursive).

    Args:
        folder: a folder of DICOM files.

    Returns:
        SeriesInstanceUID -> file names sorted by slice position (GDCM's order).
    """
    reader = sitk.ImageSeriesReader()
    uids = reader.GetGDCMSeriesIDs(str(folder)) or ()
    return {uid: list(reader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in uids}


class SimpleITKReader(ImageReader):
    """Read images with SimpleITK; a folder is read as a DICOM series.

    Use it as ``LoadImaged(keys, reader=SimpleITKReader())`` or, in bundle JSON,
    ``{"_target_": "LoadImaged", "keys": "image", "reader": "$monai_semgan.data.SimpleITKReader()"}``.

    Args:
        series_uid: SeriesInstanceUID to read when a folder holds several series; without it such a folder is an
            error that lists the series found.
        channel_dim: channel axis of the data, as in MONAI's readers; ``None``: no channel for scalar images, last
            axis for vector images.
        affine_lps_to_ras: report the affine in RAS (MONAI's convention, as ``NibabelReader``), else in ITK's LPS.
        dtype: cast the array to this dtype (``None`` keeps the stored type, e.g. int16 HU).
    """

    def __init__(
        self,
        series_uid: str | None = None,
        channel_dim: int | None = None,
        affine_lps_to_ras: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.series_uid = series_uid
        self.channel_dim = channel_dim
        self.affine_lps_to_ras = affine_lps_to_ras
        self.dtype = dtype

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """SimpleITK guesses formats from content; every file or folder is worth a try."""
        return True

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs: Any) -> sitk.Image | list[sitk.Image]:
        """Read one path or several (stacked as channels by :meth:`get_data`).

        Args:
            data: file or DICOM folder path(s).
            kwargs: unused (kept for the ``ImageReader`` interface).

        Returns:
            a ``SimpleITK.Image`` or a list of them.

        Raises:
            FileNotFoundError: when a path does not exist or a folder holds no readable DICOM.
            ValueError: when a folder holds several series and none was chosen, or the chosen one is absent, or a
                file cannot be decoded (the message names the file).
        """
        images = [self._read_one(Path(os.fspath(name))) for name in ensure_tuple(data)]
        return images if len(images) > 1 else images[0]

    def _read_one(self, path: Path) -> sitk.Image:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder.")
        if path.is_dir():
            series = list_dicom_series(path)
            if not series:
                raise FileNotFoundError(f"{path}: folder holds no readable DICOM series.")
            if self.series_uid is not None:
                if self.series_uid not in series:
                    raise ValueError(f"{path}: no series {self.series_uid}; series found: {', '.join(series)}.")
                files = series[self.series_uid]
            elif len(series) > 1:
                listing = "; ".join(f"{uid} ({len(files)} files)" for uid, files in series.items())
                raise ValueError(f"{path}: holds {len(series)} DICOM series, choose one with series_uid: {listing}.")
            else:
                files = next(iter(series.values()))
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            try:
                return reader.Execute()
            except RuntimeError as err:
                raise ValueError(f"{path}: cannot read DICOM series: {str(err).strip().splitlines()[-1]}") from err
        try:
            return sitk.ReadImage(str(path))
        except RuntimeError as err:
            raise ValueError(f"{path}: cannot read image: {str(err).strip().splitlines()[-1]}") from err

    def get_data(self, img: sitk.Image | Sequence[sitk.Image]) -> tuple[np.ndarray, dict]:
        """Array (ITK index order, channels last for vector pixels) and MONAI metadata.

        Args:
            img: image(s) from :meth:`read`; several are stacked on a new first axis and must share geometry.

        Returns:
            ``(array, metadata)``.

        Raises:
            ValueError: when stacked images differ in shape or affine.
        """
        arrays, metas = [], []
        # a SimpleITK image is itself iterable (over pixels), so ensure_tuple would unpack it
        for image in [img] if isinstance(img, sitk.Image) else list(img):
            array = sitk.GetArrayViewFromImage(image)
            ndim = image.GetDimension()
            # SimpleITK gives (z, y, x[, c]); MONAI's ITK reader convention is (x, y, z[, c])
            order = tuple(range(ndim - 1, -1, -1)) + ((ndim,) if array.ndim > ndim else ())
            array = np.ascontiguousarray(array.transpose(order))
            if self.dtype is not None:
                array = array.astype(self.dtype, copy=False)
            arrays.append(array)
            metas.append(self._metadata(image, array))
        if len(arrays) == 1:
            return arrays[0], metas[0]
        first = metas[0]
        for meta in metas[1:]:
            if not np.array_equal(meta[MetaKeys.SPATIAL_SHAPE], first[MetaKeys.SPATIAL_SHAPE]) or not np.allclose(
                meta[MetaKeys.AFFINE], first[MetaKeys.AFFINE], atol=1e-4
            ):
                raise ValueError("images stacked as channels must share shape and affine.")
        first[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.stack(arrays, axis=0), first

    def _metadata(self, image: sitk.Image, array: np.ndarray) -> dict:
        ndim = image.GetDimension()
        spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(ndim, ndim)
        affine = np.eye(ndim + 1)
        affine[:ndim, :ndim] = direction @ np.diag(spacing)
        affine[:ndim, -1] = image.GetOrigin()
        if self.affine_lps_to_ras:
            affine = orientation_ras_lps(affine)
        meta: dict[str, Any] = {
            key: image.GetMetaData(key) for key in image.GetMetaDataKeys() if not key.startswith("ITK_")
        }
        meta["spacing"] = spacing
        meta[MetaKeys.ORIGINAL_AFFINE] = affine
        meta[MetaKeys.AFFINE] = affine.copy()
        meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(image.GetSize())
        meta[MetaKeys.SPACE] = SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS
        if self.channel_dim is not None:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
        else:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan") if array.ndim == ndim else -1
        return meta
