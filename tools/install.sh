#!/usr/bin/env bash
# Install mmal and its whole stack into the current Python environment: the
# exact set CI tests (requirements/constraints.txt).
#
#   bash tools/install.sh
#
# Order matters: torch first, then mmcv built against it (no build isolation,
# so the build sees this torch), then the OpenMMLab packages and mmal itself.
# Every step installs the ranges mmal declares (requirements/*.txt) held to
# the versions of constraints.txt. Next to an OpenMMLab stack of your own,
# `pip install -e .` alone keeps the versions of it that are in those ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PYTHON:-python}"
PINS=(-c requirements/constraints.txt)
"$PIP" -m pip install "${PINS[@]}" -r requirements/torch.txt -r requirements/build.txt
MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PIP" -m pip install --no-build-isolation "${PINS[@]}" -r requirements/mmcv.txt
"$PIP" -m pip install "${PINS[@]}" -r requirements/runtime.txt -r requirements/tests.txt
if [ -f setup.py ]; then
    # also links mmal/.mim/configs -> configs (`_base_ = 'mmal::...'`)
    "$PIP" -m pip install --no-build-isolation --no-deps -e .
fi
"$PIP" -c "import torch, torchvision, mmcv, mmengine, mmdet, mmpretrain; from mmcv.ops import nms; print('torch', torch.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmpretrain', mmpretrain.__version__)"
