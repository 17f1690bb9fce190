#!/usr/bin/env bash
# Active learning on a Slurm cluster: srun starts one task per GPU, each
# joins the process group with --launcher slurm.
#
#   bash tools/slurm_al_train.sh PARTITION JOB_NAME CONFIG [al_train.py args]
#
# One run on 16 GPUs of two nodes:
#   GPUS=16 bash tools/slurm_al_train.sh gpu isal configs/isal_fcos_voc.py \
#       --work-dir work_dirs/isal_fcos_voc
# An experiment (the other configs and the seeds go among the args):
#   bash tools/slurm_al_train.sh gpu fcos_voc configs/isal_fcos_voc.py \
#       configs/random_fcos_voc.py --seeds 0 1 2
#
# Environment: GPUS (tasks in all, default 8), GPUS_PER_NODE (8),
# CPUS_PER_TASK (5), SRUN_ARGS (more srun options, split on spaces, e.g.
# "--time=2-00:00:00 --qos=normal"), PORT (the master's port, default 29500;
# two jobs sharing a node need different ones). The master is the first
# host of the job unless MASTER_ADDR is set. Rerunning the same command
# continues after the last finished step.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: bash $0 PARTITION JOB_NAME CONFIG [tools/al_train.py args]" >&2
    echo "  env: GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS='' PORT=29500" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
read -r -a EXTRA_SRUN <<< "${SRUN_ARGS:-}"
# fewer tasks than a node holds: no more tasks per node than tasks
if [ "$GPUS" -lt "$GPUS_PER_NODE" ]; then
    GPUS_PER_NODE=$GPUS
fi

# srun passes this environment on to every task
export MASTER_PORT=${MASTER_PORT:-${PORT:-29500}}
export PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-}
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${EXTRA_SRUN[@]+"${EXTRA_SRUN[@]}"} \
    python -u "$(dirname "$0")/al_train.py" \
    "$CONFIG" \
    --launcher slurm "${@:4}"
