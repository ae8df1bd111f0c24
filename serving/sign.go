package serving

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/signer"
)

// SigningKeyName is the keyring name of the platform's response-signing key.
const SigningKeyName = "prediction-signing"

// JWSType is the typ header of signed predictions.
const JWSType = "rampart-prediction+jws"

// Claims are what a prediction's JWS signs (INF-6): the digests of the
// request body and of the response body, and the model version digest.
type Claims struct {
	Endpoint       string `json:"endpoint"`
	ModelDigest    string `json:"model_digest"`
	ModelVersion   int    `json:"model_version"`
	RequestDigest  string `json:"request_digest"`
	ResponseDigest string `json:"response_digest"`
	RequestID      string `json:"request_id"`
	IssuedAt       int64  `json:"iat"`
}

type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// Digest is "sha256:<hex>" of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	var out [len("sha256:") + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[len("sha256:"):], s[:])
	return string(out[:])
}

func (s *Service) sign(ctx context.Context, c Claims) (string, error) {
	if s.keys == nil {
		return "", errors.New("serving: no keyring for response signing")
	}
	k, err := s.keys.SigningKey(ctx, SigningKeyName)
	if err != nil {
		return "", err
	}
	h, _ := json.Marshal(jwsHeader{Alg: "EdDSA", Kid: signer.KeyID(k.PublicKey()), Typ: JWSType})
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return in + "." + base64.RawURLEncoding.EncodeToString(k.SignMessage([]byte(in))), nil
}

// ErrSignature is wrapped by every verification failure.
var ErrSignature = errors.New("prediction signature does not verify")

// VerifyJWS checks a prediction's compact JWS with the platform's public
// key and that it covers exactly request and response (INF-6): any changed
// byte of either, of the claims or of the signature fails.
func VerifyJWS(jws string, pub ed25519.PublicKey, request, response []byte) (Claims, error) {
	var c Claims
	parts := strings.Split(jws, ".")
	if len(parts) != 3 || len(jws) > 8192 {
		return c, fmt.Errorf("%w: not a compact JWS", ErrSignature)
	}
	hb, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return c, fmt.Errorf("%w: bad encoding", ErrSignature)
	}
	var h jwsHeader
	if err := json.Unmarshal(hb, &h); err != nil || h.Alg != "EdDSA" || h.Typ != JWSType {
		return c, fmt.Errorf("%w: unexpected header", ErrSignature)
	}
	if h.Kid != signer.KeyID(pub) {
		return c, fmt.Errorf("%w: signed by another key", ErrSignature)
	}
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return c, fmt.Errorf("%w: bad signature", ErrSignature)
	}
	d := json.NewDecoder(bytes.NewReader(pb))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: claims: %v", ErrSignature, err)
	}
	if c.RequestDigest != Digest(request) || c.ResponseDigest != Digest(response) {
		return c, fmt.Errorf("%w: the request or response differs from what was signed", ErrSignature)
	}
	return c, nil
}

// PublicKey returns the response-signing public key (PEM) and its key ID.
// Every authenticated principal may read it (platform resource).
func (s *Service) PublicKey(ctx context.Context) ([]byte, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	if d := authz.Decide(c.Principal, authz.SigningKeyRead, authz.Resource{Kind: "platform"}); !d.Allow {
		return nil, "", d.Err("platform")
	}
	if s.keys == nil {
		return nil, "", &rampart.Error{Code: rampart.CodeNotFound, Message: "response signing is not configured"}
	}
	k, err := s.keys.SigningKey(ctx, SigningKeyName)
	if err != nil {
		return nil, "", err
	}
	pemBytes, err := signer.MarshalPublicKey(k.PublicKey())
	return pemBytes, signer.KeyID(k.PublicKey()), err
}
