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
"""Start MONAI Label serving a SemanticGAN bundle:

    python -m monai_semgan.label --studies DIR --bundle bundles/liver_ct [--port 8000] [--host 127.0.0.1]

It writes a small app folder (``--workspace``, default ``~/.cache/monai_semgan/label_app/<model name>``; MONAI
Label keeps its logs, and the datastore-trained models, there) whose ``main.py`` imports
:class:`~monai_semgan.label.SemanticGanLabelApp`, then replaces itself with ``monailabel start_server`` with the right
``--app`` and ``--conf`` pairs. Nothing is downloaded. The server listens on 127.0.0.1 only unless ``--host`` says
otherwise; ``docs/monailabel.md`` says what exposing it means.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path

from monailabel.config import settings

from monai_semgan.atomic_write import atomic_path
from monai_semgan.data.labels import parse_label_values
from monai_semgan.label.infer_task import served_model_name

_MAIN_PY = '''"""MONAI Label app folder written by `python -m monai_semgan.label`; the app lives in the package."""

from monai_semgan.label.app import SemanticGanLabelApp  # noqa: F401  (MONAI Label finds it here)
'''


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_command(argv: list[str] | None = None) -> list[str]:
    """Parse the launcher's arguments, prepare the app folder, and return the ``monailabel start_server`` command.

    Raises:
        SystemExit: on bad arguments (argparse), a missing studies folder or a folder that is not a bundle.
    """
    parser = argparse.ArgumentParser(prog="python -m monai_semgan.label", description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", required=True, help="datastore folder of images (NIfTI / DICOM)")
    parser.add_argument("--bundle", default="bundles/liver_ct", help="the SemanticGAN bundle folder")
    parser.add_argument("--model", default="", help="segmenter weights (default: the shipped <bundle>/models/model.pt)")
    parser.add_argument("--model_name", default="", help="served model name (default: from the bundle's metadata)")
    parser.add_argument("--workspace", default="", help="app folder for MONAI Label's logs and trained models")
    parser.add_argument(
        "--host", default="127.0.0.1", help="0.0.0.0 accepts other machines: put authentication in front (docs)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ssl_keyfile", default="", help="TLS key file (with --ssl_certfile: serve https)")
    parser.add_argument("--ssl_certfile", default="", help="TLS certificate file")
    parser.add_argument("--modality", default="mri", choices=("mri", "ct"))
    parser.add_argument("--mode", default="quick", choices=("quick", "optimize"), help="inference mode")
    parser.add_argument("--optimize_steps", type=int, default=100)
    parser.add_argument(
        "--label_values", default="1", help="which datastore label values are the liver: 6, [1,2], {6:1} or btcv, ..."
    )
    parser.add_argument("--gan_iterations", type=int, default=600, help="GAN iterations per /train request")
    parser.add_argument("--encoder_iterations", type=int, default=400, help="encoder iterations per /train request")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="bundle config overrides")
    parser.add_argument("--dryrun", action="store_true", help="print the command instead of starting the server")
    args = parser.parse_args(argv)

    studies = Path(args.studies).expanduser().resolve()
    if not studies.is_dir():
        parser.error(f"{studies}: studies folder not found.")
    bundle = Path(args.bundle).expanduser().resolve()
    if not (bundle / "configs" / "inference.json").is_file():
        parser.error(f"{bundle}: not a bundle folder (no configs/inference.json).")
    try:
        label_values = parse_label_values(args.label_values)
        model_name = served_model_name(bundle, args.model_name)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if bool(args.ssl_keyfile) != bool(args.ssl_certfile):
        parser.error("--ssl_keyfile and --ssl_certfile go together.")
    overrides = {"mode": args.mode, "optimize_steps": args.optimize_steps}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set takes KEY=VALUE, got {item!r}.")
        key, text = item.split("=", 1)
        overrides[key] = _value(text)
    cache = Path(os.environ.get("MONAI_SEMGAN_CACHE", Path.home() / ".cache" / "monai_semgan"))
    workspace = Path(args.workspace).expanduser().resolve() if args.workspace else cache / "label_app" / model_name
    workspace.mkdir(parents=True, exist_ok=True)
    with atomic_path(workspace / "main.py") as tmp:
        tmp.write_text(_MAIN_PY)
    conf = {
        "bundle": str(bundle),
        "model_name": model_name,
        "overrides": json.dumps(overrides),
        "modality": args.modality,
        "label_values": json.dumps(label_values),
        "gan_iterations": str(args.gan_iterations),
        "encoder_iterations": str(args.encoder_iterations),
    }
    if args.model:
        conf["model"] = str(Path(args.model).expanduser().resolve())
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(workspace), "--studies", str(studies)]
    for key, value in conf.items():
        cmd += ["--conf", key, value]
    for key in ("ssl_keyfile", "ssl_certfile"):
        if getattr(args, key):
            cmd += [f"--{key}", str(Path(getattr(args, key)).expanduser().resolve())]
    cmd += ["--host", args.host, "--port", str(args.port)]
    if not _is_loopback(args.host) and not settings.MONAI_LABEL_AUTH_ENABLE:
        # anyone who reaches the port may read and write the datastore and start training
        print(
            f"warning: serving on {args.host}:{args.port} without authentication (MONAI_LABEL_AUTH_ENABLE is not "
            "set): anyone who can reach this port can read and change the datastore and start training. See "
            "docs/monailabel.md, 'Exposing the server'.",
            file=sys.stderr,
        )
    if args.dryrun:
        print(" ".join(cmd))
        raise SystemExit(0)
    return cmd


def main(argv: list[str] | None = None) -> None:
    """Start the server (this process becomes ``monailabel start_server``)."""
    cmd = build_command(argv)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
