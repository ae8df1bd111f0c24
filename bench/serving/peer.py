#!/usr/bin/python3
"""The Python peer of bench/serving: Flask + scikit-learn from Debian's
packages (python3-flask, python3-sklearn), serving the same model type,
trained on the same 70 % split of the same CSV, on the same OIP [N, F]
requests, answering the label and its probability like Rampart's default
output policy. Run under Debian's /usr/bin/python3.

usage: peer.py CSV TARGET logreg|gbdt PORT
"""
import sys

import numpy as np
from flask import Flask, jsonify, request
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

path, target, algo, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(path) as f:
    header = f.readline().strip().split(",")
raw = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=str)
ti = header.index(target)
y = raw[:, ti]
X = np.delete(raw, ti, axis=1).astype(np.float64)
rng = np.random.default_rng(42)
perm = rng.permutation(len(y))
cut = len(y) * 7 // 10
tr = perm[:cut]
if algo == "logreg":
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
else:
    model = GradientBoostingClassifier(n_estimators=100, random_state=1)
model.fit(X[tr], y[tr])
classes = list(model.classes_)

app = Flask(__name__)


@app.post("/v2/models/<name>/infer")
def infer(name):
    body = request.get_json()
    inp = body["inputs"][0]
    x = np.asarray(inp["data"], dtype=np.float64).reshape(inp["shape"])
    p = model.predict_proba(x)
    best = p.argmax(axis=1)
    return jsonify({
        "model_name": name,
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [len(best)], "data": [classes[i] for i in best]},
            {"name": "probability", "datatype": "FP64", "shape": [len(best)],
             "data": [round(float(p[k, i]), 2) for k, i in enumerate(best)]},
        ],
    })


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port, threaded=True)
