package auditlog_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/tsa"
	"github.com/rampart-mlaas/rampart/auditlog/tsa/tsatest"
)

func startTSA(t *testing.T) *tsatest.Server {
	t.Helper()
	s, err := tsatest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// waitStamped waits until every stored checkpoint carries a token.
func waitStamped(t *testing.T, st auditlog.Store, want int) []auditlog.StoredCheckpoint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cps, err := st.Checkpoints(context.Background(), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		pending, err := st.UntimestampedCheckpoints(context.Background(), time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) >= want && len(pending) == 0 {
			return cps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d checkpoints, %d still without a time-stamp", len(cps), len(pending))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCheckpointsAreTimestamped (AUDIT-2): every checkpoint published with a
// TSA configured carries a token whose imprint is the checkpoint's digest and
// whose signature verifies against the test TSA's certificate.
func TestCheckpointsAreTimestamped(t *testing.T) {
	ctx := context.Background()
	s := startTSA(t)
	st := newDB(t).Audit()
	l := openLog(t, st, newKey(t), func(c *auditlog.Config) { c.TSA = &tsa.Client{URL: s.URL, Roots: s.Roots()} })
	const rounds = 5
	for i := 0; i < rounds; i++ {
		appendN(t, l, 3)
		if _, err := l.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cps := waitStamped(t, st, rounds)
	for _, sc := range cps {
		c, err := l.CheckpointAt(ctx, sc.Size)
		if err != nil {
			t.Fatal(err)
		}
		d := c.Digest()
		info, err := tsa.Verify(c.Timestamp, d[:], s.Roots())
		if err != nil {
			t.Fatalf("checkpoint %d: %v", c.Size, err)
		}
		if !info.Signer.Equal(s.TSACert) {
			t.Fatalf("checkpoint %d signed by %v", c.Size, info.Signer.Subject)
		}
	}
	if st := l.Status().TSA; !st.Configured || !st.Healthy || st.Pending != 0 {
		t.Fatalf("TSA status %+v", st)
	}
	// The whole store verifies with time-stamps required and chained.
	rep, err := auditlog.VerifyStore(ctx, st, l.VerifierKey(), auditlog.StoreVerifyOptions{
		TSARoots: s.Roots(), RequireTimestamps: true, RequireCovered: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Timestamps != rounds {
		t.Fatalf("report %+v", rep)
	}
	// A token from another TSA does not satisfy the roots.
	other := startTSA(t)
	if _, err := auditlog.VerifyStore(ctx, st, l.VerifierKey(), auditlog.StoreVerifyOptions{TSARoots: other.Roots()}); err == nil {
		t.Fatal("tokens verified against a foreign CA")
	}
}

// TestUnreachableTSA: a TSA that is down never blocks or drops events; the
// backlog is reported and stamped once the TSA is back.
func TestUnreachableTSA(t *testing.T) {
	ctx := context.Background()
	s := startTSA(t)
	s.SetDown(true)
	st := newDB(t).Audit()
	l := openLog(t, st, newKey(t), func(c *auditlog.Config) {
		c.TSA = &tsa.Client{URL: s.URL, HTTP: &http.Client{Timeout: time.Second}}
	})
	start := time.Now()
	for i := 0; i < 3; i++ {
		appendN(t, l, 4)
		if _, err := l.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("appends took %v with the TSA down", d)
	}
	if l.Size() != 12 {
		t.Fatalf("size %d", l.Size())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ts := l.Status().TSA
		if !ts.Healthy && ts.LastError != "" && ts.Pending > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TSA failure not reported: %+v", ts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.SetDown(false)
	waitStamped(t, st, 3)
	deadline = time.Now().Add(5 * time.Second)
	for !l.Status().TSA.Healthy {
		if time.Now().After(deadline) {
			t.Fatalf("TSA status did not recover: %+v", l.Status().TSA)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := auditlog.VerifyStore(ctx, st, l.VerifierKey(), auditlog.StoreVerifyOptions{
		TSARoots: s.Roots(), RequireTimestamps: true}); err != nil {
		t.Fatal(err)
	}
}
