package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/servertest"
	_ "modernc.org/sqlite"
)

// TestAuditCLI drives `rampart audit key|tail|verify|export` and
// `verify --offline` against a real server; then tampers with the stored log
// and checks that verify fails (AUDIT-1, AUDIT-4).
func TestAuditCLI(t *testing.T) {
	bin := buildBinary(t)
	e := servertest.Start(t)
	tn := e.Tenant(t, "bank")
	dp := e.Actor(t, tn, "alice", rampart.RoleDataProvider)
	op := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + t.TempDir(), "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + e.OpToken}}
	alice := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + t.TempDir(), "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + dp.Token}}
	alice.ok("whoami")
	alice.ok("key", "create", "laptop")

	key := strings.TrimSpace(op.ok("audit", "key"))
	if !strings.HasPrefix(key, "rampart/audit/") {
		t.Fatalf("audit key %q", key)
	}
	if out := alice.ok("audit", "tail"); !strings.Contains(out, "key.create") {
		t.Fatalf("tail: %s", out)
	}
	// Online verification, twice: the second is checked for consistency
	// with the checkpoint the first one witnessed.
	var r1, r2 map[string]any
	json.Unmarshal([]byte(op.ok("audit", "verify", "--json")), &r1)
	op.ok("tenant", "create", "shop")
	json.Unmarshal([]byte(op.ok("audit", "verify", "--json", "--key", key)), &r2)
	if r1["ok"] != true || r2["ok"] != true || r2["witnessed_size"] == nil || r2["leaves_checked"].(float64) < 5 {
		t.Fatalf("verify: %v then %v", r1, r2)
	}
	var ra map[string]any
	json.Unmarshal([]byte(alice.ok("audit", "verify", "--json")), &ra)
	if ra["ok"] != true || ra["events_checked"].(float64) < 2 {
		t.Fatalf("tenant verify: %v", ra)
	}
	// Export and offline verification; any changed byte fails.
	exp := filepath.Join(t.TempDir(), "export.jsonl")
	alice.ok("audit", "export", "--out", exp)
	off := cli{t, bin, nil}
	if out := off.ok("audit", "verify", "--offline", exp, "--key", key); !strings.Contains(out, "export verified") {
		t.Fatalf("offline: %s", out)
	}
	b, _ := os.ReadFile(exp)
	for _, pos := range []int{len(b) / 3, len(b) / 2, len(b) - 10} {
		bad := append([]byte(nil), b...)
		bad[pos] ^= 0x01
		p := filepath.Join(t.TempDir(), "bad.jsonl")
		os.WriteFile(p, bad, 0o600)
		if _, _, err := off.run("", "audit", "verify", "--offline", p, "--key", key); err == nil {
			t.Errorf("offline verify passed with byte %d flipped", pos)
		}
	}
	if _, _, err := off.run("", "audit", "verify", "--offline", exp, "--key", strings.Replace(key, "+", "+x", 1)); err == nil {
		t.Error("offline verify passed with a wrong key")
	}

	// Tamper with a stored event, as someone with the database file would.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.DataDir, "metadata.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DROP TRIGGER audit_leaves_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_leaves SET data = CAST(replace(CAST(data AS TEXT), '"allow"', '"deny"') AS BLOB) WHERE idx = 3`); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := op.run("", "audit", "verify"); err == nil || !strings.Contains(errs, "NOT verify") {
		t.Fatalf("verify after tampering: err=%v %s", err, errs)
	}
}
