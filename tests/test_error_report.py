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
"""The one-line error report: the root error is found under MONAI's real wrappers (a bundle config evaluated by
ConfigParser, a transform in Compose), and a real interpreter prints one line, or the traceback in debug mode."""

from __future__ import annotations

import subprocess
import sys

import pytest
from monai.bundle import ConfigParser
from monai.transforms import Compose, Lambda

from monai_semgan.error_report import DEBUG_ENV, one_line, root_error


def _raise(error: BaseException):
    raise error


def test_the_root_error_is_dug_out_of_monais_config_and_transform_wrappers() -> None:
    parser = ConfigParser({"value": "$monai_semgan.settings.check_settings(batch_size=0)", "imports": []})
    parser.config["imports"] = ["$import monai_semgan"]
    with pytest.raises(RuntimeError, match="Failed to evaluate") as info:
        parser.get_parsed_content("value")
    assert one_line(info.value) == (
        "setting batch_size = 0: must be a positive integer (--batch_size on the command line)."
    )

    transform = Compose([Lambda(lambda d: _raise(FileNotFoundError("/x/a.nii.gz: no such file")))])
    with pytest.raises(RuntimeError, match="applying transform") as info:
        transform({"image": 1})
    assert isinstance(root_error(info.value), FileNotFoundError)
    assert one_line(info.value) == "/x/a.nii.gz: no such file"


def test_an_unexpected_error_keeps_its_type_and_a_message_becomes_one_line() -> None:
    assert one_line(TypeError("bad\n  operand")) == "TypeError: bad operand"
    assert one_line(KeyError("missing key")) == "KeyError: missing key"
    wrapped = RuntimeError("Failed to evaluate ConfigExpression")
    wrapped.__cause__ = ValueError("x.nii.gz: not 3-D")
    assert one_line(wrapped) == "x.nii.gz: not 3-D"


SCRIPT = """
import sys
from monai_semgan.error_report import install_error_report
install_error_report(sys.argv[1])
try:
    raise ValueError("/data/a.nii.gz: a 2-D image; expected a 3-D volume")
except ValueError as err:
    raise RuntimeError("Failed to evaluate ConfigExpression: $@run") from err
"""


@pytest.mark.parametrize("debug, env", [("false", ""), ("true", ""), ("false", "1")])
def test_a_real_interpreter_prints_one_line_unless_debugging(debug: str, env: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, debug], capture_output=True, text=True, env={DEBUG_ENV: env}, timeout=120
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    if debug == "false" and not env:
        assert lines == [
            f"(traceback: run again with --debug true or {DEBUG_ENV}=1)",
            "error: /data/a.nii.gz: a 2-D image; expected a 3-D volume",
        ]
    else:
        assert lines[0] == "Traceback (most recent call last):" and "Failed to evaluate" in lines[-1]
