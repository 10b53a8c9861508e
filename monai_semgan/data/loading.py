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
"""Loading volumes with the right reader per path, and errors that name the file.

NIfTI files go through MONAI's nibabel reader; DICOM series folders and other formats through
:class:`~monai_semgan.data.sitk_reader.SimpleITKReader`. MONAI wraps every failure inside a ``Compose`` as
``RuntimeError("applying transform ...")``; :func:`unwrap_transform_error` digs out the error that says what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path

from monai.config import KeysCollection
from monai.transforms import LoadImage, MapTransform

from monai_semgan.data.sitk_reader import SimpleITKReader

__all__ = ["LoadVolumed", "source_filename", "unwrap_transform_error"]


def source_filename(data: Mapping, key: Hashable) -> str:
    """The file a loaded item came from (its MetaTensor's ``filename_or_obj``), or the key when unknown; for errors."""
    meta = getattr(data[key], "meta", None) or data.get(f"{key}_meta_dict", {})
    return str(meta.get("filename_or_obj", key)) if isinstance(meta, Mapping) else str(key)


def unwrap_transform_error(err: BaseException) -> BaseException:
    """The first error in ``err``'s cause chain that is not MONAI's ``"applying transform ..."`` wrapper."""
    current: BaseException | None = err
    while current is not None:
        if not (isinstance(current, RuntimeError) and str(current).startswith("applying transform")):
            return current
        current = current.__cause__
    return err


class LoadVolumed(MapTransform):
    """Load each key's path (file or DICOM folder) as a MetaTensor; failures raise ``ValueError`` naming the file.

    Args:
        keys: keys holding paths.
        allow_missing_keys: skip missing keys (the label of unlabeled cases).
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self._nifti = LoadImage(reader="NibabelReader", image_only=True)
        self._sitk = LoadImage(reader=SimpleITKReader(), image_only=True)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            path = Path(os.fspath(d[key]))
            is_nifti = path.is_file() and (path.name.endswith(".nii") or path.name.endswith(".nii.gz"))
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such file or folder (key {key!r}).")
            try:
                d[key] = (self._nifti if is_nifti else self._sitk)(path)
            except (ValueError, FileNotFoundError):
                raise
            except Exception as err:  # nibabel and zlib raise many kinds; say which file and why
                root: BaseException = err
                while root.__cause__ or root.__context__:
                    root = root.__cause__ or root.__context__  # type: ignore[assignment]
                message = str(root).strip().splitlines()
                detail = f"{type(root).__name__}: {message[0]}" if message else type(root).__name__
                raise ValueError(f"{path}: cannot read this file ({detail}).") from err
        return d
