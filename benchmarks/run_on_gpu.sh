#!/bin/bash
# Usage (repository root, on a CUDA machine with torch, numpy, scipy, scikit-learn, pytest,
# tabulate, tqdm; the project need not be installed): OUT=<folder> bash benchmarks/run_on_gpu.sh
# CUDA path of the benchmarks, the CUDA tests and the demo's export on the lent GPU (one call).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
S=$SECONDS
step() { echo "=== $1 ($((SECONDS-S)) s)"; }
{
step env; nvidia-smi -L; python3 -c "import torch,numpy,scipy;print('torch',torch.__version__,'cuda',torch.version.cuda,torch.cuda.get_device_name(),'numpy',numpy.__version__)"; nproc
step cuda-tests
timeout 45 python3 -m pytest -q -p no:cacheprovider -rs tests/lowrank/test_lowrank_subspace.py tests/fl_sim/test_sim_chunking.py 2>&1 | tail -8
} > $OUT/00_env_tests.txt 2>&1
{ step suite; timeout 120 python3 -m pytest -q -p no:cacheprovider -n 12 --maxfail=40 tests/ --ignore=tests/flower --ignore=tests/course 2>&1 | tail -60; step done; } > $OUT/01_suite_on_cuda.txt 2>&1
{ step bench_simulator; timeout 100 python3 benchmarks/bench_simulator.py --device cuda 2>&1 | grep -v "it/s\]" ; step done; } > $OUT/02_bench_simulator_cuda.txt 2>&1
{ step bench_lowrank; timeout 40 python3 benchmarks/bench_lowrank.py --device cuda 2>&1; step done; } > $OUT/03_bench_lowrank_cuda.txt 2>&1
{ step bench_scaling; timeout 70 python3 benchmarks/bench_scaling.py --device cuda --plot $OUT/05_scaling_cuda.png --json $OUT/05_scaling_cuda.json 2>&1; step done; } > $OUT/04_bench_scaling_cuda.txt 2>&1
{ step demo; timeout 60 python3 -m fl_sim demo --output-dir /tmp/demo 2>&1 | grep -v "it/s\]" | tail -40; step done; } > $OUT/06_demo_cuda.txt 2>&1
for f in $OUT/*.txt; do tail -n 3 "$f"; done
