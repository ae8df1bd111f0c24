package jobs_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/jobs"
)

// watchedDatasets counts the bytes read from the data opened at a job's
// start, and can refuse that open.
type watchedDatasets struct {
	inner  jobs.Datasets
	refuse atomic.Bool
	read   atomic.Int64
}

func (w *watchedDatasets) OpenForTraining(ctx context.Context, id string, version int, mode jobs.OpenMode) (*jobs.TrainingData, error) {
	if mode == jobs.OpenTrain && w.refuse.Load() {
		return nil, &rampart.Error{Code: rampart.CodeForbidden, Message: "grant revoked"}
	}
	td, err := w.inner.OpenForTraining(ctx, id, version, mode)
	if err != nil || mode != jobs.OpenTrain {
		return td, err
	}
	rc := td.ReadCloser
	td.ReadCloser = struct {
		io.Reader
		io.Closer
	}{readFunc(func(b []byte) (int, error) { n, err := rc.Read(b); w.read.Add(int64(n)); return n, err }), rc}
	return td, nil
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }

// TestRefusedDataNeverReachesWorker: the worker gets its spec while the
// data is opened at the start (DATA-7); when that open is refused, or the
// version is not the one admitted (DATA-3), no byte of the data is read,
// the worker sends nothing (no progress), and the job fails with the
// reason. A job whose open succeeds trains as usual.
func TestRefusedDataNeverReachesWorker(t *testing.T) {
	var w *watchedDatasets
	e := newEnvCfg(t, jobs.Config{Slots: 1}, func(d *jobs.Deps) {
		w = &watchedDatasets{inner: d.Datasets}
		d.Datasets = w
	})
	cases := []struct {
		name   string
		d      dataset
		refuse bool
		reason string
	}{
		{"refused", dataset{csv: classification(50)}, true, "cannot read the training data"},
		{"other version", dataset{csv: classification(50), tamper: true}, false, "digest changed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.refuse.Store(c.refuse)
			w.read.Store(0)
			j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: e.add(c.d), Target: "y", Algorithm: "logreg"})
			if err != nil {
				t.Fatal(err)
			}
			j, evs := e.wait(t, j.ID)
			if j.State != rampart.JobFailed || !strings.Contains(j.Reason, c.reason) {
				t.Fatalf("job %s %q, want failed: %s", j.State, j.Reason, c.reason)
			}
			for _, ev := range evs {
				if ev.Type == rampart.EventProgress {
					t.Fatalf("progress event %+v from a worker without data", ev)
				}
			}
			if j.Result != nil {
				t.Fatalf("result %+v", j.Result)
			}
			if n := w.read.Load(); n != 0 {
				t.Fatalf("%d bytes of refused data read", n)
			}
		})
	}
	w.refuse.Store(false)
	w.read.Store(0)
	j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: e.add(dataset{csv: classification(50)}), Target: "y", Algorithm: "logreg"})
	if err != nil {
		t.Fatal(err)
	}
	if j, _ = e.wait(t, j.ID); j.State != rampart.JobSucceeded {
		t.Fatalf("job %s %q", j.State, j.Reason)
	}
	if w.read.Load() != int64(len(classification(50))) {
		t.Fatalf("read %d bytes, want %d", w.read.Load(), len(classification(50)))
	}
}
