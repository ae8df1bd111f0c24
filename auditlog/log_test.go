package auditlog_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
)

func TestAppendConcurrentProofsAndVerify(t *testing.T) {
	ctx := context.Background()
	st := newDB(t).Audit()
	l := openLog(t, st, newKey(t))
	const workers, per = 16, 40
	var wg sync.WaitGroup
	seen := make([]bool, workers*per)
	var mu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				idx, err := l.Append(ctx, testEvent(w*per+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[idx] {
					t.Errorf("index %d handed out twice", idx)
				}
				seen[idx] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := l.Size(); got != workers*per {
		t.Fatalf("size %d, want %d", got, workers*per)
	}
	cp1, err := l.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp1.Size != workers*per {
		t.Fatalf("checkpoint size %d", cp1.Size)
	}
	appendN(t, l, 77)
	cp2, err := l.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prf, err := l.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	for cur := ""; ; {
		recs, next, err := l.Events(ctx, auditlog.Query{Page: rampart.Page{Cursor: cur, Limit: 100}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			leaves = append(leaves, r.Raw)
		}
		if next == "" {
			break
		}
		cur = next
	}
	// Consistency proofs from many sizes verify against roots recomputed
	// from the events.
	for from := uint64(0); from <= cp2.Size; from += 37 {
		p, err := l.ConsistencyProof(ctx, from, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		old := auditlog.Checkpoint{Size: from, Root: auditlog.RootOf(leaves[:from])}
		if err := auditlog.VerifyConsistency(old, cp2, p); err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
	}
	var proven []auditlog.ProvenEvent
	for i := uint64(0); i < cp2.Size; i += 13 {
		p, err := l.InclusionProof(ctx, i, cp2.Size)
		if err != nil {
			t.Fatal(err)
		}
		proven = append(proven, auditlog.ProvenEvent{Index: i, Event: leaves[i], Proof: p})
	}
	res, err := auditlog.Verify(auditlog.VerifyRequest{
		Key: l.VerifierKey(), Checkpoint: cp2.Note, Witness: cp1.Note, Consistency: prf,
		Leaves: leaves, Events: proven,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.LeavesChecked != int(cp2.Size) || res.EventsChecked != len(proven) {
		t.Fatalf("checked %+v", res)
	}
	if _, err := auditlog.VerifyStore(ctx, st, l.VerifierKey(), auditlog.StoreVerifyOptions{Witness: cp1.Note, RequireCovered: true}); err != nil {
		t.Fatal(err)
	}
}

func TestEventsFilterAndPaging(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, newDB(t).Audit(), newKey(t))
	appendN(t, l, 120)
	tests := []struct {
		name string
		q    auditlog.Query
		want func(auditlog.Event) bool
	}{
		{"all", auditlog.Query{}, func(auditlog.Event) bool { return true }},
		{"tenant", auditlog.Query{Tenant: "tn_beta"}, func(e auditlog.Event) bool { return e.Tenant == "tn_beta" }},
		{"action", auditlog.Query{Action: "auth.login"}, func(e auditlog.Event) bool { return e.Action == "auth.login" }},
		{"principal+resource", auditlog.Query{Principal: "pr_3", Resource: "mdl_2"},
			func(e auditlog.Event) bool { return e.Principal == "pr_3" && e.Resource == "mdl_2" }},
		{"tenant+action", auditlog.Query{Tenant: "tn_alpha", Action: "model.predict"},
			func(e auditlog.Event) bool { return e.Tenant == "tn_alpha" && e.Action == "model.predict" }},
		{"future", auditlog.Query{Since: time.Now().Add(time.Hour)}, func(auditlog.Event) bool { return false }},
		{"past", auditlog.Query{Until: time.Now().Add(-time.Hour)}, func(auditlog.Event) bool { return false }},
		{"window", auditlog.Query{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, func(auditlog.Event) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := 0
			for i := 0; i < 120; i++ {
				ev := testEvent(i)
				if tt.want(ev) {
					want++
				}
			}
			got := 0
			last := int64(-1)
			q := tt.q
			q.Page.Limit = 7
			for {
				recs, next, err := l.Events(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if int64(r.Index) <= last {
						t.Fatalf("index %d after %d", r.Index, last)
					}
					last = int64(r.Index)
					if !tt.want(r.Event) {
						t.Fatalf("unexpected event %+v", r.Event)
					}
					got++
				}
				if next == "" {
					break
				}
				q.Page.Cursor = next
			}
			if got != want {
				t.Fatalf("got %d events, want %d", got, want)
			}
		})
	}
	if _, _, err := l.Events(ctx, auditlog.Query{Page: rampart.Page{Cursor: "!!"}}); !errors.Is(err, rampart.ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestProofRangeErrors(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, newDB(t).Audit(), newKey(t))
	appendN(t, l, 10)
	tests := []struct {
		name        string
		incl        bool
		a, b        uint64
		wantMessage string
	}{
		{"inclusion size 0", true, 0, 0, "[1, 10]"},
		{"inclusion size too big", true, 0, 11, "[1, 10]"},
		{"inclusion index >= size", true, 5, 5, "[0, 4]"},
		{"consistency to too big", false, 0, 11, "[0, 10]"},
		{"consistency from > to", false, 6, 5, "[0, 5]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.incl {
				_, err = l.InclusionProof(ctx, tt.a, tt.b)
			} else {
				_, err = l.ConsistencyProof(ctx, tt.a, tt.b)
			}
			if !errors.Is(err, rampart.ErrInvalid) || !strings.Contains(err.Error(), tt.wantMessage) {
				t.Fatalf("err = %v, want invalid with %q", err, tt.wantMessage)
			}
		})
	}
	if _, err := l.InclusionProof(ctx, 9, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ConsistencyProof(ctx, 0, 10); err != nil {
		t.Fatal(err)
	}
}

func TestSensitiveDetailsAreMACed(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, newDB(t).Audit(), newKey(t))
	canary := "canary-secret-4f1d9c"
	ev := testEvent(1)
	ev.Sensitive = map[string][]byte{"email": []byte(canary)}
	idx, err := l.Append(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := l.Events(ctx, auditlog.Query{})
	if err != nil {
		t.Fatal(err)
	}
	raw := recs[idx].Raw
	if bytes.Contains(raw, []byte(canary)) {
		t.Fatalf("canary in log: %s", raw)
	}
	mac, _ := testHMAC(ctx, ev.Tenant, []byte(canary))
	if got := recs[idx].Event.Details["email"]; !strings.HasPrefix(got, "hmac:") || len(got) < 40 {
		t.Fatalf("email detail = %q", got)
	}
	_ = mac
	// Without an HMAC key, sensitive details are refused, not recorded raw.
	l2 := openLog(t, newDB(t).Audit(), newKey(t), func(c *auditlog.Config) { c.HMAC = nil })
	if _, err := l2.Append(ctx, ev); !errors.Is(err, rampart.ErrInvalid) {
		t.Fatalf("append without HMAC: %v", err)
	}
}

func TestAppendValidation(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, newDB(t).Audit(), newKey(t))
	long := strings.Repeat("x", auditlog.MaxFieldLen+1)
	tests := []struct {
		name string
		mod  func(*auditlog.Event)
	}{
		{"no action", func(e *auditlog.Event) { e.Action = "" }},
		{"bad decision", func(e *auditlog.Event) { e.Decision = "maybe" }},
		{"bad role", func(e *auditlog.Event) { e.Role = "root" }},
		{"long resource", func(e *auditlog.Event) { e.Resource = long }},
		{"bad utf8", func(e *auditlog.Event) { e.Principal = "\xff" }},
		{"year 10000", func(e *auditlog.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"bad digest", func(e *auditlog.Event) { e.Digest = "md5:abc" }},
		{"upper digest", func(e *auditlog.Event) { e.Digest = "sha256:" + strings.Repeat("A", 64) }},
		{"reserved prefix", func(e *auditlog.Event) { e.Details = map[string]string{"k": "hmac:x"} }},
		{"dup detail", func(e *auditlog.Event) {
			e.Details = map[string]string{"k": "v"}
			e.Sensitive = map[string][]byte{"k": []byte("v")}
		}},
		{"too many details", func(e *auditlog.Event) {
			e.Details = map[string]string{}
			for i := 0; i <= auditlog.MaxDetails; i++ {
				e.Details[strings.Repeat("k", i+1)] = "v"
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := testEvent(0)
			tt.mod(&ev)
			if _, err := l.Append(ctx, ev); !errors.Is(err, rampart.ErrInvalid) {
				t.Fatalf("err = %v, want invalid", err)
			}
		})
	}
	if l.Size() != 0 {
		t.Fatalf("invalid events were appended")
	}
}

func TestFailClosed(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	l := openLog(t, db.Audit(), newKey(t))
	appendN(t, l, 3)
	// A store that cannot write: the append fails with unavailable.
	if _, err := db.SQL().Exec(`CREATE TRIGGER audit_block BEFORE INSERT ON audit_leaves BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testEvent(4)); !errors.Is(err, rampart.ErrUnavailable) {
		t.Fatalf("append on failing store: %v", err)
	}
	if st := l.Status(); st.CommitErrors != 1 || st.Size != 3 {
		t.Fatalf("status %+v", st)
	}
	// It recovers once the store does.
	if _, err := db.SQL().Exec(`DROP TRIGGER audit_block`); err != nil {
		t.Fatal(err)
	}
	if idx, err := l.Append(ctx, testEvent(4)); err != nil || idx != 3 {
		t.Fatalf("append after recovery: %d %v", idx, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testEvent(5)); !errors.Is(err, rampart.ErrUnavailable) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestQueueFull(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	l := openLog(t, db.Audit(), newKey(t), func(c *auditlog.Config) { c.QueueSize = 4; c.MaxBatch = 1 })
	// Hold the write lock so the committer blocks and the queue fills.
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO audit_checkpoints(size, root, note, created_ns) VALUES(999999, x'00', x'00', 0)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Append(ctx, testEvent(i))
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	full := 0
	for full == 0 && time.Now().Before(deadline) {
		select {
		case err := <-errs:
			if errors.Is(err, rampart.ErrUnavailable) {
				full++
			}
		case <-time.After(10 * time.Millisecond):
		}
	}
	tx.Rollback()
	wg.Wait()
	close(errs)
	for err := range errs {
		if errors.Is(err, rampart.ErrUnavailable) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full == 0 {
		t.Fatal("a full queue never refused an event")
	}
	if _, err := auditlog.VerifyStore(ctx, db.Audit(), l.VerifierKey(), auditlog.StoreVerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestReopenContinuesTree(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	key := newKey(t)
	for round := 0; round < 4; round++ {
		l := openLog(t, db.Audit(), key)
		appendN(t, l, 5+round*9)
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	l := openLog(t, db.Audit(), key)
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 5+14+23+32 {
		t.Fatalf("size %d", cp.Size)
	}
	if _, err := auditlog.VerifyStore(ctx, db.Audit(), l.VerifierKey(), auditlog.StoreVerifyOptions{RequireCovered: true}); err != nil {
		t.Fatal(err)
	}
	// A store that lost signed events (truncated, or an old backup) or whose
	// tree no longer matches the checkpoint is refused, never appended to.
	for name, q := range map[string]string{
		"truncated": `DELETE FROM audit_leaves WHERE idx >= 70`,
		"rewritten": `UPDATE audit_leaves SET hashes = zeroblob(length(hashes)) WHERE idx = 63`,
	} {
		path := filepath.Join(t.TempDir(), name+".db")
		if _, err := db.SQL().Exec(`VACUUM INTO ?`, path); err != nil {
			t.Fatal(err)
		}
		bad := openDB(t, path)
		for _, stmt := range []string{`DROP TRIGGER audit_leaves_no_delete`, `DROP TRIGGER audit_leaves_no_update`, q} {
			if _, err := bad.SQL().Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := auditlog.Open(ctx, auditlog.Config{Store: bad.Audit(), Origin: testOrigin, SigningKey: key}); !errors.Is(err, rampart.ErrInternal) {
			t.Fatalf("%s store opened: %v", name, err)
		}
	}
	// A different key cannot open the log: its checkpoints would not verify.
	if _, err := auditlog.Open(ctx, auditlog.Config{Store: db.Audit(), Origin: testOrigin, SigningKey: newKey(t)}); err == nil {
		t.Fatal("opened with the wrong key")
	}
}

func TestPublisherTicks(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, newDB(t).Audit(), newKey(t), func(c *auditlog.Config) { c.PublishInterval = 20 * time.Millisecond })
	appendN(t, l, 3)
	deadline := time.Now().Add(3 * time.Second)
	for {
		cp, err := l.Checkpoint(ctx)
		if err == nil && cp.Size == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint published: %v %+v", err, cp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
