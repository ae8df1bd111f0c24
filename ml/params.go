package ml

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ErrParam is wrapped by every hyper-parameter error.
var ErrParam = errors.New("invalid hyper-parameter")

// paramReader reads string hyper-parameters by their scikit-learn / XGBoost
// names and remembers which were used, so a misspelt name is an error rather
// than a silently ignored setting.
type paramReader struct {
	raw  map[string]string
	used map[string]bool
	err  error
}

func newParamReader(raw map[string]string) *paramReader {
	return &paramReader{raw: raw, used: map[string]bool{}}
}

func (p *paramReader) fail(name, v, want string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s=%q: want %s", ErrParam, name, v, want)
	}
}

func (p *paramReader) float(name string, def, lo, hi float64) float64 {
	p.used[name] = true
	v, ok := p.raw[name]
	if !ok {
		return def
	}
	x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(x) || x < lo || x > hi {
		p.fail(name, v, fmt.Sprintf("a number in [%g, %g]", lo, hi))
		return def
	}
	return x
}

func (p *paramReader) int(name string, def, lo, hi int) int {
	p.used[name] = true
	v, ok := p.raw[name]
	if !ok {
		return def
	}
	x, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || x < lo || x > hi {
		p.fail(name, v, fmt.Sprintf("an integer in [%d, %d]", lo, hi))
		return def
	}
	return x
}

// ints reads a list such as "100" or "64,32" or "(64, 32)".
func (p *paramReader) ints(name string, def []int, lo, hi, maxLen int) []int {
	p.used[name] = true
	v, ok := p.raw[name]
	if !ok {
		return def
	}
	s := strings.Trim(strings.TrimSpace(v), "()[]")
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		x, err := strconv.Atoi(f)
		if err != nil || x < lo || x > hi {
			p.fail(name, v, fmt.Sprintf("a list of integers in [%d, %d]", lo, hi))
			return def
		}
		out = append(out, x)
	}
	if len(out) == 0 || len(out) > maxLen {
		p.fail(name, v, fmt.Sprintf("1 to %d integers", maxLen))
		return def
	}
	return out
}

// done reports the first parse error or an unknown parameter name.
func (p *paramReader) done() error {
	if p.err != nil {
		return p.err
	}
	var unknown []string
	for k := range p.raw {
		if !p.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		known := make([]string, 0, len(p.used))
		for k := range p.used {
			known = append(known, k)
		}
		sort.Strings(known)
		return fmt.Errorf("%w: unknown %s (known: %s)", ErrParam, strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return nil
}
