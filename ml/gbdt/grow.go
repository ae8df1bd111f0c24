package gbdt

import (
	"fmt"
	"math"
	"sort"

	"github.com/rampart-mlaas/rampart/ml/internal/parallel"
)

// histT is the type of histogram sums. Gradient pairs are stored as
// float32 (XGBoost's GradientPair) and histogram bins are summed in
// float32 too: a histogram is 20 features × 257 slots × 8 bytes = 41 KB
// instead of 82 KB, and each row gathers 8 bytes of (g, h) instead of 16.
// Node totals, split gains and leaf values stay float64 (XGBoost's
// GradStats). Summing the bins in float64 from the float32 pairs was
// measured as well: no faster, see bench/ml/README.md.
type histT = float32

// grower builds one tree from gradient statistics.
type grower struct {
	ds     *dataset
	p      Params
	idx    []int // rows, partitioned so each node owns a contiguous range
	tmp    []int
	leaves []leafRange
	pool   [][]histT // released histogram buffers, reused to spare the GC
}

func (g *grower) getHist() []histT {
	h := g.getDirtyHist()
	clear(h)
	return h
}

// getDirtyHist returns a histogram buffer the caller must clear.
func (g *grower) getDirtyHist() []histT {
	if k := len(g.pool); k > 0 {
		h := g.pool[k-1]
		g.pool = g.pool[:k-1]
		return h
	}
	return make([]histT, 2*g.ds.total)
}

func (g *grower) putHist(h []histT) {
	if h != nil {
		g.pool = append(g.pool, h)
	}
}

// leafRange is a leaf of the last grown tree and its rows in idx.
type leafRange struct {
	id         int32
	start, end int
}

type frontierNode struct {
	id         int32 // index in the tree
	start, end int   // range in grower.idx
	g, h       float64
	hist       []histT // 2 sums (g, h) per histogram slot
}

type split struct {
	gain        float64
	feature     int
	bin         int
	defaultLeft bool
	gl, hl      float64
}

// grow builds a tree depth-wise. XGBoost's "depthwise" policy: every node of
// a level is considered before the next level; MaxLeaves, when set, keeps the
// highest-gain splits of each level.
func (g *grower) grow(rows, feats []int, gh []float32) ([]Node, error) {
	g.idx = append(g.idx[:0], rows...)
	g.leaves = g.leaves[:0]
	if cap(g.tmp) < len(rows) {
		g.tmp = make([]int, len(rows))
	}
	root := &frontierNode{id: 0, start: 0, end: len(rows)}
	for _, r := range rows {
		root.g += float64(gh[2*r])
		root.h += float64(gh[2*r+1])
	}
	g.buildHists([]*frontierNode{root}, feats, gh)
	tree := []Node{{Feature: -1}}
	frontier := []*frontierNode{root}
	leaves := 1
	for depth := 0; len(frontier) > 0 && (g.p.MaxDepth == 0 || depth < g.p.MaxDepth); depth++ {
		splits := make([]split, len(frontier))
		parallel.Run(len(frontier), func(i int) { splits[i] = g.bestSplit(frontier[i], feats) })
		order := make([]int, 0, len(frontier))
		for i, s := range splits {
			if s.gain > 0 {
				order = append(order, i)
			}
		}
		if g.p.MaxLeaves > 0 {
			sort.SliceStable(order, func(a, b int) bool { return splits[order[a]].gain > splits[order[b]].gain })
			if room := g.p.MaxLeaves - leaves; len(order) > room {
				order = order[:max(0, room)]
			}
			sort.Ints(order)
		}
		if len(order) == 0 {
			break
		}
		var next, small []*frontierNode
		var larger, parents []*frontierNode
		mids := g.partitionAll(frontier, splits, order)
		for oi, i := range order {
			nd, s := frontier[i], splits[i]
			mid := mids[oi]
			l := &frontierNode{id: int32(len(tree)), start: nd.start, end: mid, g: s.gl, h: s.hl}
			r := &frontierNode{id: int32(len(tree) + 1), start: mid, end: nd.end, g: nd.g - s.gl, h: nd.h - s.hl}
			bn := g.ds.binners[s.feature]
			tree[nd.id] = Node{Feature: int32(s.feature), Threshold: bn.upper[s.bin], DefaultLeft: s.defaultLeft, Left: l.id, Right: r.id}
			tree = append(tree, Node{Feature: -1}, Node{Feature: -1})
			leaves++
			// Build the histogram of the smaller child and derive the larger
			// one by subtraction from the parent: half the passes over rows.
			if l.end-l.start <= r.end-r.start {
				small, larger = append(small, l), append(larger, r)
			} else {
				small, larger = append(small, r), append(larger, l)
			}
			parents = append(parents, nd)
			next = append(next, l, r)
		}
		// Children at the depth or leaf limit will not split: they need
		// their gradient sums (known from the split) but no histograms.
		last := (g.p.MaxDepth > 0 && depth+1 >= g.p.MaxDepth) || (g.p.MaxLeaves > 0 && leaves >= g.p.MaxLeaves)
		if last {
			for _, nd := range parents {
				g.putHist(nd.hist)
				nd.hist = nil
			}
			larger = nil
		} else {
			g.buildHists(small, feats, gh)
		}
		// The parent's buffer becomes the larger child's: in place, one
		// node per task.
		parallel.Run(len(larger), func(j int) {
			ph, sh := parents[j].hist, small[j].hist
			for t := range ph {
				ph[t] -= sh[t]
			}
			larger[j].hist = ph
			parents[j].hist = nil
		})
		// Nodes of this level that did not split become leaves.
		split := map[int32]bool{}
		for _, i := range order {
			split[frontier[i].id] = true
		}
		for _, nd := range frontier {
			if !split[nd.id] {
				if err := g.setLeaf(tree, nd); err != nil {
					return nil, err
				}
			}
		}
		frontier = next
		if last {
			break
		}
	}
	for _, nd := range frontier {
		if err := g.setLeaf(tree, nd); err != nil {
			return nil, err
		}
	}
	return tree, nil
}

