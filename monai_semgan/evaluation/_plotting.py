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
"""matplotlib, an optional extra: imported only when a figure is drawn, with one clear error where it is missing.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (no ``pyplot``), so drawing one never switches the backend
or touches the figures of a notebook the caller has open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monai_semgan.atomic_write import atomic_path

__all__ = ["new_figure", "save_figure"]


def new_figure(**kwargs: Any) -> Any:
    """A new ``matplotlib.figure.Figure`` that belongs to no ``pyplot`` state.

    Args:
        kwargs: arguments of ``Figure`` (e.g. ``figsize``).

    Returns:
        the figure.

    Raises:
        ImportError: when matplotlib is not installed (the message says how to install it).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "monai_semgan.evaluation: plots need matplotlib, an optional dependency; install it with "
            "`pip install matplotlib` or `pip install monai-semgan[benchmarks]`."
        ) from err
    return Figure(**kwargs)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically (a reader never sees half a file); the folder is created.

    Args:
        fig: the figure.
        path: the PNG file.
        dpi: resolution.

    Returns:
        the path written.
    """
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path
