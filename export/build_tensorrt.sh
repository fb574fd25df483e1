#!/usr/bin/env bash
# Build the TensorRT plans of a model repository exported with
#     anoncodec export --backend tensorrt --repository REPOSITORY
# i.e. turn <stage>/1/model.onnx into <stage>/1/model.plan for encoder, decoder, detector.
#
# Run it INSIDE the Triton image that will serve the plans, nvcr.io/nvidia/tritonserver:24.10-py3
# (Triton 2.51.0, the server version of the pip nvidia-pytriton wheel), so that trtexec and the
# server link the same TensorRT and run on the same GPU: a plan only loads where it was built.
#
# Usage: export/build_tensorrt.sh [REPOSITORY [MAX_HEIGHT MAX_WIDTH]]
#
# Arguments override the environment variables of the same meaning:
#   REPOSITORY          model repository (default: model_repository)
#   MAX_HEIGHT/WIDTH    largest frame the plans accept, pixels (default: the max_height /
#                       max_width parameters that `anoncodec export` wrote into
#                       frame_preprocess/config.pbtxt)
#   OPT_HEIGHT/WIDTH    frame size TensorRT tunes for (default: 480 x 640)
#   OPT_BATCH           batch size TensorRT tunes for (default: the stage's max_batch_size)
#   PRECISION           fp16 (default) or fp32
#   TRTEXEC             trtexec binary (default: trtexec on PATH, then /usr/src/tensorrt/bin/trtexec)
#   TRTEXEC_ARGS        extra trtexec arguments, e.g. "--memPoolSize=workspace:4096"
#
# Shapes (B = the stage's max_batch_size in its config.pbtxt, the dynamic batcher's largest
# batch, or 1 when batching is off; the profiles span batch 1..B; f = the codec's downsampling
# factor and M its latent channels, both read from frame_preprocess/1/codec.json; sides are
# rounded up to multiples of f because frame_preprocess pads frames to them):
#   encoder   encoder_x       Bx3xHxW      min f x f,   opt OPT_HEIGHT x OPT_WIDTH, max MAX_HEIGHT x MAX_WIDTH
#   decoder   decoder_y_hat   BxMx(H/f)x(W/f)  (the same sizes in latent pixels)
#   detector  detector_images Bx3xSxS      the letterbox size in detector/config.pbtxt
set -euo pipefail

PROG=$(basename "$0")
TRITON_IMAGE="nvcr.io/nvidia/tritonserver:24.10-py3"

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

case "${1:-}" in
    -h | --help)
        usage
        exit 0
        ;;
esac
if [ $# -gt 3 ] || [ $# -eq 2 ]; then
    usage >&2
    die "expected [REPOSITORY [MAX_HEIGHT MAX_WIDTH]], got $# arguments"
fi

REPOSITORY=${1:-${REPOSITORY:-model_repository}}
MAX_HEIGHT=${2:-${MAX_HEIGHT:-}}
MAX_WIDTH=${3:-${MAX_WIDTH:-}}
OPT_HEIGHT=${OPT_HEIGHT:-480}
OPT_WIDTH=${OPT_WIDTH:-640}
PRECISION=${PRECISION:-fp16}

# --- trtexec ---------------------------------------------------------------------------------
find_trtexec() {
    if [ -n "${TRTEXEC:-}" ]; then
        command -v "$TRTEXEC" 2>/dev/null
        return
    fi
    command -v trtexec 2>/dev/null && return 0
    if [ -x /usr/src/tensorrt/bin/trtexec ]; then
        echo /usr/src/tensorrt/bin/trtexec
        return 0
    fi
    return 1
}

if ! TRTEXEC_BIN=$(find_trtexec); then
    [ -z "${TRTEXEC:-}" ] || die "TRTEXEC=$TRTEXEC is not an executable"
    die "trtexec not found (not on PATH, not /usr/src/tensorrt/bin/trtexec, TRTEXEC unset).
Run this script inside the Triton image that serves the plans, e.g.
  docker run --rm --gpus all -v \"\$PWD\":/work -w /work $TRITON_IMAGE \\
      bash export/build_tensorrt.sh $REPOSITORY
(or set TRTEXEC=/path/to/trtexec of the SAME TensorRT version as the serving Triton).
Plans are tied to the TensorRT version and GPU that built them; this CPU machine cannot build them."
fi

# --- read what `anoncodec export --backend tensorrt` wrote ----------------------------------
[ -d "$REPOSITORY" ] || die "model repository '$REPOSITORY' does not exist; run
  anoncodec export --backend tensorrt --repository $REPOSITORY"

is_int() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
        *) [ "$1" -gt 0 ] ;;
    esac
}

