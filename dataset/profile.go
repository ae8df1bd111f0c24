package dataset

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"
)

// Profiling runs in one pass with bounded memory: Welford moments, a
// reservoir sample per numeric column for quantiles (Algorithm L), a
// space-saving sketch for top categories, and a bounded row index for
// duplicates.
const (
	sampleBudget    = 1 << 21 // numeric sample values over all columns
	sketchBudget    = 1 << 18 // category counters over all columns
	maxCatKey       = 64      // bytes of a category value kept in a sketch
	catProbeRows    = 10_000  // numeric-looking columns feed the sketch this long
	maxDupIndex     = 1 << 17 // distinct rows indexed for duplicate detection (a 4 MiB table)
	maxClassCount   = 10_000
	maxClassBytes   = 16 << 20 // label values kept for class counts (the rest count as other)
	topK            = 10
	categoricalMaxN = 100 // at most this many distinct values for "categorical"
)

var quantilePoints = []float64{0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1}

type colStats struct {
	name    string
	count   int64 // non-missing
	missing int64
	// type evidence: nonNum > 0 rules out numeric, nonInt integer, nonBool boolean.
	nonNum, nonInt, nonBool int64
	// Moments of the numeric values, accumulated shifted by the first
	// value (no division per value, and mergeable): seen values, shift,
	// Σ(v-shift), Σ(v-shift)². finishMoments turns them into mean and m2.
	seen          int64
	shift, s1, s2 float64
	mean, m2      float64
	merged        bool // mean and m2 are final
	min, max      float64
	// Quantile sample: the k values whose rows have the smallest row keys
	// (bottom-k sampling). Row keys are a hash of the row's position, so
	// the merged sample of several shards is the same whatever shard saw
	// which rows. Candidates below thresh are appended; at 2k they are
	// sorted and cut back to k, and thresh drops to the first key cut.
	smp    []keyVal
	thresh uint64
	k      int
	// sample is the merged, final sample (set by finish).
	sample []float64
	// space-saving sketch; each entry caches the value's PII verdict
	sketch    *catTable
	sketchCap int
	evicted   bool
	evictions int
	// sketchOff: too many distinct values; the sketch is frozen.
	sketchOff bool
	sumLen    int64
	maxLen    int
	formula   int64
	pii       *piiCounts
}

// profiler holds one shard of the column statistics and label counts: each
// ingestion worker fills its own, and merge combines them at the end.
type profiler struct {
	cols     []*colStats
	label    int // index or -1
	classes  *catTable
	clsOther int64
}

func newProfiler(header []string, label int) *profiler {
	p := &profiler{label: label}
	n := len(header)
	k := min(max(sampleBudget/max(n, 1), 64), 4096)
	sc := min(max(sketchBudget/max(n, 1), 16), 512)
	for _, name := range header {
		c := &colStats{name: name, min: math.Inf(1), max: math.Inf(-1), k: k, thresh: math.MaxUint64, sketchCap: sc,
			sketch: newCatTable(16), pii: &piiCounts{}}
		p.cols = append(p.cols, c)
	}
	if label >= 0 {
		p.classes = newCatTable(64)
	}
	return p
}

func (c *colStats) addNumber(v float64, key uint64) {
	if c.seen == 0 {
		c.shift = v
	}
	c.seen++
	d := v - c.shift
	c.s1 += d
	c.s2 += d * d
	if v < c.min {
		c.min = v
	}
	if v > c.max {
		c.max = v
	}
	if key < c.thresh {
		c.addSample(keyVal{key, v})
	}
}

type keyVal struct {
	key uint64
	val float64
}

func (c *colStats) addSample(kv keyVal) {
	c.smp = append(c.smp, kv)
	if len(c.smp) >= 2*c.k {
		c.cutSample()
	}
}

// cutSample keeps the k smallest keys (fewer if keys tie at the cut).
func (c *colStats) cutSample() {
	if len(c.smp) <= c.k {
		return
	}
	keys := make([]uint64, len(c.smp))
	for i, kv := range c.smp {
		keys[i] = kv.key
	}
	c.thresh = kthKey(keys, c.k)
	n := 0
	for _, kv := range c.smp {
		if kv.key < c.thresh {
			c.smp[n] = kv
			n++
		}
	}
	c.smp = c.smp[:n]
}

