package auditlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-mlaas/rampart"
)

// Decision is the authorization decision recorded with an event.
type Decision string

// The decisions.
const (
	Allow Decision = "allow"
	Deny  Decision = "deny"
)

// Limits on event fields. They keep leaves small (the log is append-only and
// every byte is kept forever) and bound the work of every parser.
const (
	MaxFieldLen     = 512      // any single string field
	MaxDetails      = 32       // entries in Details + Sensitive
	MaxDetailKeyLen = 64       // a detail key
	MaxEventSize    = 16 << 10 // the encoded (canonical) event
	timeLayout      = "2006-01-02T15:04:05.000000000Z"
	hmacPrefix      = "hmac:"   // marks a detail value that is a MAC, not the value
	digestPrefix    = "sha256:" // the only accepted content digest form
	eventVersion    = 1
)

// Event is one security-relevant action (AUDIT-3): who (tenant, principal,
// role) did what (action) to what (resource), the authorization decision and
// its reason, the outcome, the request it belongs to, a digest of the content
// involved, and a few small details.
//
// Index and Time are assigned by the Log when the event is sequenced (Time is
// kept if the caller set it). Sensitive values never enter the log: Append
// replaces each with "hmac:" + base64url(HMAC(tenant key, value)) in Details,
// so the same value can be correlated within a tenant but not read (AUDIT-3).
type Event struct {
	Index     uint64
	Time      time.Time
	Tenant    string
	Principal string
	Role      rampart.Role
	Action    string
	Resource  string
	Decision  Decision
	Reason    string
	Outcome   string
	RequestID string
	// Digest is "sha256:" + 64 lower-case hex digits of the content the
	// action concerned (an upload, a model, a prediction), or empty.
	Digest string
	// Details are small, non-sensitive key/value pairs, recorded verbatim.
	Details map[string]string
	// Sensitive values are HMAC'd with the tenant's key before they are
	// recorded under the same key in Details; the raw values are dropped.
	Sensitive map[string][]byte
	// AckOnWrite lets Append return once the event is committed to the
	// store, before it is flushed to disk (see Config.AckOnWrite). It is not
	// part of the event's encoding.
	AckOnWrite bool
}

// wireEvent is the canonical encoding of an Event. Field order here is the
// key order on the wire; encoding/json writes struct fields in declaration
// order, map keys sorted, and no insignificant whitespace, so json.Marshal of
// a wireEvent is deterministic. Every field is always present.
type wireEvent struct {
	V         int               `json:"v"`
	Index     uint64            `json:"index"`
	Time      string            `json:"time"`
	Tenant    string            `json:"tenant"`
	Principal string            `json:"principal"`
	Role      string            `json:"role"`
	Action    string            `json:"action"`
	Resource  string            `json:"resource"`
	Decision  string            `json:"decision"`
	Reason    string            `json:"reason"`
	Outcome   string            `json:"outcome"`
	RequestID string            `json:"request_id"`
	Digest    string            `json:"digest"`
	Details   map[string]string `json:"details"`
}

// HMACFunc computes a MAC of value under the tenant's audit MAC key. The
// keyring supplies it; an empty tenant means the platform (system) key.
type HMACFunc func(ctx context.Context, tenant string, value []byte) ([]byte, error)

// ContentDigest returns the Digest form ("sha256:<hex>") of a SHA-256 sum.
func ContentDigest(sum [32]byte) string { return digestPrefix + hex.EncodeToString(sum[:]) }

