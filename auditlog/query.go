package auditlog

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// Query selects events. Empty fields do not filter. A principal of a tenant
// must only ever be given queries with Tenant set to its own tenant: that
// scoping is the caller's (httpapi's) job.
type Query struct {
	Tenant    string
	Principal string
	Action    string
	Resource  string
	Since     time.Time // inclusive
	Until     time.Time // exclusive
	Page      rampart.Page
}

// Record is one stored event: the decoded event and the exact bytes that
// were hashed into the tree (what a client verifies proofs against).
type Record struct {
	Index uint64
	Event Event
	Raw   []byte
}

// Events returns one page of events matching q, in index order, and the
// cursor of the next page ("" at the end). Cursors are opaque.
func (l *Log) Events(ctx context.Context, q Query) ([]Record, string, error) {
	p := q.Page.Norm()
	after := int64(-1)
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		n, err2 := strconv.ParseInt(string(b), 10, 64)
		if err != nil || err2 != nil || n < 0 || strconv.FormatInt(n, 10) != string(b) {
			return nil, "", rampart.Invalid("cursor", "malformed cursor")
		}
		after = n
	}
	leaves, err := l.st.QueryLeaves(ctx, LeafQuery{After: after, Limit: p.Limit, Tenant: q.Tenant,
		Principal: q.Principal, Action: q.Action, Resource: q.Resource, Since: q.Since, Until: q.Until})
	if err != nil {
		return nil, "", fmt.Errorf("audit: query events: %w", err)
	}
	out := make([]Record, len(leaves))
	for i, lf := range leaves {
		ev, err := ParseEvent(lf.Data)
		if err != nil {
			return nil, "", fmt.Errorf("audit: stored event %d: %w", lf.Index, err)
		}
		out[i] = Record{Index: lf.Index, Event: ev, Raw: lf.Data}
	}
	next := ""
	if len(out) == p.Limit {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(out[len(out)-1].Index, 10)))
	}
	return out, next, nil
}