// addCategory counts f in the sketch and returns its PII bits, from the
// sketch's cache for a known value. A column that keeps evicting is high
// cardinality: its sketch freezes (top values approximate) so that it costs
// nothing more.
func (c *colStats) addCategory(f []byte, numeric bool) uint8 {
	if c.sketchOff {
		return DetectPII(f, numeric)
	}
	key := f
	if len(key) > maxCatKey {
		key = key[:maxCatKey]
	}
	h, w0, w1 := hashKey(key)
	var e *catEntry
	if len(key) <= 16 {
		e = c.sketch.findShort(h, w0, w1, len(key))
	} else {
		e = c.sketch.findLong(h, key)
	}
	if e != nil {
		e.n++
		if len(f) > maxCatKey {
			return DetectPII(f, numeric)
		}
		return e.pii
	}
	return c.newCategory(f, key, h, numeric)
}

// newCategory is addCategory for a value (key, hash h) not in the sketch.
func (c *colStats) newCategory(f, key []byte, h uint64, numeric bool) uint8 {
	bits := DetectPII(f, numeric)
	if c.sketch.len() < c.sketchCap {
		c.sketch.insert(h, key, 1, bits)
		return bits
	}
	c.evicted = true
	if numeric {
		// A full sketch of numbers: the column is numeric so far, and a
		// numeric column reports no top values; should it turn out text,
		// its top values are approximate either way. Freeze it rather
		// than churn it.
		c.sketchOff = true
		return bits
	}
	// Space-saving: replace the smallest counter.
	c.evictions++
	if c.evictions > 4*c.sketchCap {
		c.sketchOff = true
	}
	mn := c.sketch.removeMin()
	c.sketch.insert(h, key, mn+1, bits)
	return bits
}

// formulaLead marks the first bytes IsFormula looks further at.
var formulaLead = [256]bool{'=': true, '+': true, '-': true, '@': true, '\t': true, '\r': true}

// add profiles one field of column c and returns its PII bits. key is the
// row's sampling key.
func (c *colStats) add(f []byte, key uint64) uint8 {
	if len(f) == 0 {
		c.missing++
		return 0
	}
	c.count++
	c.sumLen += int64(len(f))
	if len(f) > c.maxLen {
		c.maxLen = len(f)
	}
	numeric := false
	if c.nonNum == 0 {
		if v, ok := parseNumber(f); ok {
			numeric = true
			c.addNumber(v, key)
			if c.nonInt == 0 && v != math.Trunc(v) {
				c.nonInt++
			}
		} else {
			c.nonNum++
			c.nonInt++
		}
	}
	if c.nonBool == 0 {
		if _, ok := parseBool(f); !ok {
			c.nonBool++
		}
	}
	var bits uint8
	if !numeric || c.count <= catProbeRows {
		bits = c.addCategory(f, numeric)
	} else if len(f) >= 9 {
		bits = DetectPII(f, true)
	}
	if !numeric && formulaLead[f[0]] && IsFormula(f) {
		c.formula++
	}
	if bits != 0 {
		c.pii.count(bits)
	}
	return bits
}

// addLabel counts a row's label.
func (p *profiler) addLabel(l []byte) {
	h := hashBytes(l)
	if e := p.classes.find(h, l); e != nil {
		e.n++
	} else if p.classes.len() < maxClassCount && len(p.classes.keys)+len(l) <= maxClassBytes {
		p.classes.insert(h, l, 1, 0)
	} else {
		p.clsOther++
	}
}

// merge adds shard o into p (same header).
func (p *profiler) merge(o *profiler) {
	for i, c := range p.cols {
		c.merge(o.cols[i])
	}
	if p.classes != nil {
		p.clsOther += o.clsOther
		o.classes.each(func(k []byte, n int64, _ uint8) {
			h := hashBytes(k)
			if e := p.classes.find(h, k); e != nil {
				e.n += n
			} else if p.classes.len() < maxClassCount && len(p.classes.keys)+len(k) <= maxClassBytes {
				p.classes.insert(h, k, n, 0)
			} else {
				p.clsOther += n
			}
		})
	}
}

func (c *colStats) merge(o *colStats) {
	c.count += o.count
	c.missing += o.missing
	c.nonNum += o.nonNum
	c.nonInt += o.nonInt
	c.nonBool += o.nonBool
	c.sumLen += o.sumLen
	c.maxLen = max(c.maxLen, o.maxLen)
	c.formula += o.formula
	for k := range c.pii.n {
		c.pii.n[k] += o.pii.n[k]
	}
	// Moments (Chan et al.'s pairwise update).
	c.finishMoments()
	o.finishMoments()
	if o.seen > 0 {
		if c.seen == 0 {
			c.mean, c.m2 = o.mean, o.m2
		} else {
			n := float64(c.seen + o.seen)
			d := o.mean - c.mean
			c.mean += d * float64(o.seen) / n
			c.m2 += o.m2 + d*d*float64(c.seen)*float64(o.seen)/n
		}
		c.seen += o.seen
		c.min, c.max = min(c.min, o.min), max(c.max, o.max)
	}
	// Bottom-k samples: the k smallest keys of the union.
	for _, kv := range o.smp {
		if kv.key < c.thresh {
			c.addSample(kv)
		}
	}
	// Sketches: counts add up; beyond capacity the smallest go.
	c.evictions += o.evictions
	c.evicted = c.evicted || o.evicted
	c.sketchOff = c.sketchOff || o.sketchOff
	o.sketch.each(func(k []byte, n int64, bits uint8) {
		h := hashBytes(k)
		if e := c.sketch.find(h, k); e != nil {
			e.n += n
			return
		}
		c.sketch.insert(h, k, n, bits)
	})
	for c.sketch.len() > c.sketchCap {
		c.sketch.removeMin()
		c.evicted = true
	}
}