// validate checks the caller-supplied fields of ev (not Index/Time).
func (ev *Event) validate() error {
	if ev.Action == "" {
		return rampart.Invalid("action", "audit event needs an action")
	}
	if ev.Decision != Allow && ev.Decision != Deny {
		return rampart.Invalid("decision", "audit decision must be %q or %q", Allow, Deny)
	}
	if !ev.Time.IsZero() && (ev.Time.UTC().Year() < 1 || ev.Time.UTC().Year() > 9999) {
		return rampart.Invalid("time", "audit time must be within years 1..9999")
	}
	if ev.Role != "" && !ev.Role.Valid() {
		return rampart.Invalid("role", "unknown role %q", ev.Role)
	}
	for _, f := range []struct{ name, v string }{
		{"tenant", ev.Tenant}, {"principal", ev.Principal}, {"action", ev.Action},
		{"resource", ev.Resource}, {"reason", ev.Reason}, {"outcome", ev.Outcome},
		{"request_id", ev.RequestID},
	} {
		if err := checkString(f.name, f.v, MaxFieldLen); err != nil {
			return err
		}
	}
	if ev.Digest != "" {
		h, ok := strings.CutPrefix(ev.Digest, digestPrefix)
		if !ok || len(h) != 64 || strings.ToLower(h) != h {
			return rampart.Invalid("digest", "digest must be sha256:<64 lower-case hex digits>")
		}
		if _, err := hex.DecodeString(h); err != nil {
			return rampart.Invalid("digest", "digest must be sha256:<64 lower-case hex digits>")
		}
	}
	if len(ev.Details)+len(ev.Sensitive) > MaxDetails {
		return rampart.Invalid("details", "at most %d details", MaxDetails)
	}
	for k, v := range ev.Details {
		if err := checkString("details key", k, MaxDetailKeyLen); err != nil {
			return err
		}
		if k == "" {
			return rampart.Invalid("details", "empty detail key")
		}
		if err := checkString("details["+k+"]", v, MaxFieldLen); err != nil {
			return err
		}
		if strings.HasPrefix(v, hmacPrefix) {
			return rampart.Invalid("details", "detail %q: values starting with %q are reserved for MACs", k, hmacPrefix)
		}
	}
	for k := range ev.Sensitive {
		if err := checkString("details key", k, MaxDetailKeyLen); err != nil {
			return err
		}
		if k == "" {
			return rampart.Invalid("details", "empty detail key")
		}
		if _, dup := ev.Details[k]; dup {
			return rampart.Invalid("details", "detail %q is both sensitive and plain", k)
		}
	}
	return nil
}

func checkString(field, v string, max int) error {
	if len(v) > max {
		return rampart.Invalid(field, "%s longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) {
		return rampart.Invalid(field, "%s is not valid UTF-8", field)
	}
	return nil
}

// sealDetails returns the details map to record: the plain details plus the
// MACs of the sensitive values (AUDIT-3: no secrets or raw personal data).
func (ev *Event) sealDetails(ctx context.Context, mac HMACFunc) (map[string]string, error) {
	if len(ev.Sensitive) == 0 {
		return ev.Details, nil // never modified, so no copy
	}
	out := make(map[string]string, len(ev.Details)+len(ev.Sensitive))
	for k, v := range ev.Details {
		out[k] = v
	}
	if len(ev.Sensitive) == 0 {
		return out, nil
	}
	if mac == nil {
		return nil, rampart.Invalid("details", "sensitive audit details need an HMAC key, and none is configured")
	}
	for k, v := range ev.Sensitive {
		sum, err := mac(ctx, ev.Tenant, v)
		if err != nil {
			return nil, fmt.Errorf("audit: MAC of detail %q: %w", k, err)
		}
		out[k] = hmacPrefix + base64.RawURLEncoding.EncodeToString(sum)
	}
	return out, nil
}

// MarshalCanonical returns the canonical encoding of ev: the bytes that are
// hashed into the Merkle tree. ev.Sensitive must be empty (sealed events have
// their MACs in Details); the time is rendered in UTC with nanoseconds.
func (ev *Event) MarshalCanonical() ([]byte, error) {
	if len(ev.Sensitive) > 0 {
		return nil, rampart.Invalid("details", "sensitive details must be sealed before encoding")
	}
	b := appendCanonical(make([]byte, 0, 640), ev) // room to splice in any index
	if len(b) > MaxEventSize {
		return nil, rampart.Errorf(rampart.CodeTooLarge, "audit event is %d bytes, more than %d", len(b), MaxEventSize)
	}
	return b, nil
}

// ParseEvent decodes a canonical event and rejects anything that is not the
// exact canonical encoding of what it decodes to (unknown or duplicate keys,
// other key orders, whitespace, other escapes), so one event has exactly one
// byte form and one leaf hash (AUDIT-1, AUDIT-4).
func ParseEvent(b []byte) (Event, error) {
	if len(b) > MaxEventSize {
		return Event{}, fmt.Errorf("%w: event larger than %d bytes", errFormat, MaxEventSize)
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Event{}, fmt.Errorf("%w: event: %v", errFormat, err)
	}
	if w.V != eventVersion {
		return Event{}, fmt.Errorf("%w: event version %d, want %d", errFormat, w.V, eventVersion)
	}
	t, err := time.Parse(timeLayout, w.Time)
	if err != nil {
		return Event{}, fmt.Errorf("%w: event time: %v", errFormat, err)
	}
	ev := Event{
		Index: w.Index, Time: t, Tenant: w.Tenant, Principal: w.Principal, Role: rampart.Role(w.Role),
		Action: w.Action, Resource: w.Resource, Decision: Decision(w.Decision), Reason: w.Reason,
		Outcome: w.Outcome, RequestID: w.RequestID, Digest: w.Digest, Details: w.Details,
	}
	if w.Details == nil {
		return Event{}, fmt.Errorf("%w: event details must be an object", errFormat)
	}
	again, err := ev.MarshalCanonical()
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", errFormat, err)
	}
	if !bytes.Equal(again, b) {
		return Event{}, fmt.Errorf("%w: event is not in canonical form", errFormat)
	}
	return ev, nil
}