func (g *grower) setLeaf(tree []Node, nd *frontierNode) error {
	v := -nd.g / (nd.h + g.p.RegLambda) * g.p.LearningRate
	// TRAIN-4: exploding gradients surface as non-finite leaves.
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("gbdt leaf value: %w", ErrDiverged)
	}
	tree[nd.id] = Node{Feature: -1, Value: v}
	g.leaves = append(g.leaves, leafRange{id: nd.id, start: nd.start, end: nd.end})
	g.putHist(nd.hist)
	nd.hist = nil
	return nil
}

// applyLeaves adds each leaf's value to the margins of the rows it holds:
// the sampled rows need no tree walk.
func (g *grower) applyLeaves(tree []Node, margin []float64, outputs, o int) {
	parallel.Run(len(g.leaves), func(i int) {
		lr := g.leaves[i]
		v := tree[lr.id].Value
		for _, r := range g.idx[lr.start:lr.end] {
			margin[r*outputs+o] += v
		}
	})
}

// buildHists fills each node's histogram over all features. Work is split
// into (node, row block) tasks whose boundaries depend only on the node's
// size; each task reads whole rows of bins (one cache line for ≤ 64
// features) and the partial histograms are added in block order, so the
// result is the same on any number of cores (TRAIN-6).
func (g *grower) buildHists(nodes []*frontierNode, feats []int, gh []float32) {
	type task struct {
		node, lo, hi int
		part         []histT
	}
	var tasks []task
	for ni, nd := range nodes {
		for _, b := range parallel.Blocks(nd.end-nd.start, 8192, 32) {
			tasks = append(tasks, task{node: ni, lo: nd.start + b[0], hi: nd.start + b[1], part: g.getDirtyHist()})
		}
	}
	d := g.ds.d
	all := len(feats) == d
	parallel.Run(len(tasks), func(t int) {
		tk := &tasks[t]
		h := tk.part
		clear(h) // here rather than when handed out: on all cores
		offs, rows, idx := g.ds.offs[:d], g.ds.rows, g.idx[tk.lo:tk.hi]
		if !all {
			for _, r := range idx {
				gg, hh := histT(gh[2*r]), histT(gh[2*r+1])
				row := rows[r*d : r*d+d]
				for _, f := range feats {
					s := 2 * (offs[f] + int(row[f]))
					h[s] += gg
					h[s+1] += hh
				}
			}
			return
		}
		for _, r := range idx {
			gg, hh := histT(gh[2*r]), histT(gh[2*r+1])
			row := rows[r*d : r*d+d]
			o := offs[:len(row)] // one length check per row, none per feature
			for f, b := range row {
				s := 2 * (o[f] + int(b))
				h[s] += gg
				h[s+1] += hh
			}
		}
	})
	for _, nd := range nodes {
		if nd.end == nd.start { // an empty child (min_child_weight = 0) has an all-zero histogram
			nd.hist = g.getHist()
		}
	}
	// Each node's histogram is its first task's, plus the others' in task
	// order. The adds are cut into slot ranges run on all cores; every
	// slot still sums its tasks in the same order.
	type sum struct {
		dst   []histT
		parts [][]histT
	}
	var sums []sum
	for _, tk := range tasks {
		nd := nodes[tk.node]
		if nd.hist == nil {
			nd.hist = tk.part
			sums = append(sums, sum{dst: tk.part})
			continue
		}
		sums[len(sums)-1].parts = append(sums[len(sums)-1].parts, tk.part)
	}
	const span = 2048
	slots := 2 * g.ds.total
	chunks := (slots + span - 1) / span
	parallel.Run(len(sums)*chunks, func(t int) {
		sm := sums[t/chunks]
		lo := (t % chunks) * span
		hi := min(lo+span, slots)
		dst := sm.dst[lo:hi]
		for _, part := range sm.parts {
			for i, v := range part[lo:hi] {
				dst[i] += v
			}
		}
	})
	for _, sm := range sums {
		for _, part := range sm.parts {
			g.putHist(part)
		}
	}
}

