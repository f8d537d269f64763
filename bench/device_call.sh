#!/usr/bin/env bash
# One self-contained call on the GPU machine (the `device` tool's `run`, carrying .whl and
# .whl_mlflow), safe to repeat: install the carried wheels, rebuild the DetailVerse set unless this
# machine already has it, train the shape VAE (resuming the run this machine already has) in the
# foreground until BUDGET seconds after the call began less RESERVE for the end (the trainer's
# --time-limit checkpoints and stops; the final validation, when the run ends in this call, and the
# packing fit in RESERVE), then pack into $OUT what must come back: the logs, the MLflow store
# without model artifacts, the last checkpoint's EMA weights in fp16 split in 15 MB parts. Nothing
# is left running: the machine is given back 30 s after a call, and a gap before the next call
# loses it (then the next call starts over).
#
#     VAE_STEPS=8000 VAE_VAL_EVERY=4000 BUDGET=570 bash bench/device_call.sh
set -u
began=$SECONDS
[ -f /tmp/site/.done ] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl .whl_mlflow/*.whl && touch /tmp/site/.done; } || exit 1
export PYTHONPATH=/tmp/site:$PWD GIT_PYTHON_REFRESH=quiet PYTHONUNBUFFERED=1
export WORK=/tmp/camp HI3DGEN_STATE=/tmp/camp/state COUNT=${COUNT:-2000} VIEWS=${VIEWS:-4} RESOLUTION=${RESOLUTION:-256}
export BACKEND=${BACKEND:-embree} VAE_STEPS=${VAE_STEPS:-8000} VAE_VAL_EVERY=${VAE_VAL_EVERY:-4000} EXTRA=--no-compile
BUDGET=${BUDGET:-570} RESERVE=${RESERVE:-110}
mkdir -p /tmp/camp/out
rm -f /tmp/camp/out/campaign.log
# the rebuild (unless this machine has the set) runs first: the VAE's time limit is what is left after it
[ -f /tmp/camp/out/rebuild.json ] || timeout $((BUDGET - RESERVE)) bash bench/campaign.sh /tmp/camp/out rebuild
left=$((BUDGET - RESERVE - (SECONDS - began)))
echo "[device_call] $((SECONDS - began)) s in, ${left} s of VAE training"
[ "$left" -gt 30 ] && VAE_FLAGS="--time-limit $left" timeout $((BUDGET - 20 - (SECONDS - began))) bash bench/campaign.sh /tmp/camp/out vae
cp /tmp/camp/out/campaign.log /tmp/camp/out/rebuild.txt /tmp/camp/runs/vae.log "$OUT"/ 2>/dev/null
tar -czf "$OUT/mlflow.tgz" -C /tmp/camp --exclude='*/model/*' --exclude='*.pt' state
python3 - <<'PY'
import os, torch
from hi3dgen.checkpoint import usable_weights
p = '/tmp/camp/runs/vae/checkpoints/last.pt'
if os.path.exists(p):
    s = torch.load(p, map_location='cpu', weights_only=True)
    w = {k: v.half() if v.is_floating_point() else v for k, v in usable_weights(s).items()}
    torch.save({'kind': s['kind'], 'config': s['config'], 'step': s['step'], 'model': w}, '/tmp/camp/e16.pt')
    print('weights of step', s['step'], os.path.getsize('/tmp/camp/e16.pt'))
PY
[ -f /tmp/camp/e16.pt ] && split -b 15M /tmp/camp/e16.pt "$OUT/e16.part"
echo "[device_call] done at $((SECONDS - began)) s"
ls -l "$OUT"; grep -E "val/|resuming|time limit" /tmp/camp/runs/vae.log | tail -8; tail -n 3 /tmp/camp/runs/vae.log
