package executor

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rampart-mlaas/rampart/ml"
	"golang.org/x/sys/unix"
)

// Spec is everything a child learns about its job: the training spec and
// its own memory budget. It carries no IDs, keys, paths or credentials.
type Spec struct {
	Algorithm   string            `json:"algorithm"`
	Task        string            `json:"task,omitempty"`
	Target      string            `json:"target"`
	Features    []string          `json:"features,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Seed        uint64            `json:"seed"`
	DPEpsilon   float64           `json:"dp_epsilon,omitempty"`
	DPDelta     float64           `json:"dp_delta,omitempty"`
	MemoryBytes int64             `json:"memory_bytes"`
	CPUSeconds  int               `json:"cpu_seconds"`
	Processes   int               `json:"processes"`
}

// Progress is one progress report from a child.
type Progress struct {
	Stage string   `json:"stage"`
	Step  int      `json:"step"`
	Total int      `json:"total"`
	Loss  *float64 `json:"loss,omitempty"`
}

// Output is what a successful training function returns.
type Output struct {
	Artifact  []byte
	Metrics   map[string]float64
	DPEpsilon float64
	DPDelta   float64
}

// resultMsg is the result frame (the artifact travels in its own frame).
type resultMsg struct {
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	DPEpsilon float64            `json:"dp_epsilon,omitempty"`
	DPDelta   float64            `json:"dp_delta,omitempty"`
}

// Error kinds a child reports in its error frame.
const (
	kindInvalid  = "invalid"  // bad parameters or data for this algorithm
	kindDiverged = "diverged" // NaN/Inf loss (TRAIN-4)
	kindInternal = "internal"
	kindDenied   = "denied" // the OS refused an access (TEN-2)
)

type errorMsg struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// TrainFunc trains one model from a CSV stream, reporting progress.
type TrainFunc func(ctx context.Context, spec Spec, data io.Reader, progress func(Progress)) (*Output, error)

// ServeChild is the child side of the executor: the body of the hidden
// `rampart internal train-worker` command. It confines itself first
// (seccomp, TEN-2), then reads its spec and data from in, trains with train
// and writes progress, result and artifact frames to out. It returns the
// process exit code.
func ServeChild(in io.Reader, out io.Writer, train TrainFunc) int {
	typ, b, err := readFrame(in)
	if err != nil || typ != frameSpec {
		return 4
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return 4
	}
	// Limits first, then seccomp (which forbids changing them), then the
	// data: nothing untrusted is processed before the process is confined.
	if err := setLimits(spec); err != nil {
		_ = writeJSONFrame(out, frameError, errorMsg{Kind: kindInternal, Message: "limits: " + err.Error()})
		return 3
	}
	// SIGXCPU at the soft CPU limit ends the job at once; the hard limit
	// (SIGKILL one second later) is the backstop.
	xcpu := make(chan os.Signal, 1)
	signal.Notify(xcpu, syscall.SIGXCPU)
	go func() {
		<-xcpu
		os.Exit(exitCPULimit)
	}()
	if err := confine(); err != nil {
		_ = writeJSONFrame(out, frameError, errorMsg{Kind: kindInternal, Message: "confinement failed: " + err.Error()})
		return 3
	}
	if spec.MemoryBytes > 0 {
		// Let the GC work hard before the address-space limit is reached.
		debug.SetMemoryLimit(spec.MemoryBytes * 6 / 10)
	}
	// The data is parsed as it arrives, straight from the pipe: no copy of
	// the whole CSV is kept while the model trains.
	data := &dataReader{in: bufio.NewReaderSize(in, dataChunk)}
	progress := (&progressThrottle{send: func(p Progress) { _ = writeJSONFrame(out, frameProgress, p) }}).report
	o, err := train(context.Background(), spec, data, progress)
	if data.err != nil {
		return 4 // the parent broke the frame protocol
	}
	if err != nil {
		kind := kindInternal
		switch {
		case errors.Is(err, ml.ErrDiverged):
			kind = kindDiverged
		case errors.Is(err, fs.ErrPermission):
			kind = kindDenied
		case errors.Is(err, ml.ErrParam), errors.Is(err, ml.ErrData), errors.Is(err, ml.ErrFrame), errors.Is(err, errSpec):
			kind = kindInvalid
		}
		_ = writeJSONFrame(out, frameError, errorMsg{Kind: kind, Message: err.Error()})
		return 0
	}
	if err := writeJSONFrame(out, frameResult, resultMsg{Metrics: o.Metrics, DPEpsilon: o.DPEpsilon, DPDelta: o.DPDelta}); err != nil {
		return 5
	}
	if err := writeFrame(out, frameArtifact, o.Artifact); err != nil {
		return 5
	}
	return 0
}

// childProgressEvery bounds the child's progress frames within a stage:
// a GBDT reports every tree and an MLP every epoch, hundreds of frames a
// second, each a JSON encoding, a write and a wake-up of the parent, which
// stores at most one every 500 ms (jobs.progressEvery). The first report,
// every change of stage and "done" are sent at once.
const childProgressEvery = 100 * time.Millisecond

// progressThrottle sends the reports that childProgressEvery lets through.
type progressThrottle struct {
	send  func(Progress)
	stage string
	last  time.Time
	sent  bool
}

func (t *progressThrottle) report(p Progress) {
	now := time.Now()
	if t.sent && p.Stage == t.stage && p.Stage != "done" && now.Sub(t.last) < childProgressEvery {
		return
	}
	t.sent, t.stage, t.last = true, p.Stage, now
	t.send(p)
}

// dataReader reads the payloads of data frames up to the end frame.
type dataReader struct {
	in   io.Reader
	left uint32 // bytes of the current frame not yet read
	end  bool
	err  error // a protocol error; sticky
}

func (d *dataReader) Read(p []byte) (int, error) {
	for d.left == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.end {
			return 0, io.EOF
		}
		var hdr [5]byte
		if _, err := io.ReadFull(d.in, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the end frame is missing
			}
			d.err = fmt.Errorf("%w: %w", errFrame, err)
			return 0, d.err
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		switch {
		case hdr[0] == frameEnd && n == 0:
			d.end = true
		case hdr[0] == frameData && n <= maxSmallFrame:
			d.left = n
		default:
			d.err = fmt.Errorf("%w: type %q length %d in the data", errFrame, hdr[0], n)
		}
	}
	if uint32(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.in.Read(p)
	d.left -= uint32(n)
	switch {
	case err == nil:
	case n > 0 && errors.Is(err, io.EOF):
		err = nil // the next Read reports what is missing
	default:
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.err = fmt.Errorf("%w: %w", errFrame, err)
		err = d.err
	}
	return n, err
}

// setLimits lowers the process's own limits (TEN-2, TRAIN-4). The CPU hard
// limit is one second above the soft one: SIGXCPU, then SIGKILL.
func setLimits(spec Spec) error {
	for _, l := range []struct {
		res      int
		cur, max uint64
	}{
		{unix.RLIMIT_AS, uint64(spec.MemoryBytes), uint64(spec.MemoryBytes)},
		{unix.RLIMIT_CPU, uint64(spec.CPUSeconds), uint64(spec.CPUSeconds) + 1},
		{unix.RLIMIT_NPROC, uint64(spec.Processes), uint64(spec.Processes)},
		{unix.RLIMIT_CORE, 0, 0},
		{unix.RLIMIT_FSIZE, 64 << 20, 64 << 20},
	} {
		if l.cur == 0 && l.res != unix.RLIMIT_CORE {
			return fmt.Errorf("limit %d missing", l.res)
		}
		if err := unix.Setrlimit(l.res, &unix.Rlimit{Cur: l.cur, Max: l.max}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", l.res, err)
		}
	}
	return nil
}

func writeJSONFrame(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, typ, b)
}

var errSpec = errors.New("invalid job spec")

// exitCPULimit is the child's exit status when it reached its CPU limit.
const exitCPULimit = 86

// Train is the real training function: parse the CSV, train with the ml
// engine, evaluate on the training data and marshal the canonical artifact.
func Train(ctx context.Context, spec Spec, data io.Reader, progress func(Progress)) (*Output, error) {
	f, err := ml.ReadCSV(data, ml.CSVOptions{})
	if err != nil {
		return nil, err
	}
	ts := ml.TrainSpec{Algorithm: spec.Algorithm, Task: ml.Task(spec.Task), Target: spec.Target, Features: spec.Features,
		Params: spec.Params, Seed: spec.Seed}
	if spec.DPEpsilon > 0 {
		delta := spec.DPDelta
		if delta <= 0 {
			// TRAIN-2: δ well below 1/N unless the caller chose one.
			delta = 1 / (10 * float64(max(f.NumRows(), 1)))
		}
		ts.DP = &ml.DPSpec{Epsilon: spec.DPEpsilon, Delta: delta}
	}
	m, err := ml.Train(ctx, f, ts, func(p ml.Progress) {
		progress(Progress{Stage: p.Stage, Step: p.Step, Total: p.Total, Loss: finite(p.Loss)})
	})
	if err != nil {
		return nil, err
	}
	art, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal artifact: %w", err)
	}
	out := &Output{Artifact: art, Metrics: map[string]float64{
		"rows": float64(m.Info.Rows), "iterations": float64(m.Info.Iterations), "final_loss": m.Info.FinalLoss}}
	if ev, err := m.Evaluate(f); err == nil {
		put := func(k string, v float64) {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out.Metrics[k] = v
			}
		}
		if m.Task == ml.Classification {
			put("train_accuracy", ev.Accuracy)
			put("train_log_loss", ev.LogLoss)
			put("train_auc", ev.AUC)
			put("train_f1", ev.F1)
		} else {
			put("train_rmse", ev.RMSE)
			put("train_mae", ev.MAE)
			put("train_r2", ev.R2)
		}
	}
	for k, v := range out.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(out.Metrics, k)
		}
	}
	if m.DP != nil {
		out.DPEpsilon, out.DPDelta = m.DP.Epsilon, m.DP.Delta
	}
	return out, nil
}

func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}
