package keyring

import (
	"crypto"
	"crypto/ed25519"
	"io"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// MAC is a keyed hash (Tink HMAC-SHA256, 256-bit tags with Tink's 5-byte key
// prefix, so tags survive key rotation). It satisfies tink.MAC. Its key is
// never printed.
type MAC struct {
	p    tink.MAC
	name string
}

var _ tink.MAC = (*MAC)(nil)

// ComputeMAC returns the tag of data. Tags are deterministic for a given
// key, so they can serve as lookup keys (API key hashes).
func (m *MAC) ComputeMAC(data []byte) ([]byte, error) { return m.p.ComputeMAC(data) }

// VerifyMAC checks tag against data in constant time.
func (m *MAC) VerifyMAC(tag, data []byte) error { return m.p.VerifyMAC(tag, data) }

// String redacts the key.
func (m *MAC) String() string { return "keyring.MAC(" + m.name + ", [REDACTED])" }

// GoString redacts the key, also for %#v.
func (m *MAC) GoString() string { return m.String() }

// SigningKey is an Ed25519 key pair held by the keyring. It implements
// crypto.Signer; the private key is never printed.
type SigningKey struct {
	name string
	priv ed25519.PrivateKey
}

var _ crypto.Signer = (*SigningKey)(nil)

// Name is the key's name in the keyring.
func (s *SigningKey) Name() string { return s.name }

// Public implements crypto.Signer.
func (s *SigningKey) Public() crypto.PublicKey { return s.priv.Public() }

// PublicKey returns the Ed25519 public key.
func (s *SigningKey) PublicKey() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// Sign implements crypto.Signer (pass crypto.Hash(0) for pure Ed25519).
func (s *SigningKey) Sign(rand io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.priv.Sign(rand, message, opts)
}

// SignMessage signs message with pure Ed25519.
func (s *SigningKey) SignMessage(message []byte) []byte { return ed25519.Sign(s.priv, message) }

// PrivateKey returns a copy of the raw private key, for libraries that need
// it (e.g. golang.org/x/mod/sumdb/note signer keys). Handle with care: never
// log it or store it unwrapped.
func (s *SigningKey) PrivateKey() ed25519.PrivateKey {
	return append(ed25519.PrivateKey(nil), s.priv...)
}

// String redacts the private key.
func (s *SigningKey) String() string { return "keyring.SigningKey(" + s.name + ", [REDACTED])" }

// GoString redacts the private key, also for %#v.
func (s *SigningKey) GoString() string { return s.String() }
