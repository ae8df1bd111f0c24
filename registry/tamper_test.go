package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/signer"
)

// tamperEnv is a registered version plus raw access to its row and blob,
// as an attacker with the data directory (but not the keys) would have.
type tamperEnv struct {
	*env
	v    rampart.ModelVersion
	orig rampart.ModelRecord
	blob string
}

func newTamperEnv(t *testing.T) *tamperEnv {
	e := newEnv(t)
	v := e.register("tamper")
	// The immutability triggers guard against bugs, not against whoever
	// holds the database file: drop them as an attacker would.
	for _, tr := range []string{"model_versions_immutable", "model_versions_no_delete"} {
		if _, err := e.db.SQL().Exec("DROP TRIGGER " + tr); err != nil {
			t.Fatal(err)
		}
	}
	r, err := e.db.GetModelVersion(context.Background(), e.tenant.ID, v.ModelID, v.Version)
	if err != nil {
		t.Fatal(err)
	}
	te := &tamperEnv{env: e, v: v, orig: r}
	te.blob = filepath.Join(e.dir, "blobs", artifactRef(e.tenant.ID, r.ArtifactID).BlobKey())
	if _, err := os.Stat(te.blob); err != nil {
		t.Fatal(err)
	}
	return te
}

func (te *tamperEnv) setRow(t *testing.T, r rampart.ModelRecord) {
	t.Helper()
	metrics, _ := json.Marshal(r.Metrics)
	_, err := te.db.SQL().Exec(`UPDATE model_versions SET attestation=?, binding=?, digest=?, card=?, metrics=? WHERE model_id=? AND version=?`,
		r.Attestation, r.Binding, r.Digest, r.Card, string(metrics), r.ModelID, r.Version)
	if err != nil {
		t.Fatal(err)
	}
}

