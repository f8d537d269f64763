#!/usr/bin/env bash
# Issue 13's GPU campaign in one command, on a machine where nothing outlives the session: rebuild
# the DetailVerse set with the pipeline's own stages, then train and compare the three models on
# it, every run through `hi3dgen train` (tracked in MLflow when it imports, under HI3DGEN_STATE).
#
#     bench/campaign.sh OUT [PHASE ...]      # phases: rebuild vae nirne norld (default: all, in order)
#
# The shape VAE and the NiRNE grid run side by side once the shards exist (the GPU has room for
# both); the NoRLD grid starts when the VAE is done. Runs of one grid share the GPU, JOBS at a time.
# Each run's log and final metrics land under WORK/runs/NAME; OUT/campaign.log says what started and
# ended when, and `pack` (always last) puts the logs, the metrics and the MLflow store (without the
# model artifacts) into OUT. Sizes come from the environment: COUNT VIEWS RESOLUTION (the set),
# SEEDS, NIRNE_STEPS, NORLD_STEPS, VAE_STEPS, JOBS, WORK.
set -u
OUT=${1:?usage: bench/campaign.sh OUT [PHASE ...]}
shift
PHASES=${*:-rebuild vae nirne norld}
WORK=${WORK:-/tmp/campaign}
COUNT=${COUNT:-2000} VIEWS=${VIEWS:-12} RESOLUTION=${RESOLUTION:-512} BACKEND=${BACKEND:-nvdiffrast}
SEEDS=${SEEDS:-0 1 2} JOBS=${JOBS:-3}
VAE_PRESET=${VAE_PRESET:-gpu} VAE_STEPS=${VAE_STEPS:-6000} VAE_VAL_EVERY=${VAE_VAL_EVERY:-2000}
NIRNE_PRESET=${NIRNE_PRESET:-small} NIRNE_STEPS=${NIRNE_STEPS:-1500}
NORLD_PRESET=${NORLD_PRESET:-small} NORLD_STEPS=${NORLD_STEPS:-1000}
EXTRA=${EXTRA:-}  # flags for every training run (tests: --device cpu ...); VAE_FLAGS for the VAE alone
export HI3DGEN_STATE=${HI3DGEN_STATE:-$WORK/state} PYTHONUNBUFFERED=1
PY=${PY:-python3}
HI="$PY -m hi3dgen_cli"
DV=$WORK/dv
mkdir -p "$OUT" "$WORK/runs"
if $PY -c "import mlflow" 2>/dev/null; then TRACK=--tracking; else TRACK=--no-tracking; fi

log() { echo "[$(date +%T)] $*" | tee -a "$OUT/campaign.log"; }

# run NAME ARGS...: one `hi3dgen` command, its output in WORK/runs/NAME.log, its start and end logged.
run() {
    local name=$1 began=$SECONDS rc
    shift
    log "start $name: hi3dgen $*"
    $HI "$@" >"$WORK/runs/$name.log" 2>&1
    rc=$?
    log "end $name rc=$rc $((SECONDS - began)) s: $(tail -n 1 "$WORK/runs/$name.log")"
    return $rc
}

# pool: wait until fewer than JOBS background runs are going.
pool() { while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done; }

phase_rebuild() {
    log "rebuild: $COUNT assets, $VIEWS views at ${RESOLUTION}², $BACKEND"
    $PY bench/rebuild.py --count "$COUNT" --out "$DV" --executor process --backend "$BACKEND" \
        --views "$VIEWS" --resolution "$RESOLUTION" --json "$OUT/rebuild.json" 2>&1 | tee "$OUT/rebuild.txt"
}

phase_vae() {
    run vae train vae --preset "$VAE_PRESET" --data "$DV/shard" --out "$WORK/runs/vae" $TRACK \
        --steps "$VAE_STEPS" --val-every "$VAE_VAL_EVERY" --vis-every "$VAE_VAL_EVERY" ${VAE_FLAGS:-} $EXTRA
}

