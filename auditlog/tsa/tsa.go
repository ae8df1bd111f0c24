// Package tsa is an RFC 3161 time-stamping client: it asks a time-stamping
// authority (TSA) for a token over a SHA-256 digest and verifies tokens — the
// imprint, the CMS signature and, when roots are given, the TSA's certificate
// chain (AUDIT-2). Package tsatest runs a real RFC 3161 server for tests.
package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
)

// MaxTokenSize bounds a response or token before it is parsed.
const MaxTokenSize = 64 << 10

// ErrInvalid is matched by every token that does not verify.
var ErrInvalid = errors.New("invalid time-stamp token")

// Client talks to one TSA over HTTP (RFC 3161 section 3.4).
type Client struct {
	// URL of the TSA, e.g. https://freetsa.org/tsr.
	URL string
	// HTTP is the client to use; nil means one with a 10 s timeout.
	HTTP *http.Client
	// Roots, when set, must contain the root of the TSA's certificate chain;
	// otherwise only the token's signature by its embedded certificate is
	// checked (the verifier of the exported log checks the chain).
	Roots *x509.CertPool
}

// Info is what a verified token says.
type Info struct {
	Time   time.Time
	Serial *big.Int
	Signer *x509.Certificate
}

// Timestamp requests a token over a SHA-256 digest and returns the DER
// TimeStampToken after checking it (imprint, nonce, signature, chain).
func (c *Client) Timestamp(ctx context.Context, digest []byte) ([]byte, error) {
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("tsa: nonce: %w", err)
	}
	req := timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest, Certificates: true, Nonce: nonce}
	body, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("tsa: encode request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tsa: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/timestamp-query")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("tsa: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxTokenSize+1))
	if err != nil {
		return nil, fmt.Errorf("tsa: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("tsa: %s answered %s", c.URL, resp.Status)
	}
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("tsa: response larger than %d bytes", MaxTokenSize)
	}
	ts, err := timestamp.ParseResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("tsa: %w: %v", ErrInvalid, err)
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return nil, fmt.Errorf("tsa: %w: nonce mismatch", ErrInvalid)
	}
	if _, err := Verify(ts.RawToken, digest, c.Roots); err != nil {
		return nil, err
	}
	return ts.RawToken, nil
}

// Verify checks a DER TimeStampToken: it must be signed by the certificate it
// embeds, its message imprint must be SHA-256 = digest, and when roots is not
// nil the signer must chain to one of them with the time-stamping extended
// key usage, valid at the token's time.
func Verify(token, digest []byte, roots *x509.CertPool) (info Info, err error) {
	if len(token) == 0 || len(token) > MaxTokenSize {
		return Info{}, fmt.Errorf("tsa: %w: empty or larger than %d bytes", ErrInvalid, MaxTokenSize)
	}
	// The token must be exactly one DER element, nothing after it.
	var outer asn1.RawValue
	if rest, err := asn1.Unmarshal(token, &outer); err != nil || len(rest) > 0 {
		return Info{}, fmt.Errorf("tsa: %w: not a single DER element", ErrInvalid)
	}
	// github.com/digitorus/pkcs7's BER reader panics on some malformed input
	// (found by FuzzVerify); tokens come from untrusted exports, so a panic
	// there is turned into a verification failure.
	defer func() {
		if r := recover(); r != nil {
			info, err = Info{}, fmt.Errorf("tsa: %w: malformed CMS structure", ErrInvalid)
		}
	}()
	// timestamp.Parse checks the CMS signature with the embedded certificate.
	ts, err := timestamp.Parse(token)
	if err != nil {
		return Info{}, fmt.Errorf("tsa: %w: %v", ErrInvalid, err)
	}
	if !ts.AddTSACertificate || len(ts.Certificates) == 0 {
		return Info{}, fmt.Errorf("tsa: %w: token carries no certificate", ErrInvalid)
	}
	if ts.HashAlgorithm != crypto.SHA256 {
		return Info{}, fmt.Errorf("tsa: %w: imprint uses %v, want SHA-256", ErrInvalid, ts.HashAlgorithm)
	}
	if !bytes.Equal(ts.HashedMessage, digest) {
		return Info{}, fmt.Errorf("tsa: %w: message imprint does not match", ErrInvalid)
	}
	p7, err := pkcs7.Parse(token)
	if err != nil {
		return Info{}, fmt.Errorf("tsa: %w: %v", ErrInvalid, err)
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return Info{}, fmt.Errorf("tsa: %w: want exactly one signer", ErrInvalid)
	}
	if roots != nil {
		inter := x509.NewCertPool()
		for _, c := range p7.Certificates {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: ts.Time,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}
		if err := p7.VerifyWithOpts(opts); err != nil {
			return Info{}, fmt.Errorf("tsa: %w: %v", ErrInvalid, err)
		}
	}
	return Info{Time: ts.Time, Serial: ts.SerialNumber, Signer: signer}, nil
}
