package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/dmitryikh/leaves"
)

// LightGBM text models are scored by github.com/dmitryikh/leaves, whose
// parser trusts its input: a short array panics and a child pointer to an
// already visited node makes prediction loop forever. So the text is first
// checked here, block by block exactly as leaves will read it, and only a
// well-formed tree ensemble reaches leaves (MODEL-2).

// LightGBMModel is a validated LightGBM model.
type LightGBMModel struct {
	Objective   string
	NumFeatures int
	NumClasses  int
	NumTrees    int
	ens         *leaves.Ensemble
}

func lgbErr(format string, args ...any) error {
	return fmt.Errorf("%w: LightGBM text: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// lgReadBlock reads key=value lines up to a blank line with the same
// semantics as leaves' util.ReadParamsUntilBlank.
func lgReadBlock(r *bufio.Reader) (map[string]string, error) {
	p := map[string]string{}
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSpace(line)
	for {
		tok := strings.Split(line, "=")
		if len(tok) > 2 {
			return nil, fmt.Errorf("line with more than one '='")
		}
		if len(tok) == 2 {
			p[tok[0]] = tok[1]
		} else {
			p[tok[0]] = ""
		}
		line, err = r.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return p, nil
		}
	}
}

func lgInt(p map[string]string, key string, lo, hi int) (int, error) {
	v, ok := p[key]
	if !ok {
		return 0, fmt.Errorf("no %s", key)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q out of range [%d, %d]", key, v, lo, hi)
	}
	return n, nil
}

func lgFields(p map[string]string, key string, n int) ([]string, error) {
	v, ok := p[key]
	if !ok {
		return nil, fmt.Errorf("no %s", key)
	}
	f := strings.Split(v, " ")
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	return f, nil
}

func lgFloats(p map[string]string, key string, n int) error {
	f, err := lgFields(p, key, n)
	if err != nil {
		return err
	}
	for _, s := range f {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%s: %q is not a finite number", key, s)
		}
	}
	return nil
}

func lgInts(p map[string]string, key string, n int, lo, hi int64) ([]int64, error) {
	f, err := lgFields(p, key, n)
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil || x < lo || x > hi {
			return nil, fmt.Errorf("%s: %q out of range", key, s)
		}
		out[i] = x
	}
	return out, nil
}

func checkLGTree(p map[string]string, maxFeature int) (int, error) {
	if v := p["num_cat"]; v != "0" {
		return 0, fmt.Errorf("categorical splits are not supported (num_cat=%q)", v)
	}
	if v, ok := p["is_linear"]; ok && v != "0" {
		return 0, fmt.Errorf("linear trees are not supported")
	}
	L, err := lgInt(p, "num_leaves", 1, 1<<17)
	if err != nil {
		return 0, err
	}
	if err := lgFloats(p, "leaf_value", L); err != nil {
		return 0, err
	}
	if L == 1 {
		return 1, nil
	}
	n := L - 1
	left, err := lgInts(p, "left_child", n, math.MinInt32, math.MaxInt32)
	if err != nil {
		return 0, err
	}
	right, err := lgInts(p, "right_child", n, math.MinInt32, math.MaxInt32)
	if err != nil {
		return 0, err
	}
	dt, err := lgInts(p, "decision_type", n, 0, math.MaxUint32)
	if err != nil {
		return 0, err
	}
	if _, err := lgInts(p, "split_feature", n, 0, int64(maxFeature)); err != nil {
		return 0, err
	}
	if err := lgFloats(p, "threshold", n); err != nil {
		return 0, err
	}
	seenNode := make([]bool, n)
	seenLeaf := make([]bool, L)
	for i := 0; i < n; i++ {
		if dt[i]&1 != 0 {
			return 0, fmt.Errorf("node %d: categorical split", i)
		}
		if (dt[i]>>2)&3 == 3 {
			return 0, fmt.Errorf("node %d: unknown missing type", i)
		}
		for _, c := range []int64{left[i], right[i]} {
			if c < 0 {
				leaf := ^c
				if leaf >= int64(L) || seenLeaf[leaf] {
					return 0, fmt.Errorf("node %d: bad leaf reference %d", i, leaf)
				}
				seenLeaf[leaf] = true
				continue
			}
			// Internal children come after their parent and are used once:
			// the nodes form a tree, so traversal terminates.
			if c <= int64(i) || c >= int64(n) || seenNode[c] {
				return 0, fmt.Errorf("node %d: bad child %d", i, c)
			}
			seenNode[c] = true
		}
	}
	for i := 1; i < n; i++ {
		if !seenNode[i] {
			return 0, fmt.Errorf("node %d is unreachable", i)
		}
	}
	for i := range seenLeaf {
		if !seenLeaf[i] {
			return 0, fmt.Errorf("leaf %d is unreachable", i)
		}
	}
	return L, nil
}

