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
"""Speed and quality benchmarks of monai_semgan (not part of the installed package).

Run each script as a module from the repository root, e.g. ``python -m benchmarks.train_step --config cpu``; the
scripts import each other as ``benchmarks.<name>`` and the evaluation helpers from :mod:`monai_semgan.evaluation`.
Results and how they were obtained are in ``docs/benchmarks.md``.
"""
