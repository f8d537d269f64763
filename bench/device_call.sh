#!/usr/bin/env bash
# One self-contained call on the GPU machine (the `device` tool's `run`, carrying .whl and
# .whl_mlflow): install the carried wheels, rebuild the DetailVerse set and train the shape VAE
# through bench/campaign.sh in the foreground, cut at BUDGET seconds, then pack into $OUT what must
# come back (the logs, the MLflow store without model artifacts, the last checkpoint's EMA weights
# in fp16 split in 15 MB parts). Nothing is left running: the machine is given back 30 s after a
# call, and work in the background of one call does not survive a gap before the next.
#
#     VAE_STEPS=2000 VAE_VAL_EVERY=1000 BUDGET=450 bash bench/device_call.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl_mlflow/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD GIT_PYTHON_REFRESH=quiet PYTHONUNBUFFERED=1
export WORK=/tmp/camp HI3DGEN_STATE=/tmp/camp/state COUNT=1200 VIEWS=4 RESOLUTION=256 VAE_STEPS=${VAE_STEPS:-2400} VAE_VAL_EVERY=${VAE_VAL_EVERY:-1200} EXTRA=--no-compile
mkdir -p /tmp/camp/out
date +%T; timeout 200 python3 -c "from hi3dgen.render.nvdiff import NvdiffrastBackend; NvdiffrastBackend()" 2>&1 | tail -2; date +%T
timeout ${BUDGET:-500} bash bench/campaign.sh /tmp/camp/out rebuild vae
date +%T
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
ls -l "$OUT"; grep -E "val/|step" /tmp/camp/runs/vae.log | tail -8
