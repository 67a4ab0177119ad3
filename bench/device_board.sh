#!/usr/bin/env bash
# One GPU call of the `device` tool for issue 9's mono goal: train recipe mbv2_fbnet_board_gpu (boards
# rendered on the GPU) for MINUTES (default 7), score its checkpoint beside the mono default on the
# real board (OpenCV's calibration sample) and 48 rendered boards, export it to ONNX. The machine has
# torch, onnxruntime, OpenCV and PyYAML but no network, so the photo bank and the calibration images
# travel in .device/ (ignored by git). Here, once per checkout:
#   bash bench/device_board.sh --prepare
# then the device call: command "bash bench/device_board.sh", carry [".device"], timeout_s 600.
# Back under $OUT (runs/device_board when unset): train.log, train.csv, scores.json, board.jpg, and
# mbv2_fbnet_board_gpu.{onnx,json,weights.npz} (copy those into models/ to ship it).
set -uo pipefail
if [[ ${1:-} == --prepare ]]; then
  bank=${DEPTH_ROS_TEXTURES:-$HOME/.cache/depth_ros/textures}
  calib=${DEPTH_ROS_CALIB_DATA:-/usr/share/doc/opencv-doc/examples/data}
  [[ -d $bank ]] || { echo "no photo bank at $bank: run depth-ros-render textures" >&2; exit 1; }
  rm -rf .device && mkdir -p .device/calib && cp -r "$bank" .device/textures || exit
  cp "$calib"/left[01][0-9].jpg "$calib"/right[01][0-9].jpg .device/calib/ || exit
  du -sh .device; exit
fi
OUT=${OUT:-runs/device_board}; run=runs/board_gpu; mkdir -p "$OUT"
export DEPTH_ROS_TEXTURES=$PWD/.device/textures DEPTH_ROS_CALIB_DATA=$PWD/.device/calib PYTHONUNBUFFERED=1
python3 -c 'import depth_ros.training' 2>/dev/null ||
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit
nvidia-smi -L 2>/dev/null || echo 'no GPU: running on the CPU'
python3 -m depth_ros.training.cli.train --recipe mbv2_fbnet_board_gpu --out $run \
  --max-minutes "${MINUTES:-7}" > "$OUT/train.log" 2>&1
grep -v '^step' "$OUT/train.log" | tail -5; cp $run/train.csv "$OUT/" || exit
python3 -m depth_ros.training.realcheck --mono $run/last.pt mbv2_fbnet_real2 --synthetic-boards 48 \
  --out "$OUT/scores.json" --figure "$OUT/board.jpg"
python3 -m depth_ros.training.cli.export --checkpoint $run/last.pt --name mbv2_fbnet_board_gpu --out "$OUT" --fp16
