package signer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"time"
)

// in-toto and SLSA type URIs.
const (
	StatementType      = "https://in-toto.io/Statement/v1"
	PredicateSLSAv1    = "https://slsa.dev/provenance/v1"
	BuildTypeTrain     = "https://github.com/rampart-mlaas/rampart/buildtypes/train/v1"
	BuildTypeImport    = "https://github.com/rampart-mlaas/rampart/buildtypes/import/v1"
	BuilderID          = "https://github.com/rampart-mlaas/rampart/builder/v1"
	maxStatementSize   = 1 << 20
	maxSubjects        = 16
	maxDependencyCount = 256
)

// Statement is an in-toto Statement v1 whose predicate is SLSA Provenance v1.
type Statement struct {
	Type          string     `json:"_type"`
	Subject       []Subject  `json:"subject"`
	PredicateType string     `json:"predicateType"`
	Predicate     Provenance `json:"predicate"`
}

// Subject is one attested artifact.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Provenance is the SLSA Provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built from what. Everything in it is a
// function of the inputs, so identical runs attest identically.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   map[string]any       `json:"externalParameters"`
	InternalParameters   map[string]any       `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ResourceDescriptor is an in-toto v1 resource descriptor.
type ResourceDescriptor struct {
	Name        string            `json:"name,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest,omitempty"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// RunDetails describes the run: who built it, when, under which invocation.
type RunDetails struct {
	Builder  Builder       `json:"builder"`
	Metadata BuildMetadata `json:"metadata"`
}

// Builder identifies the platform that produced the artifact.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// BuildMetadata carries the run's invocation ID and times.
type BuildMetadata struct {
	InvocationID string     `json:"invocationId,omitempty"`
	StartedOn    *time.Time `json:"startedOn,omitempty"`
	FinishedOn   *time.Time `json:"finishedOn,omitempty"`
}

// Marshal encodes the statement canonically: encoding/json sorts map keys
// and struct fields have a fixed order, so equal statements encode equally.
func (s *Statement) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ParseStatement decodes a statement from a verified payload and checks its
// types and subjects.
func ParseStatement(b []byte) (*Statement, error) {
	if len(b) > maxStatementSize {
		return nil, fmt.Errorf("%w: statement too large", ErrVerify)
	}
	var s Statement
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: malformed statement: %w", ErrVerify, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after statement", ErrVerify)
	}
	if s.Type != StatementType {
		return nil, fmt.Errorf("%w: statement type %q", ErrVerify, s.Type)
	}
	if s.PredicateType != PredicateSLSAv1 {
		return nil, fmt.Errorf("%w: predicate type %q", ErrVerify, s.PredicateType)
	}
	if n := len(s.Subject); n == 0 || n > maxSubjects {
		return nil, fmt.Errorf("%w: statement has %d subjects", ErrVerify, n)
	}
	if len(s.Predicate.BuildDefinition.ResolvedDependencies) > maxDependencyCount {
		return nil, fmt.Errorf("%w: too many dependencies", ErrVerify)
	}
	for _, sub := range s.Subject {
		if d, ok := sub.Digest["sha256"]; !ok || !validHex(d, sha256.Size) {
			return nil, fmt.Errorf("%w: subject %q lacks a sha256 digest", ErrVerify, sub.Name)
		}
	}
	return &s, nil
}

// Covers reports whether the statement attests an artifact with this hex
// SHA-256 digest.
func (s *Statement) Covers(sha256Hex string) bool {
	for _, sub := range s.Subject {
		if sub.Digest["sha256"] == sha256Hex {
			return true
		}
	}
	return false
}

func validHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// VerifyArtifact is the offline check of `rampart model verify`: the
// envelope must carry a valid signature by pub over an in-toto statement
// with an SLSA v1 predicate whose subjects include the artifact's SHA-256
// (MODEL-1, TRAIN-1).
func VerifyArtifact(envelope, artifact []byte, pub ed25519.PublicKey) (*Statement, error) {
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	payload, err := env.Verify(pub, PayloadTypeInToto)
	if err != nil {
		return nil, err
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(artifact)
	if !st.Covers(hex.EncodeToString(sum[:])) {
		return nil, fmt.Errorf("%w: the artifact's sha256 %x is not attested", ErrVerify, sum[:8])
	}
	return st, nil
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" (PKIX), the form the
// platform publishes for offline verification.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" holding an Ed25519 key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("signer: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signer: parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("signer: public key is %T, not Ed25519", k)
	}
	return pub, nil
}