// finishMoments turns the shifted sums into mean and m2 (once).
func (c *colStats) finishMoments() {
	if c.merged {
		return
	}
	c.merged = true
	if c.seen == 0 {
		return
	}
	n := float64(c.seen)
	c.mean = c.shift + c.s1/n
	c.m2 = max(c.s2-c.s1*c.s1/n, 0)
}

// finish prepares the merged column for profile: final moments and the
// sample ordered by key (the same values in the same order whatever the
// sharding).
func (c *colStats) finish() {
	c.finishMoments()
	c.cutSample()
	slices.SortFunc(c.smp, func(a, b keyVal) int { return cmp.Compare(a.key, b.key) })
	c.sample = make([]float64, len(c.smp))
	for i, kv := range c.smp {
		c.sample[i] = kv.val
	}
}

// hashSet is an open-addressing table of row hashes (linear probing, grown
// by doubling up to maxDupIndex entries at half load): a quarter of the
// memory of a map and one cache miss per lookup.
type hashSet struct {
	kv []uint64 // key, value interleaved: one cache line per probe
	n  int
	// seen is a one-hash Bloom filter (1 MiB) in front of the table: most
	// rows are new, and it answers "new" without touching the table.
	seen []uint64
}

func newHashSet() *hashSet { return &hashSet{kv: make([]uint64, 2<<12), seen: make([]uint64, 1<<17)} }

func (h *hashSet) bit(k uint64) (int, uint64) {
	b := (k >> 7) & (1<<23 - 1)
	return int(b >> 6), 1 << (b & 63)
}

func (h *hashSet) slot(k uint64) uint64 {
	return (k * 0x9e3779b97f4a7c15) >> 20 & uint64(len(h.kv)/2-1)
}

func (h *hashSet) get(k uint64) (uint64, bool) {
	k |= 1 // 0 marks an empty slot
	if w, b := h.bit(k); h.seen[w]&b == 0 {
		return 0, false
	}
	m := uint64(len(h.kv)/2 - 1)
	for i := h.slot(k); ; i = (i + 1) & m {
		switch h.kv[2*i] {
		case k:
			return h.kv[2*i+1], true
		case 0:
			return 0, false
		}
	}
}

// put inserts k (absent); false when the table is full.
func (h *hashSet) put(k, v uint64) bool {
	if h.n >= maxDupIndex {
		return false
	}
	if 2*(h.n+1) > len(h.kv)/2 {
		old := h.kv
		h.kv, h.n = make([]uint64, 2*len(old)), 0
		for i := 0; i < len(old); i += 2 {
			if old[i] != 0 {
				h.put(old[i], old[i+1])
			}
		}
	}
	k |= 1
	w, b := h.bit(k)
	h.seen[w] |= b
	m := uint64(len(h.kv)/2 - 1)
	i := h.slot(k)
	for h.kv[2*i] != 0 {
		i = (i + 1) & m
	}
	h.kv[2*i], h.kv[2*i+1] = k, v
	h.n++
	return true
}

func (c *colStats) inferType() Type {
	switch {
	case c.count == 0:
		return TypeText
	case c.nonBool == 0:
		return TypeBoolean
	case c.nonNum == 0 && c.nonInt == 0:
		return TypeInteger
	case c.nonNum == 0:
		return TypeNumeric
	case !c.evicted && c.sketch.len() <= categoricalMaxN && c.sumLen/c.count <= maxCatKey:
		return TypeCategorical
	}
	return TypeText
}

func ptr(v float64) *float64 { return &v }