# nirne_run NAME ARGS...: one stage-1 run on the DetailVerse renders (the synthetic domain).
nirne_run() {
    local name=$1
    shift
    run "nirne-$name" train nirne --preset "$NIRNE_PRESET" --data "$DV/shard" --stages 1 --domain synthetic \
        --steps "$NIRNE_STEPS" --out "$WORK/runs/nirne-$name" $TRACK --experiment nirne-ablation $EXTRA "$@"
}

# Two stages as fairly as this data allows: stage 1 on the procedural `real` views (textured,
# lit, noisy photographs of smooth relief: no rendered real-domain set exists here), stage 2 on
# the DetailVerse renders, together the one-stage runs' steps; scored on the same DetailVerse val.
nirne_two_stage() {
    local seed=$1 s1=$((NIRNE_STEPS * 3 / 5)) dir=$WORK/runs/nirne-two_stage-s$1
    run "nirne-two_stage-s$seed-stage1" train nirne --preset "$NIRNE_PRESET" --data toy --stage 1 --domain real \
        --steps "$s1" --seed "$seed" --out "$dir/stage1" $TRACK --experiment nirne-ablation $EXTRA &&
        run "nirne-two_stage-s$seed" train nirne --preset "$NIRNE_PRESET" --data "$DV/shard" --stage 2 \
            --init "$dir/stage1/checkpoints/last.pt" --steps $((NIRNE_STEPS - s1)) --seed "$seed" --out "$dir/stage2" \
            $TRACK --experiment nirne-ablation $EXTRA
}

phase_nirne() {
    local seed t
    for seed in $SEEDS; do  # the paper's variants first, then two stages, then the noise sweep
        pool; nirne_run "full-s$seed" --seed "$seed" &
        pool; nirne_run "no_noise-s$seed" --seed "$seed" --no-noise &
        pool; nirne_run "single_stream-s$seed" --seed "$seed" --no-dual-stream &
    done
    for seed in $SEEDS; do pool; nirne_two_stage "$seed" & done
    for t in 0.25 0.5 1.0; do pool; nirne_run "t_max$t-s0" --seed 0 --model.noise.t-max "$t" & done
    wait
}

phase_norld() {
    local seed w
    [ -f "$WORK/runs/vae/model.pt" ] || { log "norld: no VAE at $WORK/runs/vae/model.pt"; return 1; }
    for seed in $SEEDS; do
        for w in 0 1; do
            pool
            run "norld-lambda$w-s$seed" train norld --preset "$NORLD_PRESET" --vae "$WORK/runs/vae/model.pt" \
                --data "$DV/shard" --reg-weight "$w" --reg-share 1.0 --seed "$seed" --steps "$NORLD_STEPS" \
                --out "$WORK/runs/norld-lambda$w-s$seed" $TRACK --experiment norld-ablation $EXTRA &
        done
    done
    wait
}

# The logs and final metrics, the shards' report and the MLflow store without model artifacts.
pack() {
    tar -czf "$OUT/runs.tgz" -C "$WORK" --exclude='*.pt' --exclude='*/checkpoints' runs 2>/dev/null
    [ -d "$HI3DGEN_STATE" ] && tar -czf "$OUT/mlflow.tgz" -C "$(dirname "$HI3DGEN_STATE")" \
        --exclude='*/model/*' "$(basename "$HI3DGEN_STATE")"
    log "packed: $(ls -l "$OUT" | tail -n +2 | awk '{print $9, $5}' | tr '\n' ' ')"
}

log "campaign: phases '$PHASES', tracking $TRACK, HI3DGEN_STATE=$HI3DGEN_STATE"
for p in $PHASES; do
    case $p in
        rebuild) phase_rebuild ;;
        vae) phase_vae & vae_pid=$! ;;
        nirne) phase_nirne & ;;
        norld) [ -n "${vae_pid:-}" ] && wait "$vae_pid"; phase_norld ;;
        *) log "unknown phase $p (rebuild vae nirne norld)"; exit 2 ;;
    esac
done
wait
pack
log "campaign done"
