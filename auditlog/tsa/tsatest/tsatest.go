// Package tsatest runs a real RFC 3161 time-stamping authority on loopback
// for tests: a test CA and a TSA certificate generated at start, requests
// parsed and tokens signed with github.com/digitorus/timestamp, served over
// HTTP by httptest (a real TCP server on 127.0.0.1).
package tsatest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/digitorus/timestamp"
)

// Server is a running test TSA.
type Server struct {
	URL     string
	CA      *x509.Certificate
	TSACert *x509.Certificate
	// Requests counts the requests answered with a token.
	Requests atomic.Int64

	srv  *httptest.Server
	key  crypto.Signer
	down atomic.Bool
}

// Start generates a CA and a TSA certificate and starts the server. Close it
// when done.
func Start() (*Server, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Rampart Test Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	tsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tsaTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Rampart Test TSA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
		// RFC 3161 2.3: the one EKU, critical.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	}
	tsaDER, err := x509.CreateCertificate(rand.Reader, tsaTmpl, ca, tsaKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	// x509 does not mark the EKU critical; RFC 3161 requires it and openssl
	// checks it, so re-issue with the extension flagged critical.
	tsaCert, err := x509.ParseCertificate(tsaDER)
	if err != nil {
		return nil, err
	}
	for _, e := range tsaCert.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) {
			e.Critical = true
			tsaTmpl.ExtraExtensions = append(tsaTmpl.ExtraExtensions, e)
		}
	}
	tsaTmpl.ExtKeyUsage = nil
	if tsaDER, err = x509.CreateCertificate(rand.Reader, tsaTmpl, ca, tsaKey.Public(), caKey); err != nil {
		return nil, err
	}
	if tsaCert, err = x509.ParseCertificate(tsaDER); err != nil {
		return nil, err
	}
	s := &Server{CA: ca, TSACert: tsaCert, key: tsaKey}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s, nil
}

// Roots returns a pool holding the test CA.
func (s *Server) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.CA)
	return p
}

// CAPEM returns the CA certificate in PEM (for openssl -CAfile).
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.CA.Raw})
}

// SetDown makes the TSA answer 503 (true) or serve again (false).
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/timestamp-query" {
		http.Error(w, "want POST application/timestamp-query", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := timestamp.ParseRequest(body)
	if err != nil {
		http.Error(w, fmt.Sprintf("bad request: %v", err), http.StatusBadRequest)
		return
	}
	ts := timestamp.Timestamp{
		HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage,
		Time: time.Now().UTC(), Nonce: req.Nonce, Accuracy: time.Second,
		Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1},
		AddTSACertificate: req.Certificates,
	}
	resp, err := ts.CreateResponseWithOpts(s.TSACert, s.key, crypto.SHA256)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.Requests.Add(1)
	w.Header().Set("Content-Type", "application/timestamp-reply")
	w.Write(resp)
}
