package signer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

type key struct{ priv ed25519.PrivateKey }

func (k key) SignMessage(m []byte) []byte  { return ed25519.Sign(k.priv, m) }
func (k key) PublicKey() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

func newKey(seed byte) key {
	return key{ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))}
}

// TestPAE checks the encoding against the DSSE specification's example.
func TestPAE(t *testing.T) {
	got := string(PAE("http://example.com/HelloWorld", []byte("hello world")))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
	if got := string(PAE("", nil)); got != "DSSEv1 0  0 " {
		t.Fatalf("empty PAE = %q", got)
	}
}

func statement(digest string) *Statement {
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	return &Statement{Type: StatementType, PredicateType: PredicateSLSAv1,
		Subject: []Subject{{Name: "m", Digest: map[string]string{"sha256": digest}}},
		Predicate: Provenance{BuildDefinition: BuildDefinition{BuildType: BuildTypeTrain, ExternalParameters: map[string]any{"seed": 1}},
			RunDetails: RunDetails{Builder: Builder{ID: BuilderID}, Metadata: BuildMetadata{StartedOn: &now}}}}
}

func TestSignVerifyArtifact(t *testing.T) {
	k := newKey(1)
	artifact := []byte("model bytes")
	sum := sha256.Sum256(artifact)
	payload, err := statement(hex.EncodeToString(sum[:])).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	env := Sign(k, PayloadTypeInToto, payload)
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic: the same payload gives the same bytes.
	b2, _ := Sign(k, PayloadTypeInToto, payload).Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("signing is not deterministic")
	}
	if _, err := VerifyArtifact(b, artifact, k.PublicKey()); err != nil {
		t.Fatal(err)
	}
	// Wrong artifact, wrong key, wrong payload type, changed bytes.
	if _, err := VerifyArtifact(b, []byte("other"), k.PublicKey()); !errors.Is(err, ErrVerify) {
		t.Fatalf("other artifact: %v", err)
	}
	if _, err := VerifyArtifact(b, artifact, newKey(2).PublicKey()); !errors.Is(err, ErrVerify) {
		t.Fatalf("other key: %v", err)
	}
	if _, err := env.Verify(k.PublicKey(), "text/plain"); !errors.Is(err, ErrVerify) {
		t.Fatalf("payload type: %v", err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		if _, err := VerifyArtifact(c, artifact, k.PublicKey()); err == nil {
			// Flipping the case of a JSON key's letter can be harmless
			// only if the parser ignored it; ours rejects unknown fields.
			t.Fatalf("byte %d flipped: still verifies", i)
		}
	}
	// A signature without key ID is still checked; a signature by another
	// key claiming our key ID is not accepted.
	env2 := Sign(newKey(2), PayloadTypeInToto, payload)
	env2.Signatures[0].KeyID = KeyID(k.PublicKey())
	if _, err := env2.Verify(k.PublicKey(), PayloadTypeInToto); !errors.Is(err, ErrVerify) {
		t.Fatal("impersonated key ID verified")
	}
}

func TestParseEnvelopeStrict(t *testing.T) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`,
		`{"payloadType":"a","payload":"","signatures":[]}`,
		`{"payloadType":"","payload":"","signatures":[{"sig":""}]}`,
		`{"payloadType":"a","payload":"!!","signatures":[{"sig":""}]}`,
		`{"payloadType":"a","payload":"","signatures":[{"keyid":"x"}]}`,
		`{"payloadType":"a","payload":"","signatures":[{"sig":""}],"extra":1}`,
		`{"payloadType":"a","payload":"","signatures":[{"sig":""}]} {}`,
	} {
		if _, err := ParseEnvelope([]byte(s)); !errors.Is(err, ErrVerify) {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseEnvelope(bytes.Repeat([]byte(" "), MaxEnvelopeSize+1)); err == nil {
		t.Error("oversized envelope accepted")
	}
}

func TestPublicKeyPEM(t *testing.T) {
	k := newKey(3)
	p, err := MarshalPublicKey(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePublicKey(p)
	if err != nil || !got.Equal(k.PublicKey()) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := ParsePublicKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); err == nil {
		t.Fatal("junk key accepted")
	}
}

func TestParseStatement(t *testing.T) {
	good, _ := statement(hex.EncodeToString(make([]byte, 32))).Marshal()
	if _, err := ParseStatement(good); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*Statement){
		func(s *Statement) { s.Type = "https://in-toto.io/Statement/v0.1" },
		func(s *Statement) { s.PredicateType = "https://slsa.dev/provenance/v0.2" },
		func(s *Statement) { s.Subject = nil },
		func(s *Statement) { s.Subject[0].Digest = map[string]string{"sha1": "00"} },
		func(s *Statement) { s.Subject[0].Digest["sha256"] = "XYZ" },
	} {
		s := statement(hex.EncodeToString(make([]byte, 32)))
		mut(s)
		b, _ := s.Marshal()
		if _, err := ParseStatement(b); !errors.Is(err, ErrVerify) {
			t.Errorf("accepted %s", b)
		}
	}
}

// FuzzParseEnvelope: hostile envelopes never panic; accepted ones
// re-encode to an envelope that parses to the same content.
func FuzzParseEnvelope(f *testing.F) {
	k := newKey(1)
	payload, _ := statement(hex.EncodeToString(make([]byte, 32))).Marshal()
	good, _ := Sign(k, PayloadTypeInToto, payload).Marshal()
	f.Add(good)
	f.Add([]byte(`{"payloadType":"a","payload":"","signatures":[{"sig":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		_, _ = env.Verify(k.PublicKey(), PayloadTypeInToto)
		re, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		env2, err := ParseEnvelope(re)
		if err != nil || env2.PayloadType != env.PayloadType || !bytes.Equal(env2.Payload, env.Payload) || len(env2.Signatures) != len(env.Signatures) {
			t.Fatalf("round trip changed the envelope: %v", err)
		}
		_, _ = ParseStatement(env.Payload)
	})
}
