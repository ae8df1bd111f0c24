package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/registry"
	"github.com/rampart-mlaas/rampart/servertest"
)

// TestModelCLI drives `rampart model …` in the real binary against a real
// server: import by pinned digest (a wrong digest and a disguised pickle
// refused), list, show --json with the digest and metrics, card, the
// approval rules, promotion, export under a grant and offline verification
// of the exported artifact with the published key, tampered copy refused.
func TestModelCLI(t *testing.T) {
	bin := buildBinary(t)
	e := servertest.Start(t)
	tn := e.Tenant(t, "cli-models")
	a := e.Actor(t, tn, "dev-a", rampart.RoleModelDeveloper)
	b := e.Actor(t, tn, "dev-b", rampart.RoleModelDeveloper)
	dir := t.TempDir()
	da := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + dir, "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + a.Token}}
	db := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + dir, "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + b.Token}}
	offline := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + t.TempDir(), "RAMPART_SERVER=", "RAMPART_KEY="}}

	model := filepath.Join(dir, "model.json")
	must(t, os.WriteFile(model, []byte(servertest.TinyXGBoostJSON), 0o600))
	sum := sha256.Sum256([]byte(servertest.TinyXGBoostJSON))
	digest := "sha256:" + hex.EncodeToString(sum[:])

	fail := func(c cli, want string, args ...string) {
		t.Helper()
		out, errs, err := c.run("", args...)
		if err == nil || !strings.Contains(errs, want) {
			t.Fatalf("rampart %s: err=%v out=%q stderr=%q, want an error with %q", strings.Join(args, " "), err, out, errs, want)
		}
	}
	fail(da, "SUP-3", "model", "import", model, "--name", "stump", "--digest", "sha256:"+strings.Repeat("0", 64))
	pickle := filepath.Join(dir, "innocent.json")
	must(t, os.WriteFile(pickle, []byte("\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94."), 0o600))
	ps := sha256.Sum256(mustRead(t, pickle))
	fail(da, "pickle", "model", "import", pickle, "--name", "stump", "--digest", "sha256:"+hex.EncodeToString(ps[:]))

	var v rampart.ModelVersion
	unmarshal(t, da.ok("model", "import", model, "--name", "stump", "--digest", digest, "--intended-use", "demo", "--json"), &v)
	if v.Version != 1 || v.Digest != digest || v.Stage != rampart.StageCandidate {
		t.Fatalf("import: %+v", v)
	}
	var ms []rampart.Model
	unmarshal(t, da.ok("model", "list", "--json"), &ms)
	if len(ms) != 1 || ms[0].Name != "stump" {
		t.Fatalf("list: %+v", ms)
	}
	out := da.ok("model", "show", "stump@1", "--json")
	if !strings.Contains(out, `"digest": "sha256:`) || !strings.Contains(out, `"metrics"`) {
		t.Fatalf("show --json: %s", out)
	}
	var card registry.Card
	unmarshal(t, da.ok("model", "card", "stump"), &card)
	if card.Digest != digest || card.IntendedUse != "demo" || card.Provenance != rampart.ProvenanceImported {
		t.Fatalf("card: %+v", card)
	}

	// MODEL-5: no self-approval, no production without approval.
	fail(da, "self-approval", "model", "approve", "stump")
	da.ok("model", "promote", "stump@1", "--to", "staging")
	fail(da, "MODEL-5", "model", "promote", "stump@1", "--to", "production")
	db.ok("model", "approve", "stump@1")
	if out := da.ok("model", "promote", "stump@1", "--to", "production"); !strings.Contains(out, "production") {
		t.Fatalf("promote: %s", out)
	}
	if out := da.ok("model", "gates", "stump", "--require", "auc>=0.5", "--require", "auc<=1"); !strings.Contains(out, "auc >= 0.5, auc <= 1") {
		t.Fatalf("gates: %s", out)
	}
	if out := da.ok("model", "gates", "stump", "--clear"); !strings.Contains(out, "no model gates") {
		t.Fatalf("gates --clear: %s", out)
	}
	fail(da, "METRIC>=X", "model", "gates", "stump", "--require", "auc=1")
	if out := da.ok("model", "verify", "stump"); !strings.Contains(out, "verified") {
		t.Fatalf("server verify: %s", out)
	}

	// MODEL-4: export needs a grant from another principal.
	art, att, key := filepath.Join(dir, "out.json"), filepath.Join(dir, "att.json"), filepath.Join(dir, "key.pem")
	fail(db, "export grant", "model", "export", "stump", "-o", art)
	da.ok("model", "grant-export", "stump", "--to", b.Principal.ID)
	db.ok("model", "export", "stump", "-o", art, "--attestation", att)
	must(t, os.WriteFile(key, []byte(da.ok("model", "key")), 0o600))
	if got := mustRead(t, art); string(got) != servertest.TinyXGBoostJSON {
		t.Fatal("exported bytes differ")
	}
	// Offline: no server configured at all.
	if out := offline.ok("model", "verify", "--artifact", art, "--attestation", att, "--public-key", key); !strings.Contains(out, "verified") {
		t.Fatalf("offline verify: %s", out)
	}
	tampered := mustRead(t, art)
	tampered[len(tampered)/2] ^= 1
	must(t, os.WriteFile(art, tampered, 0o600))
	fail(offline, "not attested", "model", "verify", "--artifact", art, "--attestation", att, "--public-key", key)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
