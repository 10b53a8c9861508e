"""The bundle's true/false settings read ``--key false`` from the command line as false.

``python -m monai.bundle run`` parses its options with Fire, which keeps ``false`` and ``true`` as strings (only
``False`` and ``True`` become booleans); a bare ``"false"`` is truthy, so ``--resume false`` used to resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fire import parser as fire_parser
from monai.bundle import ConfigParser
from monai.transforms import KeepLargestConnectedComponentd

from monai_semgan.engines import parse_amp

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bundles" / "liver_ct" / "configs"
RUNNABLE = [
    "train.json",
    "train_encoder.json",
    "train_unet.json",
    "train_unet_dg.json",
    "evaluate.json",
    "inference.json",
]
# overlays (MONAI's list syntax, --config_file "['train.json','train_encoder.json']")
OVERLAYS = {
    "evaluate.json": ["inference.json", "evaluate.json"],
    "train_encoder.json": ["train.json", "train_encoder.json"],
    "train_unet.json": ["train.json", "train_unet.json"],
    "train_unet_dg.json": ["train.json", "train_unet.json", "train_unet_dg.json"],
}


def _files(config: str) -> list[str]:
    return [str(CONFIGS / name) for name in OVERLAYS.get(config, [config])]


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _parser(config: str, **overrides: object) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(_files(config))
    parser["bundle_root"] = str(ROOT / "bundles" / "liver_ct")
    for key, value in overrides.items():
        parser[key] = value
    return parser


def test_fire_keeps_lowercase_false_as_a_string() -> None:
    """The premise: what ``--resume false`` delivers to the config."""
    assert fire_parser.DefaultParseValue("false") == "false"
    assert fire_parser.DefaultParseValue("False") is False


@pytest.mark.parametrize("config", RUNNABLE)
def test_every_use_of_a_boolean_setting_goes_through_str2bool(config: str) -> None:
    """A top-level true/false setting is only ever read as ``monai.utils.str2bool(@key)``."""
    content: dict = {}
    for path in _files(config):
        content.update(json.loads(Path(path).read_text(encoding="utf-8")))
    flags = [k for k, v in content.items() if isinstance(v, bool)]
    assert flags, f"{config}: no boolean settings"
    for text in _strings(content):
        for key in flags:
            for match in re.finditer(rf"@{key}\b(?!#)", text):
                assert text[: match.start()].endswith("str2bool("), f"{config}: {text!r} reads @{key} raw"


@pytest.mark.parametrize("config", ["train.json", "train_encoder.json", "train_unet.json", "train_unet_dg.json"])
@pytest.mark.parametrize(("given", "expected"), [("false", False), ("False", False), (False, False), ("true", True)])
def test_resume_reads_command_line_strings(config: str, given: object, expected: bool) -> None:
    parser = _parser(config, resume=given)
    assert parser.get_parsed_content("handlers#0#enabled") is expected


def test_training_flags_read_command_line_strings() -> None:
    # amp is a precision setting (auto / bf16 / fp16 / off) that also takes true / false, as the engines parse it
    for config, given, mode in (("train.json", "false", "off"), ("train_encoder.json", "true", "bf16")):
        value = _parser(config, amp=given).get_parsed_content("trainer#amp")
        assert value == given and parse_amp(value) == mode
    assert parse_amp(_parser("train.json").get_parsed_content("trainer#amp")) == "auto"
    for given, expected in (("true", True), ("false", False)):
        assert _parser("train.json", reuse_fakes=given).get_parsed_content("trainer#reuse_fakes") is expected


def test_a_misspelt_flag_is_refused_with_the_expected_values() -> None:
    """The command line's traceback names the setting (the failed expression) and the accepted spellings."""
    with pytest.raises(RuntimeError, match="str2bool.*resume") as error:
        _parser("train.json", resume="flase").get_parsed_content("handlers#0#enabled")
    assert isinstance(error.value.__cause__, ValueError)
    assert re.search("flase.*expected a value from.*false", str(error.value.__cause__))


@pytest.mark.parametrize("config", ["evaluate.json", "inference.json"])
def test_segmentation_flags_read_command_line_strings(config: str, tmp_path: Path) -> None:
    def postprocessing(**flags: object) -> list[type]:
        # resolution and label channels come from the model file: state them so no model is needed here
        parser = _parser(config, output_dir=str(tmp_path), resolution=16, label_channels=1, **flags)
        return [type(t) for t in parser.get_parsed_content("postprocessing").transforms]

    assert KeepLargestConnectedComponentd in postprocessing()
    assert KeepLargestConnectedComponentd not in postprocessing(keep_largest_component="false")
    parser = _parser(config, optimize_noise="false")
    assert parser.get_parsed_content("network_def#optimize_noise") is False