func (c *colStats) profile(declared *Column, rows int64) ColumnProfile {
	cp := ColumnProfile{Name: c.name, Count: c.count, Missing: c.missing, Formula: c.formula}
	if rows > 0 {
		cp.MissPct = float64(c.missing) / float64(rows)
	}
	cp.Type = c.inferType()
	if declared != nil {
		cp.Type, cp.Declared = declared.Type, true
	}
	if c.count > 0 {
		cp.MeanLen = float64(c.sumLen) / float64(c.count)
		cp.MaxLen = c.maxLen
	}
	if (cp.Type == TypeNumeric || cp.Type == TypeInteger) && c.seen > 0 {
		cp.Min, cp.Max, cp.Mean = ptr(c.min), ptr(c.max), ptr(c.mean)
		cp.Std = ptr(math.Sqrt(c.m2 / float64(c.seen)))
		s := slices.Clone(c.sample)
		slices.Sort(s)
		cp.Approximate = int64(len(s)) < c.seen
		for _, q := range quantilePoints {
			v := quantile(s, q)
			switch q {
			case 0:
				v = c.min
			case 1:
				v = c.max
			}
			cp.Quantiles = append(cp.Quantiles, Quantile{Q: q, Value: v})
		}
		cp.Bins = decileEdges(s)
		cp.BinShares = binShares(s, cp.Bins)
		return cp
	}
	cp.Distinct = c.sketch.len()
	cp.DistinctAtCap = c.evicted
	cp.Approximate = c.evicted
	type kv struct {
		k string
		v int64
	}
	var all []kv
	c.sketch.each(func(k []byte, n int64, _ uint8) { all = append(all, kv{string(k), n}) })
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	for i, e := range all {
		if i == topK {
			break
		}
		cp.Top = append(cp.Top, Count{Value: e.k, Count: e.v})
	}
	return cp
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// decileEdges returns distinct interior decile edges of a sorted sample.
func decileEdges(s []float64) []float64 {
	var out []float64
	for i := 1; i < 10; i++ {
		v := quantile(s, float64(i)/10)
		if len(out) == 0 || v > out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

func binOf(edges []float64, v float64) int {
	return sort.Search(len(edges), func(i int) bool { return v < edges[i] })
}

func binShares(s, edges []float64) []float64 {
	out := make([]float64, len(edges)+1)
	if len(s) == 0 {
		return out
	}
	for _, v := range s {
		out[binOf(edges, v)]++
	}
	for i := range out {
		out[i] /= float64(len(s))
	}
	return out
}

// psi is the population stability index Σ (a−e)·ln(a/e), with shares
// floored at 1e-4 so empty bins stay finite.
func psi(expected, actual []float64) float64 {
	const eps = 1e-4
	var s float64
	for i := range expected {
		e, a := max(expected[i], eps), max(actual[i], eps)
		s += (a - e) * math.Log(a/e)
	}
	return s
}

// drift fills PSI for columns present in prev with a compatible type.
func drift(cols []ColumnProfile, stats []*colStats, prev *Report) {
	if prev == nil {
		return
	}
	byName := map[string]ColumnProfile{}
	for _, c := range prev.Columns {
		byName[c.Name] = c
	}
	for i := range cols {
		old, ok := byName[cols[i].Name]
		if !ok {
			continue
		}
		c := &cols[i]
		switch {
		case len(old.Bins) > 0 && len(old.BinShares) == len(old.Bins)+1 && len(stats[i].sample) > 0:
			c.PSI = ptr(psi(old.BinShares, binShares(stats[i].sample, old.Bins)))
		case len(old.Top) > 0 && len(c.Top) > 0 && old.Count > 0 && c.Count > 0:
			c.PSI = ptr(psi(catShares(old.Top, old.Count, old.Top), catShares(c.Top, c.Count, old.Top)))
		}
	}
}

// catShares is the share of each of ref's categories in top (+ "other").
func catShares(top []Count, total int64, ref []Count) []float64 {
	m := map[string]int64{}
	for _, t := range top {
		m[t.Value] = t.Count
	}
	out := make([]float64, len(ref)+1)
	var in int64
	for i, r := range ref {
		out[i] = float64(m[r.Value]) / float64(total)
		in += m[r.Value]
	}
	out[len(ref)] = float64(total-in) / float64(total)
	return out
}

// nameHints are column names that suggest direct identifiers.
var nameHints = []string{"email", "e_mail", "e-mail", "phone", "mobile", "telephone", "ssn", "social_security",
	"iban", "card_number", "cardnumber", "credit_card", "passport", "ip_address", "ipaddress", "national_id",
	"first_name", "last_name", "full_name", "surname", "date_of_birth", "dob", "address"}

func piiHint(name string) bool {
	n := strings.ToLower(name)
	for _, h := range nameHints {
		if n == h || strings.HasPrefix(n, h+"_") || strings.HasSuffix(n, "_"+h) {
			return true
		}
	}
	return false
}
