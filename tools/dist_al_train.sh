#!/usr/bin/env bash
# Active learning on several processes (one per GPU; gloo on CPU):
#   bash tools/dist_al_train.sh CONFIG GPUS [al_train.py args]
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR (and the
# same PORT) set, e.g. NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 ...
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG GPUS [tools/al_train.py args]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/al_train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
