#!/usr/bin/env bash
# Install mmal and its whole stack into the current Python environment.
#
#   bash tools/install.sh
#
# Order matters: torch first, then mmcv built against it (no build isolation,
# so the build sees this torch), then the OpenMMLab packages and mmal itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PYTHON:-python}"
"$PIP" -m pip install -r requirements/torch.txt -r requirements/build.txt
MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PIP" -m pip install --no-build-isolation -r requirements/mmcv.txt
"$PIP" -m pip install -r requirements/runtime.txt -r requirements/tests.txt
if [ -f setup.py ]; then
    "$PIP" -m pip install --no-build-isolation --no-deps -e .
fi
"$PIP" -c "import torch, torchvision, mmcv, mmengine, mmdet, mmpretrain; from mmcv.ops import nms; print('torch', torch.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmpretrain', mmpretrain.__version__)"
