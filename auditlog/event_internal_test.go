package auditlog

import (
	"bytes"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// TestSpliceEqualsMarshal: the sequencer's splice gives exactly the bytes of
// MarshalCanonical, for indexes of every width and both time modes.
func TestSpliceEqualsMarshal(t *testing.T) {
	base := Event{Tenant: "tn_a", Principal: "pr_<&>", Role: rampart.RoleAuditor, Action: "audit.read",
		Resource: "log", Decision: Deny, Reason: "r", Outcome: "ok", RequestID: "req_1",
		Details: map[string]string{"b": "2", "a": "\u2028"}}
	at := time.Date(2026, 11, 23, 2, 45, 0, 123, time.UTC)
	for _, idx := range []uint64{0, 9, 10, 12345, 1<<63 + 7, ^uint64(0)} {
		for _, setTime := range []bool{false, true} {
			ev := base
			ev.Index = 0
			if setTime {
				ev.Time = time.Unix(0, 0)
			} else {
				ev.Time = at
			}
			enc, err := ev.MarshalCanonical()
			if err != nil {
				t.Fatal(err)
			}
			got, err := spliceEvent(enc, idx, at, setTime)
			if err != nil {
				t.Fatal(err)
			}
			ev.Index, ev.Time = idx, at
			want, _ := ev.MarshalCanonical()
			if !bytes.Equal(got, want) {
				t.Fatalf("index %d setTime %v:\n got %s\nwant %s", idx, setTime, got, want)
			}
		}
	}
	if _, err := spliceEvent([]byte(`{"v":2}`), 1, at, true); err == nil {
		t.Fatal("spliced a foreign encoding")
	}
}
