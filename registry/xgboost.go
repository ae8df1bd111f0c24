package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// XGBoost JSON models (what Booster.save_model("m.json") writes) are read
// by this small decoder rather than by any code that could evaluate them
// (MODEL-2). Prediction follows XGBoost's CPU predictor in float32: the base
// margin plus the trees' leaf values summed in order, then the objective's
// transformation, so scores match Python to the last float32 bit.

// maxNodes bounds the total number of tree nodes of an imported model.
const maxNodes = 1 << 22

// XGBoostModel is a decoded XGBoost gbtree model.
type XGBoostModel struct {
	Objective   string
	NumFeatures int
	NumGroups   int     // outputs: num_class for multi-class, else 1
	BaseMargin  float32 // base_score in margin space
	Version     string
	trees       []xgbTree
	groups      []int // output group of each tree
	transform   func(margins []float32, out []float64)
}

type xgbTree struct {
	left, right []int32
	feature     []int32
	cond        []float32 // split condition, or leaf value at leaves
	defaultLeft []bool
}

// xgbObjective maps an objective to its margin transform and the
// conversion of base_score to margin space (XGBoost's ProbToMargin).
type xgbObjective struct {
	transform   func(margins []float32, out []float64)
	probToMargn func(float32) float32
	multi       bool
}

func identityTransform(m []float32, out []float64) {
	for i, v := range m {
		out[i] = float64(v)
	}
}

func sigmoidTransform(m []float32, out []float64) {
	for i, v := range m {
		out[i] = float64(float32(1) / (float32(1) + float32(math.Exp(float64(-v)))))
	}
}

func expTransform(m []float32, out []float64) {
	for i, v := range m {
		out[i] = float64(float32(math.Exp(float64(v))))
	}
}

func softmaxTransform(m []float32, out []float64) {
	wmax := m[0]
	for _, v := range m[1:] {
		wmax = max(wmax, v)
	}
	var sum float32
	tmp := make([]float32, len(m))
	for i, v := range m {
		tmp[i] = float32(math.Exp(float64(v - wmax)))
		sum += tmp[i]
	}
	for i := range m {
		out[i] = float64(tmp[i] / sum)
	}
}

func argmaxTransform(m []float32, out []float64) {
	best := 0
	for i, v := range m {
		if v > m[best] {
			best = i
		}
	}
	out[0] = float64(best)
}

func identityMargin(x float32) float32 { return x }
func logitMargin(x float32) float32 {
	return float32(-math.Log(float64(float32(1)/x - float32(1))))
}
func logMargin(x float32) float32 { return float32(math.Log(float64(x))) }

var xgbObjectives = map[string]xgbObjective{
	"reg:squarederror":     {identityTransform, identityMargin, false},
	"reg:linear":           {identityTransform, identityMargin, false},
	"reg:squaredlogerror":  {identityTransform, identityMargin, false},
	"reg:pseudohubererror": {identityTransform, identityMargin, false},
	"reg:absoluteerror":    {identityTransform, identityMargin, false},
	"reg:logistic":         {sigmoidTransform, logitMargin, false},
	"binary:logistic":      {sigmoidTransform, logitMargin, false},
	"binary:logitraw":      {identityTransform, logitMargin, false},
	"count:poisson":        {expTransform, logMargin, false},
	"reg:gamma":            {expTransform, logMargin, false},
	"reg:tweedie":          {expTransform, logMargin, false},
	"multi:softprob":       {softmaxTransform, identityMargin, true},
	"multi:softmax":        {argmaxTransform, identityMargin, true},
}

