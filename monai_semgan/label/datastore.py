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
"""A MONAI Label datastore that reads and writes only inside its studies folder.

MONAI Label's :class:`~monailabel.datastore.local.LocalDatastore` joins the ids it is given to its folders:
``PUT /datastore/image?image=../escaped`` writes next to the studies folder, a tag such as ``../../x`` writes a label
anywhere, and a symbolic link in the studies folder makes the server read (and ``DELETE`` remove) the file it points
to. :class:`ConfinedLocalDatastore` takes ids and tags as names only and answers everything else with a client error
that says why; files (or links) that resolve outside the folder are not part of the datastore.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from fastapi import HTTPException
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.datastore import DefaultLabelTag

__all__ = ["ConfinedLocalDatastore", "check_id", "is_inside"]

logger = logging.getLogger(__name__)

# separators of any platform, control characters (NUL included): an id is a file name, never a path
_NOT_IN_ID = re.compile(r"[/\\\x00-\x1f\x7f]")
_MAX_ID = 200  # leaves room for the extension within the usual 255-byte file name limit


def check_id(value: Any, what: str = "image id") -> str:
    """``value`` if it is a datastore id (or label tag): a plain file name without its extension.

    Args:
        value: the id from the request.
        what: how the error names it (``"image id"``, ``"label tag"``).

    Returns:
        ``value``.

    Raises:
        HTTPException: 422 for an empty id, a path (separators, absolute, ``.`` / ``..``), a name starting with a dot,
            control characters or an overlong name.
    """
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(status_code=422, detail=f"{what} is empty.")
    if _NOT_IN_ID.search(value) or value.startswith(".") or os.path.isabs(value) or len(value) > _MAX_ID:
        raise HTTPException(
            status_code=422,
            detail=f"{what} {value!r} is not a plain name: ids and tags are file names without a folder (no '/', '\\', "
            f"leading '.' or control characters, at most {_MAX_ID} characters).",
        )
    return value


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path``, with every symbolic link resolved, lies inside ``folder`` (also resolved)."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


class ConfinedLocalDatastore(LocalDatastore):
    """:class:`~monailabel.datastore.local.LocalDatastore` confined to its folder.

    - Ids and tags are checked with :func:`check_id` (422); an unknown image or label is a 404.
    - Files (and links) that resolve outside the studies folder are left out of the datastore, with a warning in the
      log; an entry that resolves outside later is refused with a 403.
    - Uploads are written only as new regular files inside the folder, with one of the datastore's extensions (422
      otherwise); an existing link is never written through (409).

    Takes the arguments of :class:`~monailabel.datastore.local.LocalDatastore`.
    """

    def __init__(self, datastore_path: str, *args: Any, **kwargs: Any) -> None:
        # set before the parent's __init__, which already lists the folder
        self._root = os.path.realpath(datastore_path)
        self._warned: set[str] = set()
        super().__init__(datastore_path, *args, **kwargs)

    # --- what the folder holds -----------------------------------------------------------------------------------

    def _list_files(self, path: str, patterns: Any) -> dict[str, str]:
        """The parent's listing without files whose real path is outside the studies folder."""
        files = super()._list_files(path, patterns)
        kept = {}
        for name, file in files.items():
            full = os.path.join(path, file)
            if is_inside(full, self._root) and not name.startswith("."):
                kept[name] = file
            elif full not in self._warned:
                self._warned.add(full)
                logger.warning(f"{full}: resolves outside the studies folder {self._root} (a link?); not served.")
        return kept

    def _remove_non_existing(self) -> int:
        """The parent's clean-up, then entries (from an older ``datastore_v2.json``, say) whose id is not a plain name
        or whose files resolve outside the folder are dropped too."""
        count = super()._remove_non_existing()
        objects = self._datastore.objects
        for image_id in list(objects):
            if not self._entry_is_confined(image_id):
                logger.warning(f"datastore entry {image_id!r} is not a plain name inside {self._root}; dropped.")
                del objects[image_id]
                count += 1
        return count

    def _entry_is_confined(self, image_id: str) -> bool:
        try:
            check_id(image_id)
        except HTTPException:
            return False
        obj = self._datastore.objects[image_id]
        paths = [os.path.join(self._datastore.image_path(), self._filename(image_id, obj.image.ext))]
        for tag, label in obj.labels.items():
            if not isinstance(tag, str) or _NOT_IN_ID.search(tag) or tag.startswith("."):
                return False
            paths.append(os.path.join(self._datastore.label_path(tag), self._filename(image_id, label.ext)))
        return all(is_inside(p, self._root) for p in paths)

    def _confined(self, uri: str, what: str) -> str:
        if uri and not is_inside(uri, self._root):
            raise HTTPException(status_code=403, detail=f"{what} resolves outside the studies folder; not served.")
        return uri

    def _require_image(self, image_id: str) -> None:
        check_id(image_id)
        if image_id not in self._datastore.objects:
            raise HTTPException(status_code=404, detail=f"image {image_id!r} is not in the datastore.")

    def _check_upload(self, filename: str, dest: str, what: str) -> None:
        """An upload lands as a new regular file inside the folder, with one of the datastore's extensions."""
        extensions = [e.replace("*", "") for e in self._extensions]
        if not any(filename.endswith(e) for e in extensions):
            raise HTTPException(
                status_code=422, detail=f"{what}: the datastore takes {', '.join(extensions)} files only."
            )
        if os.path.islink(dest) or (os.path.exists(dest) and not os.path.isfile(dest)):
            raise HTTPException(
                status_code=409, detail=f"{what}: the datastore file is a link or a folder; not replaced."
            )
        if not is_inside(os.path.dirname(dest), self._root):
            raise HTTPException(status_code=403, detail=f"{what}: would be written outside the studies folder.")

    # --- reads ---------------------------------------------------------------------------------------------------

    def get_image_uri(self, image_id: str) -> str:
        """The image's file; ``""`` for an unknown id.

        Raises:
            HTTPException: 422 for an id that is not a plain name, 403 for a file outside the studies folder.
        """
        check_id(image_id)
        return self._confined(super().get_image_uri(image_id), f"image {image_id!r}")

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        """The label's file; ``""`` for an unknown id or tag.

        Raises:
            HTTPException: 422 for an id or tag that is not a plain name, 403 for a file outside the studies folder.
        """
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        return self._confined(super().get_label_uri(label_id, label_tag), f"label {label_id!r} ({label_tag})")

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        """The image's info (``{}`` for an unknown id); 422 for an id that is not a plain name."""
        check_id(image_id)
        return super().get_image_info(image_id)

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        """The label's info (``{}`` for an unknown one); 422 for an id or tag that is not a plain name."""
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        return super().get_label_info(label_id, label_tag)

    # --- writes --------------------------------------------------------------------------------------------------

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        """Copy an uploaded image into the folder as ``<image_id><ext>``.

        Raises:
            HTTPException: 422 for a bad id or file type, 409 where the file would replace a link or a folder.
        """
        derived, ext = self._to_id(os.path.basename(image_filename))
        image_id = check_id(image_id or derived)
        dest = os.path.join(self._datastore.image_path(), self._filename(image_id, ext))
        self._check_upload(image_filename, dest, f"image {image_id!r}")
        return super().add_image(image_id, image_filename, image_info)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Copy an uploaded label into ``labels/<tag>/<image_id><ext>``.

        Raises:
            HTTPException: 422 for a bad id, tag or file type, 404 for an unknown image, 409 where the file would
                replace a link or a folder.
        """
        self._require_image(image_id)
        label_tag = check_id(label_tag or DefaultLabelTag.FINAL.value, "label tag")
        _, ext = self._to_id(os.path.basename(label_filename))
        dest = os.path.join(self._datastore.label_path(label_tag), self._filename(image_id, ext))
        self._check_upload(label_filename, dest, f"label of {image_id!r} ({label_tag})")
        return super().save_label(image_id, label_filename, label_tag, label_info)

    def remove_image(self, image_id: str) -> None:
        """Remove an image and its labels: 422 for a bad id, 404 for an unknown one, 403 outside the folder."""
        self._require_image(image_id)
        self.get_image_uri(image_id)  # 403 for a file that now resolves outside
        for tag in list(self._datastore.objects[image_id].labels):
            self.get_label_uri(image_id, tag)
        super().remove_image(image_id)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        """Remove a label: 422 for a bad id or tag, 404 for an unknown label, 403 outside the folder."""
        if not self.get_label_uri(label_id, label_tag):
            raise HTTPException(status_code=404, detail=f"label {label_id!r} ({label_tag}) is not in the datastore.")
        super().remove_label(label_id, label_tag)

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        """Update an image's info: 422 for a bad id, 404 for an unknown one."""
        self._require_image(image_id)
        super().update_image_info(image_id, info)

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        """Update a label's info: 422 for a bad id or tag, 404 for an unknown label."""
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        if not self._datastore.label(label_id, label_tag):
            raise HTTPException(status_code=404, detail=f"label {label_id!r} ({label_tag}) is not in the datastore.")
        super().update_label_info(label_id, label_tag, info)
