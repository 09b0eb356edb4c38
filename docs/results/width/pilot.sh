#!/usr/bin/env bash
# Pilot of the width study (issue 25, section 3): which supermask search of section 2 helps
# binw-slt at width 0.125? VGG-16, CIFAR-10 subset, T=4, sparsity 0.5, seed 0, a short run;
# chosen on the VALIDATION accuracy only (the test top-1 is measured but not looked at).
# Run from the repository root: DATA=../shared/data/cifar10-subset docs/results/width/pilot.sh RESULTS.db
set -uo pipefail  # a failed variant is a failed row; the others still run
DB=${1:?results file}
EPOCHS=${EPOCHS:-8}
common=(--profile cpu-vgg --data-dir "${DATA:?}" --methods binw-slt --width 0.125 --seeds 0
        --epochs "$EPOCHS" --results "$DB" --threads 2)
sjlt bench "${common[@]}" --json > /dev/null                                                    # plain (Adam, uniform)
sjlt bench "${common[@]}" --set recipe.iterand_period=100 --set recipe.iterand_rate=0.1 --json > /dev/null
sjlt bench "${common[@]}" --set recipe.freeze_pruned=0.2 --set recipe.freeze_kept=0.2 --json > /dev/null
sjlt bench "${common[@]}" --set model.layer_density=erk --json > /dev/null
sjlt bench "${common[@]}" --set recipe.score_optimizer=sgd --json > /dev/null
