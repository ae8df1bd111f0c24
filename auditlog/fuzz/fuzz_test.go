package fuzz_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/auditlogtest"
)

// fuzzKey is a fixed key so that the corpus seeds carry valid signatures.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

// fuzzLog is deterministic (fixed key and clock): fuzz workers rebuild it in
// their own processes and must get the very bytes of the seed corpus. It is
// in memory: SQLite built with fuzzing instrumentation is far too slow.
func fuzzLog(f *testing.F) *auditlog.Log {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return openLog(f, auditlogtest.NewMemStore(), fuzzKey, func(c *auditlog.Config) { c.Now = func() time.Time { return at } })
}

func fuzzVerifierKey(t testing.TB) string {
	_, vkey, err := auditlog.NewNoteSigner(testOrigin, fuzzKey)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// FuzzParseCheckpoint: arbitrary bytes never panic, and whatever parses
// re-serialises to the same body (one checkpoint, one byte form).
func FuzzParseCheckpoint(f *testing.F) {
	vkey := fuzzVerifierKey(f)
	l := fuzzLog(f)
	appendN(f, l, 3)
	cp, err := l.Publish(f.Context())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp.Note)
	f.Add([]byte(strings.Replace(string(cp.Note), "\n3\n", "\n03\n", 1)))
	f.Add([]byte("rampart.test/audit\n1\nAAAA\n\n— rampart.test/audit AAAA\n"))
	f.Add([]byte{})
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := auditlog.ParseCheckpoint(b, v)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(b, c.Body()) || len(c.Root) != auditlog.HashSize {
			t.Fatalf("parsed %+v from %q", c, b)
		}
	})
}

// FuzzParseEvent: arbitrary bytes never panic; accepted events are canonical.
func FuzzParseEvent(f *testing.F) {
	for i := 0; i < 4; i++ {
		ev := testEvent(i)
		b, err := ev.MarshalCanonical()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := auditlog.ParseEvent(b)
		if err != nil {
			return
		}
		again, err := ev.MarshalCanonical()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted non-canonical event %q (re-encoded %q, %v)", b, again, err)
		}
	})
}

// FuzzVerifyExport: arbitrary export files never panic, and only the
// genuine export verifies.
func FuzzVerifyExport(f *testing.F) {
	vkey := fuzzVerifierKey(f)
	l := fuzzLog(f)
	appendN(f, l, 6)
	var buf bytes.Buffer
	if _, err := l.Export(f.Context(), &buf, "tn_alpha"); err != nil {
		f.Fatal(err)
	}
	genuine := bytes.Clone(buf.Bytes())
	f.Add(genuine)
	f.Add([]byte("{\"type\":\"end\"}\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := auditlog.VerifyExport(bytes.NewReader(b), vkey, auditlog.ExportOptions{})
		if err == nil && !bytes.Equal(b, genuine) {
			t.Fatalf("a modified export verifies:\n%q", b)
		}
	})
}

// FuzzVerifyProofs: arbitrary proofs (as served to clients) never panic and
// never verify a leaf that is not in the tree.
func FuzzVerifyProofs(f *testing.F) {
	l := fuzzLog(f)
	appendN(f, l, 11)
	cp, err := l.Publish(f.Context())
	if err != nil {
		f.Fatal(err)
	}
	recs, _, err := l.Events(f.Context(), auditlog.Query{})
	if err != nil {
		f.Fatal(err)
	}
	join := func(p [][]byte) []byte { return bytes.Join(p, nil) }
	for _, i := range []uint64{0, 5, 10} {
		p, err := l.InclusionProof(f.Context(), i, cp.Size)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(i, recs[i].Raw, join(p), uint64(4))
	}
	f.Fuzz(func(t *testing.T, index uint64, event, proofBytes []byte, from uint64) {
		var p [][]byte
		for len(proofBytes) >= auditlog.HashSize && len(p) < 70 {
			p = append(p, proofBytes[:auditlog.HashSize])
			proofBytes = proofBytes[auditlog.HashSize:]
		}
		err := auditlog.VerifyInclusion(cp, auditlog.ProvenEvent{Index: index, Event: event, Proof: p})
		if err == nil && (index >= cp.Size || !bytes.Equal(event, recs[index].Raw)) {
			t.Fatalf("forged inclusion of %q at %d verifies", event, index)
		}
		old := auditlog.Checkpoint{Size: from % (cp.Size + 2), Root: event}
		_ = auditlog.VerifyConsistency(old, cp, p)
	})
}

