// Package signer signs and verifies Rampart's attestations: DSSE envelopes
// (Dead Simple Signing Envelope, v1.0.2) carrying in-toto Statement v1
// documents with SLSA Provenance v1 predicates, signed with the platform's
// Ed25519 key (TRAIN-1, MODEL-1). Only crypto/ed25519 and crypto/sha256 are
// used; the envelope parser treats its input as hostile (bounded, strict,
// fuzzed).
package signer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// PayloadTypeInToto is the DSSE payload type of in-toto statements.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// MaxEnvelopeSize bounds an envelope accepted by ParseEnvelope.
const MaxEnvelopeSize = 1 << 20

// MaxSignatures bounds the signatures of one envelope.
const MaxSignatures = 8

// ErrVerify is wrapped by every verification failure.
var ErrVerify = errors.New("attestation verification failed")

// Envelope is a DSSE envelope. Payload holds the raw payload bytes; in JSON
// it is standard base64, as the specification requires.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature; Sig is the raw signature (base64 in JSON).
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"`
}

// PAE is the DSSE pre-authentication encoding, the exact bytes signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(payloadType) + len(payload) + 32)
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// MessageSigner is the narrow signing interface the registry needs; a
// *keyring.SigningKey satisfies it.
type MessageSigner interface {
	SignMessage(message []byte) []byte
	PublicKey() ed25519.PublicKey
}

// KeyID names an Ed25519 public key: the hex SHA-256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:])
}

// Sign wraps payload in an envelope signed by s. Ed25519 is deterministic,
// so equal payloads give byte-identical envelopes.
func Sign(s MessageSigner, payloadType string, payload []byte) *Envelope {
	sig := s.SignMessage(PAE(payloadType, payload))
	return &Envelope{PayloadType: payloadType, Payload: bytes.Clone(payload),
		Signatures: []Signature{{KeyID: KeyID(s.PublicKey()), Sig: sig}}}
}

// Marshal encodes the envelope as compact JSON.
func (e *Envelope) Marshal() ([]byte, error) {
	return json.Marshal(e)
}

// ParseEnvelope decodes an envelope from untrusted bytes: bounded size, no
// unknown fields, no trailing data, a payload type, at least one and at most
// MaxSignatures signatures.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes exceeds %d", ErrVerify, len(b), MaxEnvelopeSize)
	}
	// Keys are matched exactly (encoding/json alone would accept any
	// letter case), so every accepted envelope has one canonical form.
	var top map[string]json.RawMessage
	if err := strictDecode(b, &top); err != nil {
		return nil, err
	}
	for k := range top {
		if k != "payloadType" && k != "payload" && k != "signatures" {
			return nil, fmt.Errorf("%w: unknown envelope field %q", ErrVerify, k)
		}
	}
	var raw struct {
		PayloadType *string
		Payload     *string
		Signatures  []struct {
			KeyID string
			Sig   *string
		}
	}
	for _, f := range []struct {
		key string
		dst any
	}{{"payloadType", &raw.PayloadType}, {"payload", &raw.Payload}} {
		if v, ok := top[f.key]; ok {
			if err := strictDecode(v, f.dst); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := top["signatures"]; ok {
		var sigs []map[string]json.RawMessage
		if err := strictDecode(v, &sigs); err != nil {
			return nil, err
		}
		if n := len(sigs); n == 0 || n > MaxSignatures {
			return nil, fmt.Errorf("%w: envelope has %d signatures", ErrVerify, n)
		}
		for _, sm := range sigs {
			var s struct {
				KeyID string
				Sig   *string
			}
			for k, v := range sm {
				var err error
				switch k {
				case "keyid":
					err = strictDecode(v, &s.KeyID)
				case "sig":
					err = strictDecode(v, &s.Sig)
				default:
					err = fmt.Errorf("%w: unknown signature field %q", ErrVerify, k)
				}
				if err != nil {
					return nil, err
				}
			}
			raw.Signatures = append(raw.Signatures, s)
		}
	}
	if raw.PayloadType == nil || *raw.PayloadType == "" || raw.Payload == nil {
		return nil, fmt.Errorf("%w: envelope lacks payloadType or payload", ErrVerify)
	}
	if n := len(raw.Signatures); n == 0 {
		return nil, fmt.Errorf("%w: envelope has no signatures", ErrVerify)
	}
	payload, err := base64.StdEncoding.Strict().DecodeString(*raw.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64: %w", ErrVerify, err)
	}
	e := &Envelope{PayloadType: *raw.PayloadType, Payload: payload}
	for _, s := range raw.Signatures {
		if s.Sig == nil {
			return nil, fmt.Errorf("%w: signature without sig", ErrVerify)
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(*s.Sig)
		if err != nil {
			return nil, fmt.Errorf("%w: signature is not base64: %w", ErrVerify, err)
		}
		e.Signatures = append(e.Signatures, Signature{KeyID: s.KeyID, Sig: sig})
	}
	return e, nil
}

// strictDecode decodes one JSON value with nothing after it.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed envelope: %w", ErrVerify, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data in envelope", ErrVerify)
	}
	return nil
}

// Verify checks that a signature by pub covers the envelope (MODEL-1) and
// returns the payload. Signatures by other keys are ignored; at least one
// must be by pub and valid. The payload type must equal wantType.
func (e *Envelope) Verify(pub ed25519.PublicKey, wantType string) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key has %d bytes", ErrVerify, len(pub))
	}
	if e.PayloadType != wantType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrVerify, e.PayloadType, wantType)
	}
	id := KeyID(pub)
	msg := PAE(e.PayloadType, e.Payload)
	for _, s := range e.Signatures {
		// The key ID is a hint only: a signature with an empty key ID is
		// tried too, and a matching key ID proves nothing by itself.
		if s.KeyID != "" && s.KeyID != id {
			continue
		}
		if len(s.Sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, s.Sig) {
			return bytes.Clone(e.Payload), nil
		}
	}
	return nil, fmt.Errorf("%w: no valid signature by key %s", ErrVerify, id[:16])
}