type xgbJSON struct {
	Learner *struct {
		GradientBooster *struct {
			Name  string `json:"name"`
			Model *struct {
				Param struct {
					NumTrees        string `json:"num_trees"`
					NumParallelTree string `json:"num_parallel_tree"`
				} `json:"gbtree_model_param"`
				TreeInfo []int         `json:"tree_info"`
				Trees    []xgbTreeJSON `json:"trees"`
			} `json:"model"`
		} `json:"gradient_booster"`
		Param struct {
			BaseScore  string `json:"base_score"`
			NumClass   string `json:"num_class"`
			NumFeature string `json:"num_feature"`
			NumTarget  string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
	} `json:"learner"`
	Version []int `json:"version"`
}

type xgbTreeJSON struct {
	Left        []int32           `json:"left_children"`
	Right       []int32           `json:"right_children"`
	Indices     []int64           `json:"split_indices"`
	Conditions  []json.Number     `json:"split_conditions"`
	DefaultLeft []json.RawMessage `json:"default_left"`
	SplitType   []int             `json:"split_type"`
	Param       struct {
		NumNodes       string `json:"num_nodes"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
}

func xgbErr(format string, args ...any) error {
	return fmt.Errorf("%w: XGBoost JSON: %s", ErrFormat, fmt.Sprintf(format, args...))
}

func atoiField(name, s string, lo, hi int) (int, error) {
	if s == "" {
		return 0, xgbErr("%s is missing", name)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, xgbErr("%s %q out of range [%d, %d]", name, s, lo, hi)
	}
	return n, nil
}

func parseF32(s string) (float32, error) {
	f, err := strconv.ParseFloat(s, 32)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a finite float32: %q", s)
	}
	return float32(f), nil
}

// ParseXGBoostJSON decodes an XGBoost JSON model from untrusted bytes.
// Only the gbtree booster with numerical splits is supported; anything
// inconsistent (lengths, child indices, feature indices, non-finite
// values) is an error wrapping ErrFormat, never a panic (FuzzXGBoost).
func ParseXGBoostJSON(b []byte) (*XGBoostModel, error) {
	if len(b) > MaxImportSize {
		return nil, xgbErr("model of %d bytes exceeds %d", len(b), MaxImportSize)
	}
	var doc xgbJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		return nil, xgbErr("malformed: %v", err)
	}
	if dec.More() {
		return nil, xgbErr("trailing data after the model")
	}
	l := doc.Learner
	if l == nil || l.GradientBooster == nil {
		return nil, xgbErr("no learner.gradient_booster")
	}
	if l.GradientBooster.Name != "gbtree" || l.GradientBooster.Model == nil {
		return nil, xgbErr("booster %q is not supported (only gbtree)", l.GradientBooster.Name)
	}
	obj, ok := xgbObjectives[l.Objective.Name]
	if !ok {
		return nil, xgbErr("objective %q is not supported", l.Objective.Name)
	}
	m := &XGBoostModel{Objective: l.Objective.Name, transform: obj.transform}
	if len(doc.Version) == 3 {
		m.Version = fmt.Sprintf("%d.%d.%d", doc.Version[0], doc.Version[1], doc.Version[2])
	}
	var err error
	if m.NumFeatures, err = atoiField("num_feature", l.Param.NumFeature, 1, 1<<20); err != nil {
		return nil, err
	}
	nc, err := atoiField("num_class", l.Param.NumClass, 0, 1<<12)
	if err != nil {
		return nil, err
	}
	if l.Param.NumTarget != "" && l.Param.NumTarget != "1" {
		return nil, xgbErr("multi-target models are not supported")
	}
	m.NumGroups = 1
	if obj.multi {
		if nc < 2 {
			return nil, xgbErr("objective %s needs num_class ≥ 2", m.Objective)
		}
		m.NumGroups = nc
	} else if nc > 1 {
		return nil, xgbErr("num_class %d with objective %s", nc, m.Objective)
	}
	bs, err := parseF32(l.Param.BaseScore)
	if err != nil {
		return nil, xgbErr("base_score: %v", err)
	}
	if obj.probToMargn != nil {
		bs = obj.probToMargn(bs)
		if math.IsNaN(float64(bs)) || math.IsInf(float64(bs), 0) {
			return nil, xgbErr("base_score %s is outside the objective's domain", l.Param.BaseScore)
		}
	}
	m.BaseMargin = bs
	gm := l.GradientBooster.Model
	nt, err := atoiField("num_trees", gm.Param.NumTrees, 0, 1<<20)
	if err != nil {
		return nil, err
	}
	if len(gm.Trees) != nt || len(gm.TreeInfo) != nt {
		return nil, xgbErr("num_trees %d but %d trees and %d tree_info entries", nt, len(gm.Trees), len(gm.TreeInfo))
	}
	total := 0
	for i, tj := range gm.Trees {
		g := gm.TreeInfo[i]
		if g < 0 || g >= m.NumGroups {
			return nil, xgbErr("tree %d: output group %d out of range", i, g)
		}
		total += len(tj.Left)
		if total > maxNodes {
			return nil, xgbErr("more than %d nodes", maxNodes)
		}
		t, err := decodeXGBTree(tj, m.NumFeatures)
		if err != nil {
			return nil, xgbErr("tree %d: %v", i, err)
		}
		m.trees = append(m.trees, t)
		m.groups = append(m.groups, g)
	}
	return m, nil
}

func decodeXGBTree(tj xgbTreeJSON, nfeat int) (xgbTree, error) {
	n := len(tj.Left)
	if n == 0 {
		return xgbTree{}, fmt.Errorf("no nodes")
	}
	if s := tj.Param.NumNodes; s != "" && s != strconv.Itoa(n) {
		return xgbTree{}, fmt.Errorf("num_nodes %s but %d nodes", s, n)
	}
	if s := tj.Param.SizeLeafVector; s != "" && s != "0" && s != "1" {
		return xgbTree{}, fmt.Errorf("vector leaves are not supported")
	}
	if len(tj.Right) != n || len(tj.Indices) != n || len(tj.Conditions) != n || len(tj.DefaultLeft) != n {
		return xgbTree{}, fmt.Errorf("node arrays differ in length")
	}
	if len(tj.SplitType) != 0 && len(tj.SplitType) != n {
		return xgbTree{}, fmt.Errorf("split_type has %d entries for %d nodes", len(tj.SplitType), n)
	}
	t := xgbTree{left: tj.Left, right: tj.Right, feature: make([]int32, n), cond: make([]float32, n), defaultLeft: make([]bool, n)}
	for i := 0; i < n; i++ {
		c, err := parseF32(string(tj.Conditions[i]))
		if err != nil {
			return xgbTree{}, fmt.Errorf("node %d: %v", i, err)
		}
		t.cond[i] = c
		switch string(bytes.TrimSpace(tj.DefaultLeft[i])) {
		case "1", "true":
			t.defaultLeft[i] = true
		case "0", "false":
		default:
			return xgbTree{}, fmt.Errorf("node %d: default_left must be 0/1 or a boolean", i)
		}
		l, r := tj.Left[i], tj.Right[i]
		if l == -1 && r == -1 {
			continue // leaf
		}
		if len(tj.SplitType) == n && tj.SplitType[i] != 0 {
			return xgbTree{}, fmt.Errorf("node %d: categorical splits are not supported", i)
		}
		// Children come after their parent: traversal always terminates.
		if int(l) <= i || int(l) >= n || int(r) <= i || int(r) >= n {
			return xgbTree{}, fmt.Errorf("node %d: children %d, %d out of range", i, l, r)
		}
		if tj.Indices[i] < 0 || tj.Indices[i] >= int64(nfeat) {
			return xgbTree{}, fmt.Errorf("node %d: feature %d out of range", i, tj.Indices[i])
		}
		t.feature[i] = int32(tj.Indices[i])
	}
	return t, nil
}

func (t *xgbTree) leaf(x []float64) float32 {
	i := int32(0)
	for t.left[i] != -1 {
		v := x[t.feature[i]]
		switch {
		case math.IsNaN(v):
			if t.defaultLeft[i] {
				i = t.left[i]
			} else {
				i = t.right[i]
			}
		case float32(v) < t.cond[i]:
			i = t.left[i]
		default:
			i = t.right[i]
		}
	}
	return t.cond[i]
}

// NumInputs implements External.
func (m *XGBoostModel) NumInputs() int { return m.NumFeatures }

// NumOutputs implements External: class probabilities for multi:softprob,
// the class index for multi:softmax, else one value.
func (m *XGBoostModel) NumOutputs() int {
	if m.Objective == "multi:softmax" {
		return 1
	}
	return m.NumGroups
}

// Predict implements External: one row of NumInputs features (NaN is
// missing) to NumOutputs transformed predictions, as XGBoost's predict().
func (m *XGBoostModel) Predict(x []float64, out []float64) error {
	if len(x) != m.NumFeatures {
		return fmt.Errorf("%w: %d features, model takes %d", ErrInput, len(x), m.NumFeatures)
	}
	if len(out) != m.NumOutputs() {
		return fmt.Errorf("%w: output has %d slots, model gives %d", ErrInput, len(out), m.NumOutputs())
	}
	margins := make([]float32, m.NumGroups)
	for g := range margins {
		margins[g] = m.BaseMargin
	}
	for i := range m.trees {
		margins[m.groups[i]] += m.trees[i].leaf(x)
	}
	if m.Objective == "multi:softmax" {
		argmaxTransform(margins, out)
		return nil
	}
	m.transform(margins, out)
	return nil
}
