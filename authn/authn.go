// Package authn turns credentials into principals (IAM-1). API keys have the
// form rmp_<id>_<secret> with a 256-bit secret; only a keyed hash (HMAC-SHA256
// under a key held by the keyring) is stored, and verification is
// constant-time.
package authn

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// MAC is the keyed hash; Tink's tink.MAC satisfies it. VerifyMAC must be
// constant-time (Tink's is).
type MAC interface {
	ComputeMAC(data []byte) ([]byte, error)
	VerifyMAC(mac, data []byte) error
}

// Store is the part of the metadata store authn needs.
type Store interface {
	GetAPIKey(ctx context.Context, id string) (rampart.APIKey, error)
	GetPrincipal(ctx context.Context, id string) (rampart.Principal, error)
	CreateAPIKey(ctx context.Context, k rampart.APIKey) error
	CreatePrincipalWithKey(ctx context.Context, p rampart.Principal, k rampart.APIKey) error
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error
}

const (
	tokenPrefix = "rmp_"
	idBytes     = 16 // 128-bit key ID
	secretBytes = 32 // 256-bit secret (IAM-1)
	idLen       = 26 // base32 length of idBytes
	secretLen   = 52 // base32 length of secretBytes
	// MaxTokenLen bounds what is parsed at all.
	MaxTokenLen = len(tokenPrefix) + idLen + 1 + secretLen
)

// Token is a freshly minted API key. Its String redacts the secret, so a
// stray log line cannot leak it; use Reveal to show it once to its owner.
type Token struct{ s string }

// String redacts the secret.
func (t Token) String() string {
	if i := strings.LastIndexByte(t.s, '_'); i > 0 {
		return t.s[:i] + "_[REDACTED]"
	}
	return "[REDACTED]"
}

// LogValue keeps slog from printing the secret.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Reveal returns the full credential. Call it only to hand the key to its owner.
func (t Token) Reveal() string { return t.s }

// Authenticator verifies and issues API keys.
type Authenticator struct {
	store Store
	mac   MAC
	now   func() time.Time

	mu   sync.Mutex
	used map[string]time.Time // last-used times waiting to be flushed

	cmu   sync.RWMutex
	cache map[string]cached // key ID → verified key and principal
}

// cacheTTL bounds how long a key and its principal are trusted from memory.
// Revocations and disables made through this process invalidate at once
// (IAM-1: a revoked key fails on its next request); the TTL only bounds
// staleness against changes made by another process sharing the store.
const cacheTTL = 5 * time.Second

// maxCache bounds the cache; past it, entries are dropped at random.
const maxCache = 100_000

type cached struct {
	key     rampart.APIKey
	p       rampart.Principal
	fetched time.Time
	// verified is the SHA-256 of the MAC input of the last credential of
	// this key that passed VerifyMAC against key.Hash (zero: none yet).
	verified [sha256.Size]byte
}

// New returns an Authenticator. now may be nil (time.Now).
func New(store Store, mac MAC, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	return &Authenticator{store: store, mac: mac, now: now, used: map[string]time.Time{}, cache: map[string]cached{}}
}

// errBad is the one answer to every bad credential: callers learn nothing
// about which check failed.
var errBad = &rampart.Error{Code: rampart.CodeUnauthenticated, Message: "missing or invalid credential"}

// Failure says why a credential was refused, for the audit log only.
type Failure struct {
	Reason string
	KeyID  string // the key ID claimed by the token, when it parsed
}

func (f *Failure) Error() string { return "authentication failed: " + f.Reason }

// Is makes errors.Is(err, rampart.ErrUnauthenticated) true.
func (f *Failure) Is(target error) bool { return target == rampart.ErrUnauthenticated }

// Unwrap exposes the generic public error.
func (f *Failure) Unwrap() error { return errBad }

func fail(reason, keyID string) error { return &Failure{Reason: reason, KeyID: keyID} }