// DetailKeys returns the detail keys in sorted order (for display).
func (ev *Event) DetailKeys() []string {
	keys := make([]string, 0, len(ev.Details))
	for k := range ev.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The canonical encoding starts with these bytes, then the index digits,
// then timeField and the 30-byte time.
const (
	canonicalPrefix = `{"v":1,"index":`
	timeField       = `,"time":"`
)

// spliceEvent turns an encoding made with index 0 into the encoding with the
// given index (and time, when setTime), byte-identical to MarshalCanonical of
// the event with those values: the index is the only variable-width field
// before the fixed-width time. It works in place when enc has the capacity
// (enc must not be used afterwards).
func spliceEvent(enc []byte, index uint64, t time.Time, setTime bool) ([]byte, error) {
	zero := canonicalPrefix + "0" + timeField
	if len(enc) < len(zero)+len(timeLayout) || string(enc[:len(zero)]) != zero {
		return nil, fmt.Errorf("audit: %w: unexpected event encoding", rampart.ErrInternal)
	}
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], index, 10)
	n := len(enc) + len(d) - 1
	out := enc
	if cap(enc) < n {
		out = make([]byte, n)
		copy(out, enc[:len(canonicalPrefix)])
	}
	out = out[:n]
	// Move everything after the "0" to its place, then write the digits.
	copy(out[len(canonicalPrefix)+len(d):], enc[len(canonicalPrefix)+1:])
	copy(out[len(canonicalPrefix):], d)
	if setTime {
		var ts [len(timeLayout)]byte
		t.UTC().AppendFormat(ts[:0], timeLayout)
		copy(out[len(canonicalPrefix)+len(d)+len(timeField):], ts[:])
	}
	return out, nil
}

// appendCanonical appends the canonical encoding of ev: byte for byte what
// json.Marshal of the corresponding wireEvent produces (TestCanonicalMatchesJSON
// and FuzzCanonicalEncoding check this), without reflection.
func appendCanonical(b []byte, ev *Event) []byte {
	b = append(b, canonicalPrefix...)
	b = strconv.AppendUint(b, ev.Index, 10)
	b = append(b, timeField...)
	b = ev.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, `","tenant":`...)
	b = appendJSONString(b, ev.Tenant)
	b = append(b, `,"principal":`...)
	b = appendJSONString(b, ev.Principal)
	b = append(b, `,"role":`...)
	b = appendJSONString(b, string(ev.Role))
	b = append(b, `,"action":`...)
	b = appendJSONString(b, ev.Action)
	b = append(b, `,"resource":`...)
	b = appendJSONString(b, ev.Resource)
	b = append(b, `,"decision":`...)
	b = appendJSONString(b, string(ev.Decision))
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, ev.Reason)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, ev.Outcome)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, ev.RequestID)
	b = append(b, `,"digest":`...)
	b = appendJSONString(b, ev.Digest)
	b = append(b, `,"details":{`...)
	keys := make([]string, 0, len(ev.Details))
	for k := range ev.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys) // encoding/json sorts map keys bytewise too
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, ev.Details[k])
	}
	return append(b, "}}"...)
}

// appendJSONString appends s as encoding/json does. Plain printable ASCII
// without HTML-sensitive characters is copied; anything else goes through
// encoding/json itself, so the escaping rules are never reimplemented.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				panic(err)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
