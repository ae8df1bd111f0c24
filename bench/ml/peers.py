#!/usr/bin/python3
"""Side-by-side peers for Rampart's ML bench: scikit-learn 1.2 and XGBoost 1.7.

Reads the splits written by `go run ./bench/ml` (so every learner sees exactly
the same training and test rows) and the generated 1,000,000 x 20 table, runs
the peers with the same hyper-parameters and preprocessing, and writes
<out>/peers.json. Timings are medians over --repeats runs and cover the whole
pipeline from raw columns (preprocessing + fit), as Rampart's do.
"""
import argparse
import csv
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import sklearn
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

warnings.filterwarnings("ignore", category=ConvergenceWarning)

GBDT = dict(n_estimators=100, max_depth=6, learning_rate=0.1)


def read_csv(path):
    """Columns typed like Rampart's ReadCSV: numeric iff every non-empty field parses."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    cols = {}
    for j, name in enumerate(header):
        vals = [r[j] for r in body]
        try:
            cols[name] = np.array([float(v) if v != "" else np.nan for v in vals])
        except ValueError:
            cols[name] = np.array(vals, dtype=object)
    return header, cols


def labels_of(col):
    """Class labels sorted as Rampart sorts them (numerically or lexically)."""
    if col.dtype == object:
        classes = sorted(set(col))
        lab = [str(v) for v in col]
    else:
        classes = sorted(set(col))
        lab = list(col)
    idx = {c: i for i, c in enumerate(classes)}
    return np.array([idx[v] for v in lab]), classes


def matrices(header, cols, target):
    feats = [h for h in header if h != target]
    num = [f for f in feats if cols[f].dtype != object]
    cat = [f for f in feats if cols[f].dtype == object]
    n = len(cols[target])
    x = np.empty((n, len(feats)), dtype=object)
    for j, f in enumerate(num + cat):
        x[:, j] = cols[f]
    return x, len(num), len(cat)


def linear_pre(nn, nc):
    # Rampart: mean imputation + standardisation; one-hot with a missing bucket.
    parts = [("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), list(range(nn)))]
    if nc:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>", missing_values=""),
                                           OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                      list(range(nn, nn + nc))))
    return ColumnTransformer(parts)


def tree_pre(nn, nc):
    # Rampart: raw numbers with NaN (native missing handling); one-hot categoricals.
    parts = [("num", "passthrough", list(range(nn)))]
    if nc:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>", missing_values=""),
                                           OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                      list(range(nn, nn + nc))))
    return ColumnTransformer(parts)


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, times


def auc(y, p, k):
    if k == 2:
        return roc_auc_score(y, p[:, 1])
    return roc_auc_score(y, p, multi_class="ovr", average="macro")


def run_datasets(data, out, repeats):
    results = []
    split_dir = os.path.join(out, "splits")
    for name in sorted(os.listdir(split_dir)):
        with open(os.path.join(split_dir, name)) as fh:
            sp = json.load(fh)
        header, cols = read_csv(os.path.join(data, sp["file"]))
        y, classes = labels_of(cols[sp["target"]])
        k = len(classes)
        x, nn, nc = matrices(header, cols, sp["target"])
        for c in range(nn):
            x[:, c] = x[:, c].astype(float)
        tr, te = np.array(sp["train"]), np.array(sp["test"])

        def lin():
            return make_pipeline(linear_pre(nn, nc), LogisticRegression(C=1.0, max_iter=100)).fit(x[tr], y[tr])

        def xgb():
            return make_pipeline(tree_pre(nn, nc), xgboost.XGBClassifier(tree_method="hist", n_jobs=2, max_bin=256,
                                                                          **GBDT)).fit(x[tr], y[tr])

        def hgb():
            return make_pipeline(tree_pre(nn, nc), HistGradientBoostingClassifier(
                max_iter=100, max_depth=6, learning_rate=0.1, max_leaf_nodes=None, early_stopping=False,
                random_state=1)).fit(x[tr], y[tr])

        learners = [("sklearn-logreg-lbfgs", lin), ("xgboost-hist", xgb), ("sklearn-hgb", hgb)]
        if sp["file"] == "digits.csv":
            learners.append(("sklearn-mlp", lambda: make_pipeline(linear_pre(nn, nc), MLPClassifier(random_state=1)).fit(x[tr], y[tr])))
        for lname, fn in learners:
            c0 = time.process_time()
            model, times = timed(fn, repeats)
            cpu = (time.process_time() - c0) / repeats
            p = model.predict_proba(x[te])
            r = dict(Dataset=sp["file"], Learner=lname, AUC=auc(y[te], p, k),
                     Accuracy=accuracy_score(y[te], p.argmax(axis=1)), TrainSeconds=statistics.median(times), TrainRuns=times,
                     TrainCPUSeconds=cpu)
            print(f"{sp['file']:18s} {lname:22s} AUC {r['AUC']:.4f} acc {r['Accuracy']:.4f} train {r['TrainSeconds']:.3f}s",
                  flush=True)
            results.append(r)
    return results


def run_synth(out, repeats, hgb):
    x = np.fromfile(os.path.join(out, "synth.x.f64"), dtype="<f8").reshape(-1, 20)
    y = np.fromfile(os.path.join(out, "synth.y.f64"), dtype="<f8").astype(int)
    n = len(y)
    nt = n * 3 // 4
    results = []
    learners = [
        ("xgboost-hist", lambda: xgboost.XGBClassifier(tree_method="hist", n_jobs=2, max_bin=256, **GBDT).fit(x[:nt], y[:nt])),
        ("sklearn-logreg-lbfgs", lambda: make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(),
                                                       LogisticRegression(C=1.0, max_iter=100)).fit(x[:nt], y[:nt])),
    ]
    if hgb:
        learners.insert(1, ("sklearn-hgb", lambda: HistGradientBoostingClassifier(
            max_iter=100, max_depth=6, learning_rate=0.1, max_leaf_nodes=None, early_stopping=False,
            random_state=1).fit(x[:nt], y[:nt])))
    for lname, fn in learners:
        c0 = time.process_time()  # CPU time of all threads: less load-sensitive than wall time
        model, times = timed(fn, repeats)
        train_cpu = (time.process_time() - c0) / repeats
        p = model.predict_proba(x[nt:])
        rates, cpu_rates = [], []
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            model.predict_proba(x)
            rates.append(n / (time.perf_counter() - t))
            cpu_rates.append(n / (time.process_time() - c))
        r = dict(Dataset=f"synth {n}×20", Learner=lname, AUC=roc_auc_score(y[nt:], p[:, 1]),
                 Accuracy=accuracy_score(y[nt:], p.argmax(axis=1)), TrainSeconds=statistics.median(times),
                 TrainRuns=times, PredictRowsPerS=statistics.median(rates), TrainCPUSeconds=train_cpu,
                 PredictRowsPerCPUSecond=statistics.median(cpu_rates))
        print(f"synth {lname:22s} AUC {r['AUC']:.4f} train {r['TrainSeconds']:.2f}s ({train_cpu:.2f} CPU-s) "
              f"predict {r['PredictRowsPerS']/1e6:.2f} M rows/s ({r['PredictRowsPerCPUSecond']/1e6:.2f} M rows per CPU-s)",
              flush=True)
        results.append(r)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets")
    ap.add_argument("--out", default="/tmp/mlbench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="datasets or synth")
    ap.add_argument("--tag", default="", help="suffix for the result file (interleaved runs)")
    ap.add_argument("--no-hgb-synth", action="store_true", help="skip HistGradientBoosting on the big table (slow)")
    a = ap.parse_args()
    print(f"scikit-learn {sklearn.__version__}, xgboost {xgboost.__version__}, numpy {np.__version__}", file=sys.stderr)
    results = []
    if a.only in ("", "datasets"):
        results += run_datasets(a.data, a.out, a.repeats)
    if a.only in ("", "synth") and os.path.exists(os.path.join(a.out, "synth.x.f64")):
        results += run_synth(a.out, a.repeats, not a.no_hgb_synth)
    name = "-".join(["peers"] + [s for s in (a.only, a.tag) if s]) + ".json"
    with open(os.path.join(a.out, name), "w") as fh:
        json.dump(dict(sklearn=sklearn.__version__, xgboost=xgboost.__version__, results=results), fh, indent=2)


if __name__ == "__main__":
    main()
