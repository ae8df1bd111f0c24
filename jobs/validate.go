package jobs

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/ml"
)

type paramKind int

const (
	pFloat paramKind = iota
	pInt
	pInts
)

// knownParams are the hyper-parameters each algorithm accepts (the ml
// engine's names, scikit-learn / XGBoost style). Ranges are checked again
// by the engine; this table lets a bad name or type be refused before a job
// is queued.
var knownParams = map[string]map[string]paramKind{
	ml.LogReg: {"C": pFloat, "max_iter": pInt, "tol": pFloat},
	ml.LinReg: {"alpha": pFloat},
	ml.GBDT: {"n_estimators": pInt, "learning_rate": pFloat, "max_depth": pInt, "max_leaves": pInt,
		"min_child_weight": pFloat, "reg_lambda": pFloat, "gamma": pFloat, "subsample": pFloat,
		"colsample_bytree": pFloat, "max_bin": pInt, "early_stopping_rounds": pInt, "validation_fraction": pFloat},
	ml.MLP: {"hidden_layer_sizes": pInts, "learning_rate_init": pFloat, "alpha": pFloat, "tol": pFloat,
		"batch_size": pInt, "epochs": pInt, "n_iter_no_change": pInt},
}

// dpParams are the extra parameters DP-SGD training reads.
var dpParams = map[string]map[string]paramKind{
	ml.LogReg: {"epochs": pInt, "batch_size": pInt, "learning_rate": pFloat},
	ml.MLP:    {},
}

var modelNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Limit bounds (TRAIN-4).
const (
	DefaultMemoryMB    = 2048
	MinMemoryMB        = 256
	MaxMemoryMB        = 65536
	DefaultCPUSeconds  = 3600
	DefaultWallSeconds = 3600
	MaxSeconds         = 86400
	MaxEpsilon         = 100
)

// validate checks a spec before anything is stored; errors name the field
// ("Bad input": nothing is queued).
func validate(s *rampart.JobSpec) error {
	if !rampart.ValidID("ds", s.DatasetID) {
		return rampart.Invalid("dataset_id", "dataset_id must be a dataset ID (ds_…)")
	}
	if s.DatasetVersion < 0 {
		return rampart.Invalid("dataset_version", "dataset_version must be ≥ 1 (or omitted for the latest)")
	}
	known, ok := knownParams[s.Algorithm]
	if !ok {
		return rampart.Invalid("algorithm", "unknown algorithm %q: use logreg, linreg, gbdt or mlp", s.Algorithm)
	}
	switch s.Task {
	case "":
	case string(ml.Classification):
		if s.Algorithm == ml.LinReg {
			return rampart.Invalid("task", "linreg does regression, not classification")
		}
	case string(ml.Regression):
		if s.Algorithm == ml.LogReg {
			return rampart.Invalid("task", "logreg does classification, not regression")
		}
	default:
		return rampart.Invalid("task", "task must be classification or regression")
	}
	if s.Target == "" || len(s.Target) > 256 {
		return rampart.Invalid("target", "target must name a column (1-256 bytes)")
	}
	if len(s.Features) > 10_000 {
		return rampart.Invalid("features", "at most 10,000 features")
	}
	seen := map[string]bool{}
	for _, f := range s.Features {
		if f == "" || f == s.Target || seen[f] {
			return rampart.Invalid("features", "features must be distinct column names other than the target")
		}
		seen[f] = true
	}
	if s.DP != nil {
		if s.Algorithm != ml.LogReg && s.Algorithm != ml.MLP {
			return rampart.Invalid("dp", "differential privacy is available for logreg and mlp, not %s", s.Algorithm)
		}
		if !(s.DP.Epsilon > 0) || s.DP.Epsilon > MaxEpsilon {
			return rampart.Invalid("dp.epsilon", "dp.epsilon must be in (0, %d]", MaxEpsilon)
		}
		if math.IsNaN(s.DP.Delta) || s.DP.Delta < 0 || s.DP.Delta >= 1 {
			return rampart.Invalid("dp.delta", "dp.delta must be in [0, 1) (0: 1/(10·N) is chosen); it must be below 1/N")
		}
	}
	if len(s.Params) > 64 {
		return rampart.Invalid("params", "at most 64 parameters")
	}
	for k, v := range s.Params {
		kind, ok := known[k]
		if !ok && s.DP != nil {
			kind, ok = dpParams[s.Algorithm][k]
		}
		if !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			slices.Sort(names)
			return rampart.Invalid("params."+k, "unknown parameter %q for %s (known: %s)", k, s.Algorithm, strings.Join(names, ", "))
		}
		if len(v) > 256 || !paramOK(kind, v) {
			return rampart.Invalid("params."+k, "parameter %s=%q has the wrong type", k, v)
		}
	}
	l := &s.Limits
	if l.MemoryMB == 0 {
		l.MemoryMB = DefaultMemoryMB
	}
	if l.CPUSeconds == 0 {
		l.CPUSeconds = DefaultCPUSeconds
	}
	if l.WallSeconds == 0 {
		l.WallSeconds = DefaultWallSeconds
	}
	if l.MemoryMB < MinMemoryMB || l.MemoryMB > MaxMemoryMB {
		return rampart.Invalid("limits.memory_mb", "limits.memory_mb must be in [%d, %d]", MinMemoryMB, MaxMemoryMB)
	}
	if l.CPUSeconds < 1 || l.CPUSeconds > MaxSeconds {
		return rampart.Invalid("limits.cpu_seconds", "limits.cpu_seconds must be in [1, %d]", MaxSeconds)
	}
	if l.WallSeconds < 1 || l.WallSeconds > MaxSeconds {
		return rampart.Invalid("limits.wall_seconds", "limits.wall_seconds must be in [1, %d]", MaxSeconds)
	}
	if s.ModelName != "" && !modelNameRE.MatchString(s.ModelName) {
		return rampart.Invalid("model_name", "model_name must be 1-63 characters of a-z, 0-9, '.', '_' or '-'")
	}
	return nil
}

func paramOK(kind paramKind, v string) bool {
	switch kind {
	case pFloat:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	case pInt:
		_, err := strconv.Atoi(strings.TrimSpace(v))
		return err == nil
	case pInts:
		for _, p := range strings.Split(strings.Trim(strings.TrimSpace(v), "()[]"), ",") {
			if _, err := strconv.Atoi(strings.TrimSpace(p)); err != nil {
				return false
			}
		}
		return true
	}
	return false
}