// ParseToken splits a credential into key ID and secret, checking its shape
// before anything else touches it.
func ParseToken(tok string) (keyID, secret string, err error) {
	if len(tok) != MaxTokenLen || !strings.HasPrefix(tok, tokenPrefix) {
		return "", "", errors.New("malformed token")
	}
	rest := tok[len(tokenPrefix):]
	if rest[idLen] != '_' {
		return "", "", errors.New("malformed token")
	}
	id, sec := rest[:idLen], rest[idLen+1:]
	if !b32(id) || !b32(sec) {
		return "", "", errors.New("malformed token")
	}
	return rampart.PrefixKey + "_" + id, sec, nil
}

func b32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// macInput binds the secret to its key ID, so a stored hash cannot be
// replayed for another key.
func macInput(keyID, secret string) []byte {
	return []byte(macPrefix + keyID + "\x00" + secret)
}

const macPrefix = "rampart-api-key-v1\x00"

// dummyHash is verified against when the key ID is unknown, so that a
// missing key costs the same time as a wrong secret.
var dummyHash = make([]byte, 37)

// Authenticate verifies a bearer credential (IAM-1) and returns its
// principal and key. Every failure returns an error matching
// rampart.ErrUnauthenticated; *Failure carries the reason for the audit log.
// The secret is verified on every request, cached or not, in constant time:
// against the stored keyed hash, or — the fast path for a key's repeated
// requests — by comparing the SHA-256 of the credential with that of the one
// this cache entry last verified against the stored hash. The fast path
// lives only as long as the cache entry (cacheTTL, dropped on revocation or
// disable); any other credential takes the keyed-hash check.
func (a *Authenticator) Authenticate(ctx context.Context, tok string) (rampart.Principal, rampart.APIKey, error) {
	keyID, secret, err := ParseToken(tok)
	if err != nil {
		return rampart.Principal{}, rampart.APIKey{}, fail("malformed", "")
	}
	now := a.now()
	a.cmu.RLock()
	c, ok := a.cache[keyID]
	a.cmu.RUnlock()
	if !ok || now.Sub(c.fetched) > cacheTTL || now.Before(c.fetched) {
		c, err = a.load(ctx, keyID, now)
		if err != nil {
			if errors.Is(err, rampart.ErrNotFound) {
				_ = a.mac.VerifyMAC(dummyHash, macInput(keyID, secret))
				return rampart.Principal{}, rampart.APIKey{}, fail("unknown key", keyID)
			}
			return rampart.Principal{}, rampart.APIKey{}, fmt.Errorf("authenticate: %w", err)
		}
	}
	k, p := c.key, c.p
	sum := credentialSum(keyID, secret)
	if c.verified == ([sha256.Size]byte{}) || subtle.ConstantTimeCompare(sum[:], c.verified[:]) != 1 {
		if err := a.mac.VerifyMAC(k.Hash, macInput(keyID, secret)); err != nil {
			return rampart.Principal{}, rampart.APIKey{}, fail("wrong secret", keyID)
		}
		a.remember(keyID, c.fetched, sum)
	}
	if k.RevokedAt != nil {
		return rampart.Principal{}, rampart.APIKey{}, fail("revoked", keyID)
	}
	if !k.Active(now) {
		return rampart.Principal{}, rampart.APIKey{}, fail("expired", keyID)
	}
	if p.ID == "" {
		return rampart.Principal{}, rampart.APIKey{}, fail("principal gone", keyID)
	}
	if p.Disabled {
		return rampart.Principal{}, rampart.APIKey{}, fail("principal disabled", keyID)
	}
	a.mu.Lock()
	a.used[k.ID] = now
	a.mu.Unlock()
	return p, k, nil
}

// credentialSum is the SHA-256 of macInput(keyID, secret), computed
// without allocating.
func credentialSum(keyID, secret string) [sha256.Size]byte {
	var buf [len(macPrefix) + 2*MaxTokenLen + 2]byte
	b := append(buf[:0], macPrefix...)
	b = append(append(append(b, keyID...), 0), secret...)
	return sha256.Sum256(b)
}

// remember records sum as verified in keyID's cache entry, if that entry is
// still the one the credential was checked against.
func (a *Authenticator) remember(keyID string, fetched time.Time, sum [sha256.Size]byte) {
	a.cmu.Lock()
	if c, ok := a.cache[keyID]; ok && c.fetched.Equal(fetched) {
		c.verified = sum
		a.cache[keyID] = c
	}
	a.cmu.Unlock()
}

