#!/usr/bin/python3
"""Merge <out>/rampart*.json and <out>/peers*.json into Markdown tables."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/mlbench"
rows = {}
rates = {}
# Interleaved runs (run.sh alternates Rampart and the peers so both see the
# same machine load) write one file per round; merge them: training times
# are pooled and the median taken, as are prediction rates.
for path in sorted(glob.glob(os.path.join(out, "rampart*.json")) + glob.glob(os.path.join(out, "peers*.json"))):
    with open(path) as fh:
        for r in json.load(fh)["results"]:
            key = (r["Dataset"], r["Learner"])
            if key in rows:
                rows[key]["TrainRuns"] = rows[key]["TrainRuns"] + r["TrainRuns"]
            else:
                rows[key] = r
            for f in ("PredictRowsPerS", "PredictRowsPerCPUSecond", "TrainCPUSeconds"):
                if r.get(f):
                    rates.setdefault((key, f), []).append(r[f])
for key, r in rows.items():
    r["TrainSeconds"] = statistics.median(r["TrainRuns"])
    for f in ("PredictRowsPerS", "PredictRowsPerCPUSecond", "TrainCPUSeconds"):
        if (key, f) in rates:
            r[f] = statistics.median(rates[(key, f)])


def get(ds, learner):
    return rows.get((ds, learner))


def fmt(v, spec=".4f"):
    return "—" if v is None else format(v, spec)


datasets = sorted({d for d, _ in rows if not d.startswith("synth")})
print("### Accuracy and training time on the shared datasets (stratified 75/25 split, test AUC)\n")
print("| dataset | logreg AUC | sklearn LR AUC | Δ | GBDT AUC | XGBoost AUC | Δ | HGB AUC | "
      "LR time ratio (Rampart/sklearn) | GBDT time ratio (Rampart/XGBoost) | GBDT ratio to HGB | CPU-time ratios LR, GBDT/XGB, GBDT/HGB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for ds in datasets:
    lr, sk = get(ds, "logreg"), get(ds, "sklearn-logreg-lbfgs")
    gb, xg, hg = get(ds, "gbdt"), get(ds, "xgboost-hist"), get(ds, "sklearn-hgb")
    cells = [ds, fmt(lr and lr["AUC"]), fmt(sk and sk["AUC"]), fmt(lr and sk and lr["AUC"] - sk["AUC"], "+.4f"),
             fmt(gb and gb["AUC"]), fmt(xg and xg["AUC"]), fmt(gb and xg and gb["AUC"] - xg["AUC"], "+.4f"),
             fmt(hg and hg["AUC"]),
             fmt(lr and sk and lr["TrainSeconds"] / sk["TrainSeconds"], ".2f") +
             (f" ({lr['TrainSeconds']:.3f}s / {sk['TrainSeconds']:.3f}s)" if lr and sk else ""),
             fmt(gb and xg and gb["TrainSeconds"] / xg["TrainSeconds"], ".2f") +
             (f" ({gb['TrainSeconds']:.3f}s / {xg['TrainSeconds']:.3f}s)" if gb and xg else ""),
             fmt(gb and hg and gb["TrainSeconds"] / hg["TrainSeconds"], ".2f"),
             ", ".join(fmt(a and b and a.get("TrainCPUSeconds") and b.get("TrainCPUSeconds") and
                           a["TrainCPUSeconds"] / b["TrainCPUSeconds"], ".2f") for a, b in ((lr, sk), (gb, xg), (gb, hg)))]
    print("| " + " | ".join(cells) + " |")

mlp, skm = get("digits.csv", "mlp"), get("digits.csv", "sklearn-mlp")
if mlp:
    print(f"\nMLP on digits: Rampart accuracy {mlp['Accuracy']:.4f} (train {mlp['TrainSeconds']:.2f}s)"
          + (f", scikit-learn MLPClassifier {skm['Accuracy']:.4f} (train {skm['TrainSeconds']:.2f}s)" if skm else "") + ".")

synth = sorted({d for d, _ in rows if d.startswith("synth")})
for ds in synth:
    print(f"\n### {ds} (first 75 % train, last 25 % test; i.i.d. rows)\n")
    print("| learner | test AUC | train s (median) | runs (s) | train CPU-s | predict rows/s (wall) | predict rows per CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for name in ["gbdt", "xgboost-hist", "sklearn-hgb", "logreg", "sklearn-logreg-lbfgs"]:
        r = get(ds, name)
        if r:
            runs = ", ".join(f"{t:.2f}" for t in r["TrainRuns"])
            print(f"| {name} | {r['AUC']:.4f} | {r['TrainSeconds']:.2f} | {runs} | {r.get('TrainCPUSeconds', 0):.1f} | "
                  f"{r.get('PredictRowsPerS', 0)/1e6:.2f} M | {r.get('PredictRowsPerCPUSecond', 0)/1e6:.2f} M |")
    gb, xg, hg = get(ds, "gbdt"), get(ds, "xgboost-hist"), get(ds, "sklearn-hgb")
    lr, sk = get(ds, "logreg"), get(ds, "sklearn-logreg-lbfgs")
    if gb and xg and gb.get("TrainCPUSeconds") and xg.get("TrainCPUSeconds"):
        print(f"\nCPU-time ratios: GBDT Rampart/XGBoost {gb['TrainCPUSeconds']/xg['TrainCPUSeconds']:.2f}"
              + (f", Rampart/HGB {gb['TrainCPUSeconds']/hg['TrainCPUSeconds']:.2f}" if hg and hg.get("TrainCPUSeconds") else "")
              + (f"; logistic Rampart/sklearn {lr['TrainCPUSeconds']/sk['TrainCPUSeconds']:.2f}" if lr and sk and sk.get("TrainCPUSeconds") else "") + ".")
    if gb and xg:
        print(f"\nGBDT training time ratio Rampart/XGBoost hist: {gb['TrainSeconds']/xg['TrainSeconds']:.2f}"
              + (f"; Rampart/HistGradientBoosting: {gb['TrainSeconds']/hg['TrainSeconds']:.2f}" if hg else "")
              + (f"; logistic regression Rampart/sklearn lbfgs: {lr['TrainSeconds']/sk['TrainSeconds']:.2f}" if lr and sk else "") + ".")

dps = [r for (d, l), r in rows.items() if l.endswith("-dp")]
if dps:
    print("\n### Differential privacy on credit_data (ε = 1, δ = 1e-5, secure noise)\n")
    print("| learner | DP test AUC (median) | non-private AUC | noise multiplier σ | achieved ε | train s |")
    print("|---|---|---|---|---|---|")
    for r in dps:
        base = get("credit_data.csv", r["Learner"][:-3])
        print(f"| {r['Learner']} | {r['AUC']:.4f} | {fmt(base and base['AUC'])} | {r['NoiseMultiplier']:.3f} | "
              f"{r['Epsilon']:.4f} | {r['TrainSeconds']:.2f} |")
