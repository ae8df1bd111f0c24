#!/bin/sh
# Side-by-side ML benchmark: Rampart vs scikit-learn 1.2 and XGBoost 1.7 on the
# same stratified 75/25 splits and on a generated 1,000,000 × 20 table.
#
#   bench/ml/run.sh [datasets-dir] [out-dir] [rounds]
#
# Run from the repository root. Rampart and the peers run alternately, one
# training per learner per round, so that both see the same machine load (the
# machine is shared); the report takes medians over the rounds. Writes JSON
# into <out> and prints a Markdown report (bench/ml/report.py) on stdout.
set -eu
DATA=${1:-../shared/datasets}
OUT=${2:-/tmp/mlbench}
ROUNDS=${3:-3}
PY=/usr/bin/python3   # Debian's interpreter: the one python3-sklearn installs into

if ! $PY -c 'import sklearn, xgboost' 2>/dev/null; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y python3-sklearn python3-xgboost
fi
mkdir -p "$OUT"
go build -o "$OUT/mlbench" ./bench/ml
peers() {
	# OpenBLAS tuning variables set for other workloads on this machine would
	# skew numpy; unset them for the peers only. OMP_WAIT_POLICY=PASSIVE: the
	# machine is shared, and OpenMP's default spin-waiting makes XGBoost and
	# HistGradientBoosting 10-20x slower when the cores are oversubscribed
	# (measured here); passive waiting is the fair setting for them.
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE \
		$PY bench/ml/peers.py --data "$DATA" --out "$OUT" --repeats 1 "$@" >&2
}
# PARTS and FIRST_ROUND let a partial re-run add rounds to an existing <out>.
PARTS=${PARTS:-dp datasets synth}
FIRST_ROUND=${FIRST_ROUND:-1}
case " $PARTS " in *" dp "*) "$OUT/mlbench" -data "$DATA" -out "$OUT" -only dp -repeats "$ROUNDS" >&2 ;; esac
for part in $PARTS; do
	[ "$part" = dp ] && continue
	i=$FIRST_ROUND
	while [ "$i" -lt $((FIRST_ROUND + ROUNDS)) ]; do
		echo "== $part round $i: Rampart; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
		"$OUT/mlbench" -data "$DATA" -out "$OUT" -only "$part" -repeats 1 -tag "$i" >&2
		echo "== $part round $i: peers; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
		# HistGradientBoosting takes minutes on the big table: time it in round 1 only.
		if [ "$part" = synth ] && [ "$i" -ne 1 ]; then
			peers --only "$part" --tag "$i" --no-hgb-synth
		else
			peers --only "$part" --tag "$i"
		fi
		i=$((i + 1))
	done
done
$PY bench/ml/report.py "$OUT"