# json_int FILE KEY: the integer value of "KEY": N in a one-key-per-line JSON file
json_int() {
    sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$1" | head -n 1
}

# config_param FILE KEY: the string_value of parameters { key: "KEY" ... } in a config.pbtxt
config_param() {
    awk -v key="$2" '
        index($0, "key: \"" key "\"") { want = 1; next }
        want && match($0, /string_value: *"[^"]*"/) {
            value = substr($0, RSTART, RLENGTH); sub(/^string_value: *"/, "", value); sub(/"$/, "", value)
            print value; exit
        }' "$1"
}

# the detector gets a plan when it is an ONNX stage; an SSD detector (detector_kind ssd, the
# default) runs on OpenCV DNN in the python backend and has none
DETECTOR_PLAN=1
if [ -f "$REPOSITORY/detector/config.pbtxt" ] && ! grep -q 'platform: "tensorrt_plan"' "$REPOSITORY/detector/config.pbtxt" \
    && grep -q '"detector_kind"' "$REPOSITORY/detector/config.pbtxt"; then
    DETECTOR_PLAN=0
fi
stages="encoder decoder"
[ "$DETECTOR_PLAN" = 1 ] && stages="$stages detector"
for stage in $stages; do
    config="$REPOSITORY/$stage/config.pbtxt"
    [ -f "$config" ] || die "$config is missing; run
  anoncodec export --backend tensorrt --repository $REPOSITORY"
    grep -q 'platform: "tensorrt_plan"' "$config" \
        || die "$config does not use platform \"tensorrt_plan\" (exported for another backend); re-export with
  anoncodec export --backend tensorrt --repository $REPOSITORY"
    [ -f "$REPOSITORY/$stage/1/model.onnx" ] || die "$REPOSITORY/$stage/1/model.onnx is missing; run
  anoncodec export --backend tensorrt --repository $REPOSITORY"
done

codec_json="$REPOSITORY/frame_preprocess/1/codec.json"
[ -f "$codec_json" ] || die "$codec_json is missing (it holds the downsampling factor and latent channels); run
  anoncodec export --backend tensorrt --repository $REPOSITORY"
FACTOR=$(json_int "$codec_json" downsampling)
CHANNELS=$(json_int "$codec_json" latent_channels)
is_int "$FACTOR" || die "no integer \"downsampling\" in $codec_json"
is_int "$CHANNELS" || die "no integer \"latent_channels\" in $codec_json"

pre_config="$REPOSITORY/frame_preprocess/config.pbtxt"
if [ -z "$MAX_HEIGHT" ] && [ -f "$pre_config" ]; then MAX_HEIGHT=$(config_param "$pre_config" max_height); fi
if [ -z "$MAX_WIDTH" ] && [ -f "$pre_config" ]; then MAX_WIDTH=$(config_param "$pre_config" max_width); fi
is_int "$MAX_HEIGHT" || die "MAX_HEIGHT='$MAX_HEIGHT' is not a positive integer (pass MAX_HEIGHT MAX_WIDTH)"
is_int "$MAX_WIDTH" || die "MAX_WIDTH='$MAX_WIDTH' is not a positive integer (pass MAX_HEIGHT MAX_WIDTH)"
is_int "$OPT_HEIGHT" || die "OPT_HEIGHT='$OPT_HEIGHT' is not a positive integer"
is_int "$OPT_WIDTH" || die "OPT_WIDTH='$OPT_WIDTH' is not a positive integer"

# the detector's letterbox size: the first dims of detector/config.pbtxt (its input),
# "3, S_h, S_w" when it batches, "1, 3, S_h, S_w" when it does not
det_dims=$(sed -n 's/.*dims: *\[ *\([0-9, ]*\) *\].*/\1/p' "$REPOSITORY/detector/config.pbtxt" | head -n 1)
IFS=', ' read -r -a det <<<"$det_dims"
n=${#det[@]}
if ! { [ "$n" -ge 3 ] && is_int "${det[n - 2]}" && is_int "${det[n - 1]}"; }; then
    die "cannot read the detector input size from $REPOSITORY/detector/config.pbtxt (dims '$det_dims')"
fi
DET_H=${det[n - 2]}
DET_W=${det[n - 1]}

# max_batch STAGE: the stage's max_batch_size, or 1 when it does not batch (0)
max_batch() {
    local b
    b=$(sed -n 's/^max_batch_size: *\([0-9][0-9]*\).*/\1/p' "$REPOSITORY/$1/config.pbtxt" | head -n 1)
    is_int "$b" || b=1
    echo "$b"
}
if [ -n "${OPT_BATCH:-}" ]; then is_int "$OPT_BATCH" || die "OPT_BATCH='$OPT_BATCH' is not a positive integer"; fi

case "$PRECISION" in
    fp16) precision_args=(--fp16) ;;
    fp32) precision_args=() ;;
    *) die "PRECISION='$PRECISION'; expected fp16 or fp32" ;;