// load reads a key and its principal from the store and caches them.
func (a *Authenticator) load(ctx context.Context, keyID string, now time.Time) (cached, error) {
	k, err := a.store.GetAPIKey(ctx, keyID)
	if err != nil {
		return cached{}, err
	}
	p, err := a.store.GetPrincipal(ctx, k.PrincipalID)
	if err != nil && !errors.Is(err, rampart.ErrNotFound) {
		return cached{}, err
	}
	c := cached{key: k, p: p, fetched: now}
	a.cmu.Lock()
	if len(a.cache) >= maxCache {
		for id := range a.cache { // map order is random: drop a random tenth
			delete(a.cache, id)
			if len(a.cache) < maxCache*9/10 {
				break
			}
		}
	}
	a.cache[keyID] = c
	a.cmu.Unlock()
	return c, nil
}

// InvalidateKey drops a key from the cache; call after revoking it.
func (a *Authenticator) InvalidateKey(keyID string) {
	a.cmu.Lock()
	delete(a.cache, keyID)
	a.cmu.Unlock()
}

// InvalidatePrincipal drops every cached key of a principal; call after
// disabling or changing it.
func (a *Authenticator) InvalidatePrincipal(principalID string) {
	a.cmu.Lock()
	for id, c := range a.cache {
		if c.key.PrincipalID == principalID {
			delete(a.cache, id)
		}
	}
	a.cmu.Unlock()
}

// Mint creates a new key record and its token for principal p without
// storing it (bootstrap writes the token out before committing the record).
func (a *Authenticator) Mint(p rampart.Principal, name string, ttl time.Duration) (Token, rampart.APIKey, error) {
	return a.mint(p, name, ttl)
}

func (a *Authenticator) mint(p rampart.Principal, name string, ttl time.Duration) (Token, rampart.APIKey, error) {
	idPart := rampart.RandomToken(idBytes)
	secret := rampart.RandomToken(secretBytes)
	keyID := rampart.PrefixKey + "_" + idPart
	h, err := a.mac.ComputeMAC(macInput(keyID, secret))
	if err != nil {
		return Token{}, rampart.APIKey{}, fmt.Errorf("hash api key: %w", err)
	}
	now := a.now().UTC()
	k := rampart.APIKey{ID: keyID, PrincipalID: p.ID, TenantID: p.TenantID, Name: name, Hash: h, CreatedAt: now}
	if ttl > 0 {
		exp := now.Add(ttl)
		k.ExpiresAt = &exp
	}
	return Token{s: tokenPrefix + idPart + "_" + secret}, k, nil
}

// Issue mints and stores a new API key for an existing principal.
func (a *Authenticator) Issue(ctx context.Context, p rampart.Principal, name string, ttl time.Duration) (Token, rampart.APIKey, error) {
	tok, k, err := a.mint(p, name, ttl)
	if err != nil {
		return Token{}, rampart.APIKey{}, err
	}
	if err := a.store.CreateAPIKey(ctx, k); err != nil {
		return Token{}, rampart.APIKey{}, err
	}
	return tok, k, nil
}

// CreatePrincipal stores a new principal with its first key in one
// transaction and returns that key's token.
func (a *Authenticator) CreatePrincipal(ctx context.Context, p rampart.Principal, keyName string, ttl time.Duration) (Token, rampart.APIKey, error) {
	tok, k, err := a.mint(p, keyName, ttl)
	if err != nil {
		return Token{}, rampart.APIKey{}, err
	}
	if err := a.store.CreatePrincipalWithKey(ctx, p, k); err != nil {
		return Token{}, rampart.APIKey{}, err
	}
	return tok, k, nil
}

// Flush writes the batched last-used times; the server calls it every few
// seconds and at shutdown, so authentication never waits on a write.
func (a *Authenticator) Flush(ctx context.Context) error {
	a.mu.Lock()
	used := a.used
	a.used = map[string]time.Time{}
	a.mu.Unlock()
	if err := a.store.TouchAPIKeys(ctx, used); err != nil {
		a.mu.Lock()
		for id, t := range used {
			if a.used[id].Before(t) {
				a.used[id] = t
			}
		}
		a.mu.Unlock()
		return err
	}
	return nil
}
