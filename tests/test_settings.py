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
"""check_settings: the shipped configs' own settings_check passes with their defaults (every setting they check has
a rule), and a bad value is refused with the setting named and what it must be."""

from __future__ import annotations

from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from monai_semgan.settings import SETTING_RULES, check_settings

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "liver_ct" / "configs"


COMBINATIONS = [
    ["train.json"],
    ["train.json", "train_paper.json"],
    ["train.json", "train_encoder.json"],
    ["train.json", "train_unet.json"],
    ["train.json", "train_unet.json", "train_unet_dg.json"],
    ["inference.json"],
    ["inference.json", "evaluate.json"],
]


@pytest.mark.parametrize("names", COMBINATIONS, ids=lambda names: "+".join(n[:-5] for n in names))
def test_the_shipped_defaults_pass_their_configs_settings_check(names: list[str]) -> None:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in names])
    if "train_encoder.json" in names:
        parser["resolution"] = 64  # read from the GAN's model file, which this test does not train
    checked = parser.get_parsed_content("settings_check")  # check_settings itself, with the config's values
    assert set(checked) <= set(SETTING_RULES)
    assert {"modality", "ct_window", "mri_percentiles"} <= set(checked)
    if names[0] == "train.json":
        assert {"resolution", "batch_size", "iterations", "label_values", "learning_rate"} <= set(checked)
    if "train_unet.json" in names:
        assert {"weight_decay", "time_limit_s"} <= set(checked)
    if names[-1] == "train_unet_dg.json":
        assert {"gin_layers", "gin_channels", "ipa_prob"} <= set(checked)
    if names[-1] == "evaluate.json":
        assert {"label_values", "threshold"} <= set(checked)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("resolution", 63, "setting resolution = 63: must be a power of two from 8 to 1024"),
        ("resolution", 2048, "a power of two from 8 to 1024"),
        ("batch_size", 0, "setting batch_size = 0: must be a positive integer"),
        ("batch_size", 2.0, "setting batch_size = 2.0"),
        ("batch_size", True, "setting batch_size = True"),
        ("iterations", "600", "setting iterations = '600'"),
        ("fg_ratio", 1.5, "setting fg_ratio = 1.5: must be a number from 0 to 1"),
        ("learning_rate", 0, "must be a positive number"),
        ("learning_rate", float("nan"), "must be a positive number"),
        ("modality", "CT", 'must be "ct" or "mri"'),
        ("num_labeled", -2, "-1 for every labeled case"),
        ("ct_window", [50, 0], "[level, width] in HU with a positive width"),
        ("mri_percentiles", [99, 1], "0 <= lower < upper <= 100"),
        ("checkpoints_kept", 0, "or null to keep every checkpoint"),
        ("time_limit_s", -1, "seconds, or null"),
        ("gin_layers", 0, "setting gin_layers = 0: must be a positive integer"),
        ("ipa_prob", 1.5, "setting ipa_prob = 1.5: must be a number from 0 to 1"),
    ],
)
def test_a_bad_value_names_the_setting_and_what_it_must_be(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_settings(**{name: value})
    assert message in str(info.value) and f"(--{name} on the command line)" in str(info.value)


def test_label_values_report_their_own_message() -> None:
    check_settings(label_values="btcv")
    check_settings(label_values=[1, 2])
    with pytest.raises(ValueError, match="label_values 'nope': expected a value"):
        check_settings(label_values="nope")


def test_a_setting_without_a_rule_is_a_config_mistake() -> None:
    with pytest.raises(KeyError, match="no rule for the setting 'resolutoin'"):
        check_settings(resolutoin=64)