// rebind recomputes the binding MAC with the tenant key, as if the
// attacker could also forge it: then the signature check alone must
// catch the change.
func (te *tamperEnv) rebind(t *testing.T, r rampart.ModelRecord) rampart.ModelRecord {
	t.Helper()
	b, err := te.svc.binding(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	r.Binding = b
	return r
}

// expectRefused loads the version and requires a refusal with one more
// model.load denial in the audit log.
func (te *tamperEnv) expectRefused(t *testing.T, what string) string {
	t.Helper()
	before := len(te.audit.find("model.load", false))
	_, err := te.svc.Load(context.Background(), te.tenant.ID, te.v.ModelID, te.v.Version)
	if err == nil {
		t.Fatalf("%s: tampered version loaded", what)
	}
	if !errors.Is(err, rampart.ErrInternal) {
		t.Fatalf("%s: error %v is not a verification failure", what, err)
	}
	evs := te.audit.find("model.load", false)
	if len(evs) != before+1 || evs[len(evs)-1].Details["check"] == "" {
		t.Fatalf("%s: no audit event for the refused load (%d → %d)", what, before, len(evs))
	}
	return evs[len(evs)-1].Details["check"]
}

// beyondBinding asserts that a change carried with a forged row MAC was
// caught by a later check (signature, subject or artifact digest).
func beyondBinding(t *testing.T, what, check string) {
	t.Helper()
	if check == "binding" || check == "" {
		t.Fatalf("%s: caught only by the binding (%q)", what, check)
	}
}

func (te *tamperEnv) expectLoads(t *testing.T) {
	t.Helper()
	if _, err := te.svc.Load(context.Background(), te.tenant.ID, te.v.ModelID, te.v.Version); err != nil {
		t.Fatalf("untampered version refused: %v", err)
	}
}

func envelopeOf(t *testing.T, b []byte) *signer.Envelope {
	t.Helper()
	env, err := signer.ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func marshalEnv(t *testing.T, env *signer.Envelope) []byte {
	t.Helper()
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const trials = 40

// TestTamper is the MODEL-1 acceptance: one changed byte in the stored
// artifact, in its attestation or in its signature, or a signature by
// another key, refuses the load in 100 % of trials, each with an audit
// event. Where the row's MAC would catch a change first, the change is
// also tried with a re-forged MAC so that the signature and digest checks
// are proven on their own.
func TestTamper(t *testing.T) {
	te := newTamperEnv(t)
	te.expectLoads(t)
	rng := mrand.New(mrand.NewPCG(6, 6))
	ctx := context.Background()

	t.Run("artifact ciphertext byte", func(t *testing.T) {
		orig, err := os.ReadFile(te.blob)
		if err != nil {
			t.Fatal(err)
		}
		for i := range trials {
			b := bytes.Clone(orig)
			pos := rng.IntN(len(b))
			if i == 0 {
				pos = len(b) - 1
			}
			b[pos] ^= byte(1 + rng.IntN(255))
			if err := os.WriteFile(te.blob, b, 0o600); err != nil {
				t.Fatal(err)
			}
			te.expectRefused(t, "artifact byte")
		}
		if err := os.WriteFile(te.blob, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		te.expectLoads(t)
	})

	t.Run("artifact plaintext byte resealed", func(t *testing.T) {
		// An attacker holding every key re-seals a changed artifact at the
		// same reference: the attested digest still refuses it.
		ref := artifactRef(te.tenant.ID, te.orig.ArtifactID)
		good := artifact(t)
		for range 5 {
			bad := bytes.Clone(good)
			bad[rng.IntN(len(bad))] ^= 0x01
			if err := te.bar.Shred(ctx, ref); err != nil {
				t.Fatal(err)
			}
			if _, err := te.bar.PutBytes(ctx, ref, bad); err != nil {
				t.Fatal(err)
			}
			te.expectRefused(t, "resealed artifact")
		}
		if err := te.bar.Shred(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if _, err := te.bar.PutBytes(ctx, ref, good); err != nil {
			t.Fatal(err)
		}
		te.expectLoads(t)
	})

	t.Run("attestation byte", func(t *testing.T) {
		for i := range trials {
			env := envelopeOf(t, te.orig.Attestation)
			env.Payload[rng.IntN(len(env.Payload))] ^= byte(1 + rng.IntN(255))
			r := te.orig
			r.Attestation = marshalEnv(t, env)
			if i%2 == 1 {
				te.setRow(t, te.rebind(t, r))
				beyondBinding(t, "attestation byte", te.expectRefused(t, "attestation byte"))
				continue
			}
			te.setRow(t, r)
			te.expectRefused(t, "attestation byte")
		}
		// Raw bytes of the stored JSON, too.
		for range trials {
			r := te.orig
			r.Attestation = bytes.Clone(r.Attestation)
			r.Attestation[rng.IntN(len(r.Attestation))] ^= byte(1 + rng.IntN(255))
			te.setRow(t, te.rebind(t, r))
			beyondBinding(t, "attestation JSON byte", te.expectRefused(t, "attestation JSON byte"))
		}
		te.setRow(t, te.orig)
		te.expectLoads(t)
	})

	t.Run("signature byte", func(t *testing.T) {
		for i := range trials {
			env := envelopeOf(t, te.orig.Attestation)
			env.Signatures[0].Sig[rng.IntN(len(env.Signatures[0].Sig))] ^= byte(1 + rng.IntN(255))
			r := te.orig
			r.Attestation = marshalEnv(t, env)
			if i%2 == 1 {
				te.setRow(t, te.rebind(t, r))
				if c := te.expectRefused(t, "signature byte"); c != "signature" && c != "envelope" {
					t.Fatalf("signature byte caught at %q", c)
				}
				continue
			}
			te.setRow(t, r)
			te.expectRefused(t, "signature byte")
		}
		te.setRow(t, te.orig)
		te.expectLoads(t)
	})

	t.Run("another key", func(t *testing.T) {
		for i := range trials {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			env := envelopeOf(t, te.orig.Attestation)
			sig := ed25519.Sign(priv, signer.PAE(env.PayloadType, env.Payload))
			keyID := env.Signatures[0].KeyID // impersonate the platform key ID
			if i%2 == 1 {
				keyID = signer.KeyID(priv.Public().(ed25519.PublicKey))
			}
			env.Signatures = []signer.Signature{{KeyID: keyID, Sig: sig}}
			r := te.rebind(t, rampart.ModelRecord{ModelVersion: te.orig.ModelVersion, ArtifactID: te.orig.ArtifactID,
				Card: te.orig.Card, BOM: te.orig.BOM, Attestation: marshalEnv(t, env)})
			te.setRow(t, r)
			if c := te.expectRefused(t, "foreign key"); c != "signature" {
				t.Fatalf("foreign key caught at %q", c)
			}
		}
		te.setRow(t, te.orig)
		te.expectLoads(t)
	})

	t.Run("attestation of another artifact", func(t *testing.T) {
		// A genuine, platform-signed attestation of a different model.
		other, err := te.svc.Import(as(te.dev), ImportInput{Name: "other", ExpectedDigest: digestOf(tinyXGB), Data: tinyXGB})
		if err != nil {
			t.Fatal(err)
		}
		or, err := te.db.GetModelVersion(ctx, te.tenant.ID, other.ModelID, other.Version)
		if err != nil {
			t.Fatal(err)
		}
		r := te.orig
		r.Attestation = or.Attestation
		te.setRow(t, te.rebind(t, r))
		if c := te.expectRefused(t, "swapped attestation"); c != "subject" {
			t.Fatalf("swapped attestation caught at %q", c)
		}
		// And the digest column moved along with it: the blob refuses.
		r.Digest = or.Digest
		te.setRow(t, te.rebind(t, r))
		if c := te.expectRefused(t, "swapped attestation and digest"); c != "artifact" {
			t.Fatalf("swapped digest caught at %q", c)
		}
		te.setRow(t, te.orig)
		te.expectLoads(t)
	})

	t.Run("card or metrics", func(t *testing.T) {
		r := te.orig
		r.Card = bytes.Replace(r.Card, []byte(`"accuracy":0.91`), []byte(`"accuracy":0.99`), 1)
		if bytes.Equal(r.Card, te.orig.Card) {
			t.Fatal("card mutation did not apply")
		}
		te.setRow(t, r)
		te.expectRefused(t, "card")
		r = te.orig
		r.Metrics = map[string]float64{"accuracy": 0.99, "auc": 0.95}
		te.setRow(t, r)
		te.expectRefused(t, "metrics")
		if _, _, err := te.svc.GetDocument(as(te.dev), te.v.ModelID, te.v.Version, DocCard); err == nil {
			t.Fatal("tampered card served")
		}
		te.setRow(t, te.orig)
		te.expectLoads(t)
	})
}