// ParseLightGBMText validates and decodes a LightGBM text model from
// untrusted bytes; every failure wraps ErrFormat (FuzzLightGBM).
func ParseLightGBMText(b []byte) (m *LightGBMModel, err error) {
	if len(b) > MaxImportSize {
		return nil, lgbErr("model of %d bytes exceeds %d", len(b), MaxImportSize)
	}
	r := bufio.NewReader(bytes.NewReader(b))
	h, err := lgReadBlock(r)
	if err != nil {
		return nil, lgbErr("header: %v", err)
	}
	if _, ok := h["tree"]; !ok {
		return nil, lgbErr("not a LightGBM model (no 'tree' header)")
	}
	if v := h["version"]; v != "v2" && v != "v3" {
		return nil, lgbErr("version %q is not supported (v2, v3)", v)
	}
	if _, ok := h["linear_tree"]; ok {
		return nil, lgbErr("linear trees are not supported")
	}
	nc, err := lgInt(h, "num_class", 1, 1<<12)
	if err != nil {
		return nil, lgbErr("%v", err)
	}
	if tp, err := lgInt(h, "num_tree_per_iteration", 1, 1<<12); err != nil || tp != nc {
		return nil, lgbErr("num_tree_per_iteration must equal num_class")
	}
	mf, err := lgInt(h, "max_feature_idx", 0, 1<<20)
	if err != nil {
		return nil, lgbErr("%v", err)
	}
	nt := len(strings.Split(h["tree_sizes"], " "))
	if h["tree_sizes"] == "" || nt%nc != 0 || nt > 1<<20 {
		return nil, lgbErr("tree_sizes lists %d trees for %d classes", nt, nc)
	}
	total := 0
	for i := 0; i < nt; i++ {
		p, err := lgReadBlock(r)
		if err != nil {
			return nil, lgbErr("tree %d: %v", i, err)
		}
		leavesN, err := checkLGTree(p, mf)
		if err != nil {
			return nil, lgbErr("tree %d: %v", i, err)
		}
		if total += leavesN; total > maxNodes {
			return nil, lgbErr("more than %d leaves", maxNodes)
		}
	}
	// Belt and braces: the library must not take the process down.
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, lgbErr("rejected by the decoder")
		}
	}()
	ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(b)), true)
	if err != nil {
		return nil, lgbErr("%v", err)
	}
	if ens.NFeatures() != mf+1 || ens.NOutputGroups() < 1 {
		return nil, lgbErr("decoded shape differs from the header")
	}
	return &LightGBMModel{Objective: h["objective"], NumFeatures: mf + 1, NumClasses: nc, NumTrees: nt, ens: ens}, nil
}

// NumInputs implements External.
func (m *LightGBMModel) NumInputs() int { return m.NumFeatures }

// NumOutputs implements External.
func (m *LightGBMModel) NumOutputs() int { return m.ens.NOutputGroups() }

// Predict implements External (transformed output, as LightGBM's predict()).
func (m *LightGBMModel) Predict(x []float64, out []float64) error {
	if len(x) != m.NumFeatures {
		return fmt.Errorf("%w: %d features, model takes %d", ErrInput, len(x), m.NumFeatures)
	}
	if len(out) != m.NumOutputs() {
		return fmt.Errorf("%w: output has %d slots, model gives %d", ErrInput, len(out), m.NumOutputs())
	}
	if err := m.ens.Predict(x, 0, out); err != nil {
		return errors.Join(ErrInput, err)
	}
	return nil
}