func (g *grower) score(G, H float64) float64 { return G * G / (H + g.p.RegLambda) }

// bestSplit scans every feature's bins, trying missing values on each side.
func (g *grower) bestSplit(nd *frontierNode, feats []int) split {
	best := split{gain: 0}
	parent := g.score(nd.g, nd.h)
	mcw := g.p.MinChildWeight
	for _, f := range feats {
		nb := int(g.ds.miss[f])
		if nb < 2 {
			continue
		}
		h := nd.hist[2*g.ds.offs[f]:]
		mg, mh := float64(h[2*nb]), float64(h[2*nb+1])
		var gl, hl float64
		for b := 0; b < nb-1; b++ {
			gl += float64(h[2*b])
			hl += float64(h[2*b+1])
			// Missing values to the right.
			if hl >= mcw && nd.h-hl >= mcw {
				gain := g.score(gl, hl) + g.score(nd.g-gl, nd.h-hl) - parent
				if gain > best.gain {
					// With no missing values in this node, send unseen missing
					// values to the heavier side at prediction time.
					dl := mh == 0 && hl > nd.h-hl
					best = split{gain: gain, feature: f, bin: b, defaultLeft: dl, gl: gl, hl: hl}
				}
			}
			if mh > 0 {
				gl2, hl2 := gl+mg, hl+mh
				if hl2 >= mcw && nd.h-hl2 >= mcw {
					gain := g.score(gl2, hl2) + g.score(nd.g-gl2, nd.h-hl2) - parent
					if gain > best.gain {
						best = split{gain: gain, feature: f, bin: b, defaultLeft: true, gl: gl2, hl: hl2}
					}
				}
			}
		}
	}
	// XGBoost's gain is half the score difference; gamma is compared to it.
	if best.gain/2 <= g.p.Gamma || best.gain < 1e-12 {
		return split{}
	}
	return best
}

// partitionAll reorders each split node's rows so left-going rows come
// first, keeping the relative order on each side (so later sums stay
// deterministic), and returns each node's split point. Nodes are cut into
// fixed row blocks processed in parallel: every block writes its left rows
// ascending and its right rows descending into its own slice of tmp, then
// the pieces are copied back in block order.
func (g *grower) partitionAll(frontier []*frontierNode, splits []split, order []int) []int {
	type task struct {
		node, lo, hi int
		nl           int
	}
	var tasks []task
	first := make([]int, len(order)+1) // tasks of order[i] are tasks[first[i]:first[i+1]]
	for oi, i := range order {
		nd := frontier[i]
		first[oi] = len(tasks)
		for _, b := range parallel.Blocks(nd.end-nd.start, 16384, 32) {
			tasks = append(tasks, task{node: oi, lo: nd.start + b[0], hi: nd.start + b[1]})
		}
	}
	first[len(order)] = len(tasks)
	parallel.Run(len(tasks), func(t int) {
		tk := &tasks[t]
		s := splits[order[tk.node]]
		col, miss, b := g.ds.cols[s.feature], g.ds.miss[s.feature], uint8(s.bin)
		var dl int
		if s.defaultLeft {
			dl = 1
		}
		// Branch-free: the side of a row is as unpredictable as a coin, so
		// every row is stored at both the next left slot (ascending from lo)
		// and the next right slot (descending from hi), and only the counter
		// of its side advances. A store to the other side's slot is
		// overwritten by a later row of that side, or, for the last row of a
		// side, is the same row stored twice to the same slot.
		out := g.tmp[tk.lo:tk.hi]
		nl, top := 0, len(out)-1
		for _, r := range g.idx[tk.lo:tk.hi] {
			v := col[r]
			var l, m int
			if v <= b {
				l = 1
			}
			if v == miss {
				m = 1
			}
			l = l&^m | dl&m
			out[nl] = r
			out[top] = r
			nl += l
			top -= 1 - l
		}
		tk.nl = nl
	})
	mids := make([]int, len(order))
	type move struct{ src, dst, n int }
	var lefts, rights []move
	for oi, i := range order {
		nd := frontier[i]
		L := 0
		for _, tk := range tasks[first[oi]:first[oi+1]] {
			L += tk.nl
		}
		mids[oi] = nd.start + L
		ld, rd := nd.start, nd.start+L
		for _, tk := range tasks[first[oi]:first[oi+1]] {
			lefts = append(lefts, move{src: tk.lo, dst: ld, n: tk.nl})
			rights = append(rights, move{src: tk.hi - 1, dst: rd, n: tk.hi - tk.lo - tk.nl})
			ld += tk.nl
			rd += tk.hi - tk.lo - tk.nl
		}
	}
	parallel.Run(len(lefts), func(t int) {
		l := lefts[t]
		copy(g.idx[l.dst:l.dst+l.n], g.tmp[l.src:l.src+l.n])
		r := rights[t]
		for j := range r.n { // stored descending: reverse back
			g.idx[r.dst+j] = g.tmp[r.src-j]
		}
	})
	return mids
}
