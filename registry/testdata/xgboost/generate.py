# Generates the XGBoost test models and their expected predictions.
# Run ONCE with Debian's python3-xgboost 1.7.4 and scikit-learn 1.2.1:
#   /usr/bin/python3 generate.py
# Tests never run Python; they read the committed files.
import numpy as np
import xgboost as xgb
from sklearn import datasets

rng = np.random.default_rng(42)

def save(name, X, y, params, rounds, test_rows=40):
    Xtr = X.copy()
    # Missing values in training, so trees learn default directions.
    mask = rng.random(Xtr.shape) < 0.05
    Xtr[mask] = np.nan
    d = xgb.DMatrix(Xtr, label=y, missing=np.nan)
    bst = xgb.train(params, d, rounds)
    bst.save_model(name + ".json")
    Xte = X[:test_rows].copy()
    m2 = rng.random(Xte.shape) < 0.1
    Xte[m2] = np.nan
    p = bst.predict(xgb.DMatrix(Xte, missing=np.nan))
    if p.ndim == 1:
        p = p.reshape(-1, 1)
    np.savetxt(name + "_features.csv", Xte, delimiter=",", fmt="%.17g")
    np.savetxt(name + "_predictions.csv", p.astype(np.float64), delimiter=",", fmt="%.17g")

X, y = datasets.load_breast_cancer(return_X_y=True)
save("binary_logistic", X, y, {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 1}, 12)

X, y = datasets.load_diabetes(return_X_y=True)
save("reg_squarederror", X, y, {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.2, "seed": 1, "base_score": 150}, 15)

X, y = datasets.load_iris(return_X_y=True)
save("multi_softprob", X, y, {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "eta": 0.3, "seed": 1}, 6)

X, y = datasets.load_diabetes(return_X_y=True)
save("count_poisson", X, np.floor(y / 10), {"objective": "count:poisson", "max_depth": 3, "eta": 0.1, "seed": 1}, 10)