// FuzzVerifierKey: arbitrary key strings never panic.
func FuzzVerifierKey(f *testing.F) {
	f.Add(fuzzVerifierKey(f))
	f.Add("a+00000000+" + base64.StdEncoding.EncodeToString([]byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, k string) { _, _ = auditlog.NewVerifier(k) })
}

const testOrigin = "rampart.test/audit"

func openLog(t testing.TB, st auditlog.Store, key ed25519.PrivateKey, mod ...func(*auditlog.Config)) *auditlog.Log {
	t.Helper()
	cfg := auditlog.Config{Store: st, Origin: testOrigin, SigningKey: key, PublishInterval: time.Hour}
	for _, m := range mod {
		m(&cfg)
	}
	l, err := auditlog.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func testEvent(i int) auditlog.Event {
	return auditlog.Event{
		Tenant: []string{"tn_alpha", "tn_beta"}[i%2], Principal: fmt.Sprintf("pr_%d", i%3), Role: rampart.RoleServiceUser,
		Action: "model.predict", Resource: fmt.Sprintf("mdl_%d", i%5), Decision: auditlog.Allow,
		Reason: "policy", Outcome: "ok", RequestID: fmt.Sprintf("req_%d", i),
		Digest:  auditlog.ContentDigest(sha256.Sum256([]byte(fmt.Sprint(i)))),
		Details: map[string]string{"n": fmt.Sprint(i), "html": "<&>"},
	}
}

func appendN(t testing.TB, l *auditlog.Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// wire mirrors the documented canonical layout (docs/audit-log.md) with
// encoding/json; FuzzCanonicalEncoding checks the log's own encoder against it.
type wire struct {
	V         int               `json:"v"`
	Index     uint64            `json:"index"`
	Time      string            `json:"time"`
	Tenant    string            `json:"tenant"`
	Principal string            `json:"principal"`
	Role      string            `json:"role"`
	Action    string            `json:"action"`
	Resource  string            `json:"resource"`
	Decision  string            `json:"decision"`
	Reason    string            `json:"reason"`
	Outcome   string            `json:"outcome"`
	RequestID string            `json:"request_id"`
	Digest    string            `json:"digest"`
	Details   map[string]string `json:"details"`
}

func FuzzCanonicalEncoding(f *testing.F) {
	f.Add(uint64(7), int64(0), "tn", "pr", "act", "res", "k", "v")
	f.Add(uint64(1<<63), int64(1e18), "<&>", "\u2028\"", "\x00\x7f", "é", "\t", "🙂")
	f.Fuzz(func(t *testing.T, idx uint64, nanos int64, tenant, principal, action, resource, k, v string) {
		ev := auditlog.Event{Index: idx, Time: time.Unix(0, nanos), Tenant: tenant, Principal: principal,
			Action: action, Resource: resource, Decision: auditlog.Allow, Details: map[string]string{k: v, "x" + k: v + v}}
		got, err := ev.MarshalCanonical()
		if err != nil {
			return // too large
		}
		want, err := json.Marshal(&wire{V: 1, Index: idx, Time: ev.Time.UTC().Format("2006-01-02T15:04:05.000000000Z"),
			Tenant: tenant, Principal: principal, Action: action, Resource: resource, Decision: "allow",
			Details: ev.Details})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encoders differ:\n got %s\nwant %s", got, want)
		}
	})
}
