package auditlog

import (
	"bytes"
	"encoding/json"
	"strings"
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
	long := base
	long.Details = map[string]string{"big": strings.Repeat("x", 500), "more": strings.Repeat("<", 300)}
	for _, idx := range []uint64{0, 9, 10, 12345, 1<<63 + 7, ^uint64(0)} {
		for _, setTime := range []bool{false, true} {
			for _, ev := range []Event{base, long} { // spliced in place, and grown
				ev := ev
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
	}
	if _, err := spliceEvent([]byte(`{"v":2}`), 1, at, true); err == nil {
		t.Fatal("spliced a foreign encoding")
	}
}

// TestCanonicalMatchesJSON: the hand-written encoder is byte-identical to
// encoding/json on the wire struct, for strings that take every escaping path.
func TestCanonicalMatchesJSON(t *testing.T) {
	tricky := []string{"", "plain", `quote"`, `back\slash`, "<script>&", "tab\tnl\ncr\r", "\x00\x01\x1f\x7f",
		"\b\f", "é ü 日本", "\u2028\u2029", "emoji 🙂", "mixed <é>\"\\"}
	for i, s := range tricky {
		ev := Event{Index: uint64(i) * 977, Time: time.Date(2026, 1, 2, 3, 4, 5, i, time.FixedZone("x", 3600)),
			Tenant: s, Principal: s + "p", Role: rampart.RoleOperator, Action: s, Resource: s, Decision: Allow,
			Reason: s, Outcome: s, RequestID: s, Digest: "", Details: map[string]string{s + "k": s, "z": s, "a" + s: "v"}}
		got, err := ev.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(&wireEvent{V: 1, Index: ev.Index, Time: ev.Time.UTC().Format(timeLayout),
			Tenant: ev.Tenant, Principal: ev.Principal, Role: string(ev.Role), Action: ev.Action, Resource: ev.Resource,
			Decision: string(ev.Decision), Reason: ev.Reason, Outcome: ev.Outcome, RequestID: ev.RequestID,
			Digest: ev.Digest, Details: ev.Details})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
		if _, err := ParseEvent(got); err != nil {
			t.Fatalf("%q: own encoding does not parse: %v", s, err)
		}
	}
	empty := Event{Decision: Deny, Action: "a"}
	got, _ := empty.MarshalCanonical()
	if !bytes.Contains(got, []byte(`"details":{}}`)) {
		t.Fatalf("empty details: %s", got)
	}
}