esac
read -r -a extra_args <<<"${TRTEXEC_ARGS:-}"

# --- shapes ----------------------------------------------------------------------------------
round_up() { echo $(((($1 + FACTOR - 1) / FACTOR) * FACTOR)); }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

max_h=$(round_up "$MAX_HEIGHT")
max_w=$(round_up "$MAX_WIDTH")
opt_h=$(min "$(round_up "$OPT_HEIGHT")" "$max_h")
opt_w=$(min "$(round_up "$OPT_WIDTH")" "$max_w")
min_h=$FACTOR
min_w=$FACTOR

# --- build -------------------------------------------------------------------------------------
LOG_DIR=$(mktemp -d)
trap 'rm -rf "$LOG_DIR"' EXIT

# build STAGE INPUT MIN OPT MAX: model.onnx -> model.plan with one optimization profile;
# MIN/OPT/MAX are shapes without the batch, which goes from 1 to the stage's max_batch_size
build() {
    local stage=$1 input=$2 batch opt_batch
    batch=$(max_batch "$stage")
    opt_batch=$(min "${OPT_BATCH:-$batch}" "$batch")
    local min_shape="1x$3" opt_shape="${opt_batch}x$4" max_shape="${batch}x$5"
    local onnx="$REPOSITORY/$stage/1/model.onnx" plan="$REPOSITORY/$stage/1/model.plan"
    local log="$LOG_DIR/$stage.log"
    local common=("--onnx=$onnx" "--saveEngine=$plan" "${precision_args[@]}" "${extra_args[@]}")
    local shapes=("--minShapes=$input:$min_shape" "--optShapes=$input:$opt_shape"
        "--maxShapes=$input:$max_shape")
    echo "== $stage: $onnx -> $plan ($input min $min_shape, opt $opt_shape, max $max_shape)"
    rm -f "$plan"
    if "$TRTEXEC_BIN" "${common[@]}" "${shapes[@]}" >"$log" 2>&1; then
        :
    elif grep -q "Static model does not take explicit shapes" "$log"; then
        # an ONNX file with a fixed input size (e.g. the detector) refuses shape profiles
        echo "   $stage has a static input shape; building without a shape profile"
        "$TRTEXEC_BIN" "${common[@]}" >"$log" 2>&1 || {
            tail -n 30 "$log" >&2
            die "trtexec failed for $stage (full log above)"
        }
    else
        tail -n 30 "$log" >&2
        die "trtexec failed for $stage (last lines of its log above)"
    fi
    [ -s "$plan" ] || die "trtexec succeeded for $stage but wrote no $plan"
    echo "   wrote $plan ($(wc -c <"$plan") bytes)"
}

echo "trtexec: $TRTEXEC_BIN"
echo "repository: $REPOSITORY (downsampling $FACTOR, latent channels $CHANNELS, frames up to ${MAX_HEIGHT}x${MAX_WIDTH}, $PRECISION)"
build encoder encoder_x "3x${min_h}x${min_w}" "3x${opt_h}x${opt_w}" "3x${max_h}x${max_w}"
build decoder decoder_y_hat "${CHANNELS}x$((min_h / FACTOR))x$((min_w / FACTOR))" \
    "${CHANNELS}x$((opt_h / FACTOR))x$((opt_w / FACTOR))" \
    "${CHANNELS}x$((max_h / FACTOR))x$((max_w / FACTOR))"
if [ "$DETECTOR_PLAN" = 1 ]; then
    build detector detector_images "3x${DET_H}x${DET_W}" "3x${DET_H}x${DET_W}" "3x${DET_H}x${DET_W}"
else
    echo "detector: a python stage (OpenCV DNN, detector_kind in detector/config.pbtxt): no plan to build"
fi
echo "done: serve $REPOSITORY with tritonserver of the same image ($TRITON_IMAGE)"
