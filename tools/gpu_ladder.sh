#!/usr/bin/env bash
# Train the whole checkpoint ladder on a GPU machine in about 8 minutes and bring it back.
#
# Here (CPU), once:   .venv/bin/python tools/gpu_bundle.py      # -> .gpu/ (git-ignored)
# On the device:      bash tools/gpu_ladder.sh                  # carry: [".gpu"]
# With the session's device tool:  run(command="bash tools/gpu_ladder.sh", carry=[".gpu"], timeout_s=600)
# Back here:          the files under $OUT: ladder_<point>.pt (released, weights + tables),
#                     <point>_val.csv and gpu_ladder.log; copy the .pt files to anoncodec/weights/.
#
# "base" trains from scratch; the "trunk" (plain RD + person term) and the plain-RD reference
# are fine-tuned from it, "trunk-high", "low" and "mid" from the trunk, "high" from trunk-high
# (configs/ladder/*.toml; steps/batch/crop and parents set by tools/gpu_bundle.py). Never
# needed by CI or the README's commands.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.gpu/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_ladder.log") 2>&1
test -f .gpu/data/labels.json || { echo "error: .gpu/ is missing: run tools/gpu_bundle.py here first" >&2; exit 2; }
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/cache MPLCONFIGDIR=/tmp/cache/mpl
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
for point in base trunk trunk-high low mid high plain-rd; do
  start=$(date +%s)
  python3 -m anoncodec.cli.main train --config .gpu/configs/$point.toml --no-progress
  echo "$point: $(( $(date +%s) - start )) s"
  python3 -m anoncodec.weights.release .gpu/runs/$point/last.pt "$OUT/ladder_${point//-/_}.pt"
  cp .gpu/runs/$point/val.csv "$OUT/${point}_val.csv"
done
