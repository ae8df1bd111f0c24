package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

func problemOf(t *testing.T, body []byte) httpapi.Problem {
	t.Helper()
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem document: %s", body)
	}
	return p
}

// nothingStored checks that a dataset has no versions and no blobs: a
// rejected upload leaves nothing behind (DATA-4).
func nothingStored(t *testing.T, e *servertest.Env, a *servertest.Actor, id string) {
	t.Helper()
	var vs httpapi.List[dataset.Version]
	if err := a.C.Do(context.Background(), "GET", "/v1/datasets/"+id+"/versions", nil, nil, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs.Items) != 0 {
		t.Fatalf("rejected upload left versions: %+v", vs.Items)
	}
	dir := filepath.Join(e.DataDir, "blobs")
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, id) {
			t.Errorf("rejected upload left a blob: %s", p)
		}
		return nil
	})
	// A later valid upload gets the next number: nothing half-stored blocks it.
}

// TestDatasetGrants is DATA-7 over HTTP: a train-only grantee sees the
// metadata and the redacted report but gets 404 on every row-returning
// route; a read grantee reads rows with formulas escaped; revoked and
// expired grants stop working on the next request.
func TestDatasetGrants(t *testing.T) {
	e := servertest.Start(t)
	a := e.NewWorld(t, "owner")
	b := e.NewWorld(t, "user")
	dp := a.Actors[rampart.RoleDataProvider]
	md := b.Actors[rampart.RoleModelDeveloper]
	d := e.Dataset(t, dp, "loans", "y")
	csv := "x,note,y\n1,\"=HYPERLINK(\"\"http://evil\"\")\",a\n2,ok,b\n3,+1,a\n4,-x,b\n"
	up := e.Upload(t, dp, d.ID, csv)
	if up.Version.Version != 1 || up.Version.Rows != 4 || up.Report.Formula.Cells != 2 {
		t.Fatalf("upload: %+v formula=%+v", up.Version, up.Report.Formula)
	}
	base := "/v1/datasets/" + d.ID
	rowRoutes := []string{base + "/versions/1/data"}
	// Before any grant: everything is 404 for the other tenant.
	for _, p := range []string{base, base + "/versions/1", base + "/versions/1/report", base + "/versions/1/data"} {
		if st, _ := e.Raw(t, "GET", p, md.Token, nil, nil); st != 404 {
			t.Errorf("no grant: GET %s = %d", p, st)
		}
	}
	g := e.Grant(t, dp, d.ID, httpapi.GrantRequest{To: md.Principal.ID, Purpose: "train", MaxEpsilon: ptrF(3), RequireDP: true})
	if g.GranteeTenantID != b.Tenant.ID || !g.Terms.RequireDP || *g.Terms.MaxEpsilon != 3 {
		t.Fatalf("grant: %+v", g)
	}
	for _, p := range []string{base, base + "/versions/1"} {
		if st, body := e.Raw(t, "GET", p, md.Token, nil, nil); st != 200 {
			t.Errorf("train grantee: GET %s = %d %s", p, st, body)
		}
	}
	st, body := e.Raw(t, "GET", base+"/versions/1/report", md.Token, nil, nil)
	if st != 200 {
		t.Fatalf("train grantee report: %d %s", st, body)
	}
	var rep dataset.Report
	_ = json.Unmarshal(body, &rep)
	for _, c := range rep.Columns {
		if len(c.Top) > 0 || c.Min != nil || len(c.Quantiles) > 0 {
			t.Errorf("train grantee sees data values in the report: %+v", c)
		}
	}
	if len(rep.Classes) != 0 {
		t.Errorf("train grantee sees label values: %+v", rep.Classes)
	}
	for _, p := range rowRoutes {
		if st, _ := e.Raw(t, "GET", p, md.Token, nil, nil); st != 404 {
			t.Errorf("train grantee read rows: GET %s = %d", p, st)
		}
	}
	for _, m := range []string{"DELETE " + base, "DELETE " + base + "/versions/1", "GET " + base + "/grants", "POST " + base + "/versions"} {
		f := strings.Fields(m)
		if st, _ := e.Raw(t, f[0], f[1], md.Token, strings.NewReader("a\n1\n"), map[string]string{"Content-Type": "text/csv"}); st != 404 {
			t.Errorf("train grantee %s = %d", m, st)
		}
	}
	// Another model developer of the grantee tenant is not named: 404.
	other := e.Actor(t, b.Tenant, "md-two", rampart.RoleModelDeveloper)
	if st, _ := e.Raw(t, "GET", base, other.Token, nil, nil); st != 404 {
		t.Errorf("unnamed principal of the grantee tenant: %d", st)
	}
	// The grantee lists what it received.
	var recv httpapi.List[dataset.Grant]
	if err := md.C.Do(context.Background(), "GET", "/v1/grants", nil, nil, &recv); err != nil || len(recv.Items) != 1 {
		t.Fatalf("received grants: %v %+v", err, recv)
	}

	// A read grant to the whole tenant: rows, with formula cells escaped.
	rg := e.Grant(t, dp, d.ID, httpapi.GrantRequest{To: b.Tenant.ID, Purpose: "read"})
	st, body = e.Raw(t, "GET", base+"/versions/1/data", other.Token, nil, nil)
	if st != 200 {
		t.Fatalf("read grantee: %d %s", st, body)
	}
	want := "x,note,y\n1,\"'=HYPERLINK(\"\"http://evil\"\")\",a\n2,ok,b\n3,+1,a\n4,\"'-x\",b\n"
	if string(body) != want {
		t.Errorf("export:\n%s\nwant:\n%s", body, want)
	}
	// Revocation works on the next request.
	var rv dataset.Grant
	if err := dp.C.Do(context.Background(), "DELETE", "/v1/grants/"+rg.ID, nil, nil, &rv); err != nil || rv.RevokedAt == nil {
		t.Fatalf("revoke: %v %+v", err, rv)
	}
	if st, _ := e.Raw(t, "GET", base+"/versions/1/data", other.Token, nil, nil); st != 404 {
		t.Errorf("revoked read grant still reads: %d", st)
	}
	// The grantee cannot revoke: 404.
	if st, _ := e.Raw(t, "DELETE", "/v1/grants/"+g.ID, md.Token, nil, nil); st != 404 {
		t.Errorf("grantee revoked its grant: %d", st)
	}
	// Expiry.
	eg := e.Grant(t, dp, d.ID, httpapi.GrantRequest{To: other.Principal.ID, Purpose: "read", ExpiresInSeconds: 1})
	if st, _ := e.Raw(t, "GET", base+"/versions/1/data", other.Token, nil, nil); st != 200 {
		t.Errorf("fresh expiring grant: %d", st)
	}
	time.Sleep(time.Until(*eg.ExpiresAt) + 50*time.Millisecond)
	if st, _ := e.Raw(t, "GET", base+"/versions/1/data", other.Token, nil, nil); st != 404 {
		t.Errorf("expired grant still reads: %d", st)
	}
	// Own-tenant roles: model developer reads metadata but not rows;
	// service users nothing.
	if st, _ := e.Raw(t, "GET", base+"/versions/1/data", a.Actors[rampart.RoleModelDeveloper].Token, nil, nil); st != 403 {
		t.Errorf("own model developer read rows: %d", st)
	}
	if st, _ := e.Raw(t, "GET", base, a.Actors[rampart.RoleServiceUser].Token, nil, nil); st != 403 {
		t.Errorf("own service user read dataset: %d", st)
	}
}

func ptrF(v float64) *float64 { return &v }

// recorder is an in-memory rampart.Auditor for checking what was recorded.
type recorder struct {
	mu  sync.Mutex
	evs []rampart.AuditEvent
}

func (r *recorder) Record(_ context.Context, ev rampart.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

func (r *recorder) find(action, outcome string) []rampart.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []rampart.AuditEvent
	for _, e := range r.evs {
		if e.Action == action && e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

func as(a *servertest.Actor) context.Context {
	return rampart.WithCaller(context.Background(), rampart.Caller{Principal: a.Principal, KeyID: a.KeyID, RequestID: "req_test"})
}

// TestDatasetUseTamperAndShred covers the service API the training issue
// uses (Open, RecordLineage), DATA-3 (a flipped byte refuses every read),
// DATA-8 (deletion shreds, flags derived models, and no API returns the
// data), DATA-1 (canaries never on disk in plaintext) and AUDIT-3 (every
// use recorded, naming the grant).
func TestDatasetUseTamperAndShred(t *testing.T) {
	e := servertest.Start(t)
	a := e.NewWorld(t, "prov")
	b := e.NewWorld(t, "dev")
	dp, md := a.Actors[rampart.RoleDataProvider], b.Actors[rampart.RoleModelDeveloper]
	rec := &recorder{}
	svc := dataset.New(e.Server.DB, e.Server.Barrier, rec, nil, nil)

	canaries := []string{"CANARY-" + rampart.RandomToken(10), "canary-" + rampart.RandomToken(10) + "@example.org"}
	var sb strings.Builder
	sb.WriteString("id,secret,amount,label\n")
	for i := range 200 {
		fmt.Fprintf(&sb, "%d,%s,%d.5,%s\n", i, canaries[i%2], i*3, []string{"yes", "no"}[i%2])
	}
	d := e.Dataset(t, dp, "canary", "label")
	e.Upload(t, dp, d.ID, sb.String())
	e.Upload(t, dp, d.ID, sb.String()) // version 2
	g := e.Grant(t, dp, d.ID, httpapi.GrantRequest{To: md.Principal.ID, Purpose: "train", MaxEpsilon: ptrF(2)})

	assertNoCanary := func(stage string) {
		t.Helper()
		err := filepath.WalkDir(e.DataDir, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, c := range canaries {
				if bytes.Contains(b, []byte(c)) {
					t.Errorf("%s: canary %q in plaintext in %s", stage, c, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	assertNoCanary("after upload")

	// The training issue's entry point: a train grantee opens a version.
	u, err := svc.Open(as(md), d.ID, 1, authz.PurposeTrain)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(u)
	u.Close()
	if err != nil || string(data) != sb.String() {
		t.Fatalf("open for training: %v (%d bytes)", err, len(data))
	}
	if u.Grant == nil || u.Grant.ID != g.ID || u.Terms.MaxEpsilon == nil || *u.Terms.MaxEpsilon != 2 {
		t.Fatalf("use carries grant %+v terms %+v", u.Grant, u.Terms)
	}
	uses := rec.find("dataset.train", "ok")
	if len(uses) != 1 || uses[0].Details["grant"] != g.ID || uses[0].Digest != "sha256:"+u.Version.Digest || uses[0].Principal != md.Principal.ID {
		t.Fatalf("use not recorded with its grant: %+v", uses)
	}
	// Evaluate needs an evaluate grant; a train grant is not one.
	if _, err := svc.Open(as(md), d.ID, 1, authz.PurposeEvaluate); !isCode(err, rampart.CodeNotFound) {
		t.Errorf("evaluate with a train grant: %v", err)
	}
	if err := svc.RecordLineage(as(md), d.ID, 1, "model", "mdl_test1"); err != nil {
		t.Fatal(err)
	}

	// DATA-3: one flipped byte in the stored version 2 refuses every read.
	ref := barrier.Ref{Tenant: d.TenantID, Kind: "dataset", ID: d.ID, Version: 2}
	blobPath := filepath.Join(e.DataDir, "blobs", filepath.FromSlash(ref.BlobKey()))
	raw, err := os.ReadFile(blobPath)
	if err != nil {
		t.Fatalf("find blob: %v", err)
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(blobPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Open(as(md), d.ID, 2, authz.PurposeTrain); err == nil || !strings.Contains(err.Error(), "integrity") {
		t.Errorf("tampered version opened for training: %v", err)
	}
	if st, body := e.Raw(t, "GET", "/v1/datasets/"+d.ID+"/versions/2/data", dp.Token, nil, nil); st != 500 {
		t.Errorf("tampered version read: %d %s", st, body)
	}
	if st, _ := e.Raw(t, "GET", "/v1/datasets/"+d.ID+"/versions/1/data", dp.Token, nil, nil); st != 200 {
		t.Errorf("untampered version 1 unreadable: %d", st)
	}

	// DATA-8: delete; derived models flagged; nothing readable; no canary.
	var del dataset.Deletion
	if err := dp.C.Do(context.Background(), "DELETE", "/v1/datasets/"+d.ID, nil, nil, &del); err != nil {
		t.Fatal(err)
	}
	if len(del.Versions) != 2 || len(del.Affected) != 1 || del.Affected[0].ObjectID != "mdl_test1" {
		t.Fatalf("deletion: %+v", del)
	}
	for _, p := range []string{"", "/versions/1", "/versions/1/report", "/versions/1/data", "/versions"} {
		if st, _ := e.Raw(t, "GET", "/v1/datasets/"+d.ID+p, dp.Token, nil, nil); st != 404 {
			t.Errorf("after deletion GET %s = %d", p, st)
		}
	}
	if _, err := svc.Open(as(md), d.ID, 1, authz.PurposeTrain); !isCode(err, rampart.CodeNotFound) {
		t.Errorf("open after deletion: %v", err)
	}
	ls, err := svc.Lineage(as(dp), d.ID)
	if err != nil || len(ls) != 1 || ls[0].DatasetDeletedAt == nil {
		t.Fatalf("lineage after deletion: %v %+v", err, ls)
	}
	if _, err := e.Server.Barrier.Open(context.Background(), barrier.Ref{Tenant: d.TenantID, Kind: "dataset", ID: d.ID, Version: 1}, u.Version.Digest); err == nil {
		t.Errorf("shredded version still opens")
	}
	assertNoCanary("after deletion")
}

// TestDatasetSchemaRejection is DATA-4's acceptance: 1,000 rows violating
// a declared schema are all reported with row and column; the upload is
// refused and nothing of it stays stored.
func TestDatasetSchemaRejection(t *testing.T) {
	e := servertest.Start(t)
	w := e.NewWorld(t, "schema")
	dp := w.Actors[rampart.RoleDataProvider]
	lo, hi := 0.0, 120.0
	var d dataset.Dataset
	req := httpapi.CreateDatasetRequest{Name: "people", Label: "ok", Schema: &dataset.Schema{Columns: []dataset.Column{
		{Name: "age", Type: dataset.TypeInteger, Min: &lo, Max: &hi},
		{Name: "city", Type: dataset.TypeCategorical, Values: []string{"paris", "rome"}},
		{Name: "ok", Type: dataset.TypeBoolean},
	}}}
	if err := dp.C.Do(context.Background(), "POST", "/v1/datasets", nil, req, &d); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("age,city,ok\n")
	want := map[string]bool{}
	bad := []struct{ age, city, ok, col string }{{"200", "rome", "true", "age"}, {"x", "paris", "no", "age"},
		{"30", "oslo", "yes", "city"}, {"40", "rome", "maybe", "ok"}, {"4.5", "rome", "false", "age"}}
	for i := 1; i <= 2000; i++ {
		if i%2 == 0 {
			b := bad[(i/2)%len(bad)]
			fmt.Fprintf(&sb, "%s,%s,%s\n", b.age, b.city, b.ok)
			want[fmt.Sprintf("body.rows[%d].%s", i, b.col)] = true
		} else {
			fmt.Fprintf(&sb, "%d,paris,true\n", i%100)
		}
	}
	st, body := e.Raw(t, "POST", "/v1/datasets/"+d.ID+"/versions", dp.Token, strings.NewReader(sb.String()), map[string]string{"Content-Type": "text/csv"})
	if st != 400 {
		t.Fatalf("schema violations: %d %s", st, body[:min(len(body), 300)])
	}
	p := problemOf(t, body)
	if len(p.Errors) != 1000 || !strings.Contains(p.Detail, "1000 field(s) violate") {
		t.Fatalf("reported %d violations: %s", len(p.Errors), p.Detail)
	}
	for _, ed := range p.Errors {
		if !want[ed.Location] {
			t.Errorf("unexpected violation %s: %s", ed.Location, ed.Message)
		}
		delete(want, ed.Location)
	}
	if len(want) != 0 {
		t.Errorf("%d violations not reported", len(want))
	}
	nothingStored(t, e, dp, d.ID)
	// A conforming upload then becomes version 2: numbers are never reused.
	up := e.Upload(t, dp, d.ID, "age,city,ok\n30,paris,yes\n40,rome,no\n")
	if up.Version.Version != 2 {
		t.Errorf("next version = %d", up.Version.Version)
	}
}

// TestDatasetBadInput: every malformed upload is a 4xx problem naming the
// row and column, and nothing is stored.
func TestDatasetBadInput(t *testing.T) {
	e := servertest.Start(t)
	w := e.NewWorld(t, "bad")
	dp := w.Actors[rampart.RoleDataProvider]
	huge := io.MultiReader(strings.NewReader("a,b\n1,\""), &repeatReader{b: 'x', n: 100 << 20}, strings.NewReader("\"\n"))
	cases := []struct {
		name   string
		label  string
		body   io.Reader
		status int
		detail string
	}{
		{"ragged", "", strings.NewReader("a,b\n1,2\n3\n"), 400, "row 2 (line 3), column 2"},
		{"invalid utf-8", "", strings.NewReader("a,b\n1,\xff\xfe\n"), 400, "row 1 (line 2), column 2 \"b\": invalid UTF-8"},
		{"unterminated quote", "", strings.NewReader("a,b\n1,\"abc\n2,3\n"), 400, "unterminated quoted field"},
		{"nul byte", "", strings.NewReader("a,b\n1,x\x00y\n"), 400, "column 2 \"b\": NUL byte"},
		{"100 MB field", "", huge, 413, "row 1 (line 2), column 2 \"b\": field exceeds"},
		{"header only", "", strings.NewReader("a,b\n"), 400, "no data rows"},
		{"empty", "", strings.NewReader(""), 400, "empty"},
		{"duplicate columns", "", strings.NewReader("a,b,a\n1,2,3\n"), 400, "column 3 \"a\": duplicate column name"},
		{"missing label", "nope", strings.NewReader("a,b\n1,2\n"), 400, "label column \"nope\" does not exist"},
		{"bare quote", "", strings.NewReader("a,b\n1,x\"y\n"), 400, "row 1 (line 2), column 2 \"b\": bare quote"},
		{"not parquet", "", strings.NewReader("PAR1garbagePAR1"), 400, "Parquet"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Dataset(t, dp, fmt.Sprintf("bad-%d", i), tc.label)
			ct := "text/csv"
			if tc.name == "not parquet" {
				ct = "application/vnd.apache.parquet"
			}
			st, body := e.Raw(t, "POST", "/v1/datasets/"+d.ID+"/versions", dp.Token, tc.body, map[string]string{"Content-Type": ct})
			p := problemOf(t, body)
			if st != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("%d %q, want %d containing %q", st, p.Detail, tc.status, tc.detail)
			}
			nothingStored(t, e, dp, d.ID)
		})
	}
}

type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = r.b
	}
	r.n -= k
	return k, nil
}

// TestDatasetPIIPolicy: DATA-6 policies block and require-declaration.
func TestDatasetPIIPolicy(t *testing.T) {
	e := servertest.Start(t)
	w := e.NewWorld(t, "pii")
	dp := w.Actors[rampart.RoleDataProvider]
	csv := "id,contact\n1,alice@example.com\n2,+44 20 7946 0958\n3,none\n"
	d := e.Dataset(t, dp, "contacts", "")
	up := e.Upload(t, dp, d.ID, csv)
	if got := strings.Join(up.Version.PIIKinds, ","); got != "email,phone" {
		t.Fatalf("warn policy: kinds %q", got)
	}
	if err := dp.C.Do(context.Background(), "PUT", "/v1/dataset-policy", nil, httpapi.PolicyRequest{PII: "block", Label: "warn"}, nil); err != nil {
		t.Fatal(err)
	}
	st, body := e.Raw(t, "POST", "/v1/datasets/"+d.ID+"/versions", dp.Token, strings.NewReader(csv), map[string]string{"Content-Type": "text/csv"})
	if st != 400 || !strings.Contains(problemOf(t, body).Detail, "email, phone in column(s) \"contact\"") {
		t.Fatalf("block: %d %s", st, body)
	}
	if strings.Contains(string(body), "alice") {
		t.Fatalf("problem echoes the identifier: %s", body)
	}
	if err := dp.C.Do(context.Background(), "PUT", "/v1/dataset-policy", nil, httpapi.PolicyRequest{PII: "require-declaration", Label: "warn"}, nil); err != nil {
		t.Fatal(err)
	}
	path := "/v1/datasets/" + d.ID + "/versions"
	if st, body := e.Raw(t, "POST", path+"?declare_pii=email", dp.Token, strings.NewReader(csv), map[string]string{"Content-Type": "text/csv"}); st != 400 ||
		!strings.Contains(string(body), "undeclared direct identifiers (phone") {
		t.Fatalf("partial declaration: %d %s", st, body)
	}
	if st, body := e.Raw(t, "POST", path+"?declare_pii=email,phone", dp.Token, strings.NewReader(csv), map[string]string{"Content-Type": "text/csv"}); st != 201 {
		t.Fatalf("declared: %d %s", st, body)
	}
	var vs httpapi.List[dataset.Version]
	if err := dp.C.Do(context.Background(), "GET", path, nil, nil, &vs); err != nil || len(vs.Items) != 2 {
		t.Fatalf("versions: %v %d", err, len(vs.Items))
	}
}

// TestDatasetQuarantine is DATA-5's policy: with "quarantine", rows flagged
// by label screening are left out of training streams until the provider
// releases them; grantees never see which rows.
func TestDatasetQuarantine(t *testing.T) {
	e := servertest.Start(t)
	a := e.NewWorld(t, "q-prov")
	b := e.NewWorld(t, "q-dev")
	dp, md := a.Actors[rampart.RoleDataProvider], b.Actors[rampart.RoleModelDeveloper]
	raw, err := os.ReadFile("../dataset/testdata/breast_cancer.csv")
	if err != nil {
		t.Fatal(err)
	}
	// Flip every 10th label.
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(raw), "\r\n", "\n")), "\n")
	for i := 10; i < len(lines); i += 10 {
		if strings.HasSuffix(lines[i], ",malignant") {
			lines[i] = strings.TrimSuffix(lines[i], "malignant") + "benign"
		} else {
			lines[i] = strings.TrimSuffix(lines[i], "benign") + "malignant"
		}
	}
	csv := strings.Join(lines, "\n") + "\n"
	if err := dp.C.Do(context.Background(), "PUT", "/v1/dataset-policy", nil, httpapi.PolicyRequest{PII: "warn", Label: "quarantine"}, nil); err != nil {
		t.Fatal(err)
	}
	d := e.Dataset(t, dp, "bc", "diagnosis")
	up := e.Upload(t, dp, d.ID, csv)
	lf := up.Report.LabelFlip
	if lf == nil || lf.Flagged < 30 || !lf.Quarantined || !up.Version.Quarantined || len(lf.Suspects) != lf.Flagged {
		t.Fatalf("screening: %+v", lf)
	}
	hits := 0
	for _, s := range lf.Suspects {
		if s.Row%10 == 0 { // lines[i] is data row i
			hits++
		}
	}
	t.Logf("flagged %d rows, %d of them flipped (56 flipped)", lf.Flagged, hits)
	if float64(hits)/float64(lf.Flagged) < 0.8 {
		t.Errorf("precision %d/%d", hits, lf.Flagged)
	}
	e.Grant(t, dp, d.ID, httpapi.GrantRequest{To: md.Principal.ID, Purpose: "train"})
	svc := dataset.New(e.Server.DB, e.Server.Barrier, &recorder{}, nil, nil)
	count := func() (int, []int64) {
		u, err := svc.Open(as(md), d.ID, 1, authz.PurposeTrain)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		b, err := io.ReadAll(u)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "\n") - 1, u.Excluded
	}
	n, ex := count()
	if n != 569-lf.Flagged || len(ex) != lf.Flagged {
		t.Fatalf("quarantined stream: %d rows, %d excluded", n, len(ex))
	}
	// The grantee's report has counts, not rows.
	var rep dataset.Report
	if err := md.C.Do(context.Background(), "GET", "/v1/datasets/"+d.ID+"/versions/1/report", nil, nil, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.LabelFlip == nil || rep.LabelFlip.Flagged != lf.Flagged || len(rep.LabelFlip.Suspects) != 0 {
		t.Fatalf("grantee report: %+v", rep.LabelFlip)
	}
	// The grantee cannot release; the provider can.
	if st, _ := e.Raw(t, "POST", "/v1/datasets/"+d.ID+"/versions/1/release", md.Token, nil, nil); st != 404 {
		t.Errorf("grantee release: %d", st)
	}
	var v dataset.Version
	if err := dp.C.Do(context.Background(), "POST", "/v1/datasets/"+d.ID+"/versions/1/release", nil, nil, &v); err != nil || v.Quarantined {
		t.Fatalf("release: %v %+v", err, v)
	}
	if n, ex := count(); n != 569 || len(ex) != 0 {
		t.Fatalf("released stream: %d rows, %d excluded", n, len(ex))
	}
}

// TestDatasetAudit is AUDIT-3 for the dataset service: every action of a
// scripted scenario is recorded with tenant, principal, role, action,
// resource, decision, outcome, request ID and time, before and after, and
// no event carries a value of the data.
func TestDatasetAudit(t *testing.T) {
	e := servertest.Start(t)
	a := e.NewWorld(t, "aud-a")
	b := e.NewWorld(t, "aud-b")
	dp, md := a.Actors[rampart.RoleDataProvider], b.Actors[rampart.RoleModelDeveloper]
	rec := &recorder{}
	svc := dataset.New(e.Server.DB, e.Server.Barrier, rec, nil, nil)
	ctx := as(dp)
	secret := "canary-" + rampart.RandomToken(8) + "@example.com"
	d, err := svc.Create(ctx, dataset.CreateInput{Name: "aud", Label: "y"})
	if err != nil {
		t.Fatal(err)
	}
	csv := "x,contact,y\n1," + secret + ",a\n2,none,b\n3,none,a\n"
	if _, _, err := svc.Upload(ctx, d.ID, strings.NewReader(csv), dataset.UploadInput{Format: dataset.FormatCSV}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Upload(ctx, d.ID, strings.NewReader("x,contact\n1,2\n"), dataset.UploadInput{}); err == nil {
		t.Fatal("upload without the label column accepted")
	}
	g, err := svc.Grant(ctx, d.ID, dataset.GrantInput{To: md.Principal.ID, Purpose: authz.PurposeTrain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Report(as(md), d.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ReadRows(as(md), d.ID, 1); !isCode(err, rampart.CodeNotFound) {
		t.Fatalf("train grantee read rows: %v", err)
	}
	u, err := svc.Open(as(md), d.ID, 1, authz.PurposeTrain)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
	if _, err := svc.Revoke(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"dataset.create": false, "dataset.write": false, "dataset.grant": false, "dataset.read": false,
		"dataset.read_rows": false, "dataset.train": false, "dataset.delete": false}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ev := range rec.evs {
		if ev.TenantID == "" || ev.Principal == "" || ev.Role == "" || ev.Action == "" || ev.Resource == "" || ev.RequestID == "" ||
			ev.Time.IsZero() || ev.Outcome == "" || ev.Reason == "" {
			t.Errorf("incomplete event: %+v", ev)
		}
		if _, ok := want[ev.Action]; ok && ev.Outcome != "pending" {
			want[ev.Action] = true
		}
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), secret) || strings.Contains(string(b), "canary-") {
			t.Errorf("event carries data: %s", b)
		}
		if ev.Action == "dataset.read_rows" && (ev.Allow || ev.Outcome != "not_found") {
			t.Errorf("denied read not recorded as such: %+v", ev)
		}
	}
	for a, seen := range want {
		if !seen {
			t.Errorf("no outcome recorded for %s", a)
		}
	}
	t.Logf("%d events recorded", len(rec.evs))
}

// TestDatasetParquetUpload: a Parquet body through the HTTP API is
// profiled and stored as canonical CSV, and its digest is re-verified on
// download.
func TestDatasetParquetUpload(t *testing.T) {
	e := servertest.Start(t)
	w := e.NewWorld(t, "pq")
	dp := w.Actors[rampart.RoleDataProvider]
	d := e.Dataset(t, dp, "pq", "")
	type row struct {
		A int64   `parquet:"a"`
		B string  `parquet:"b"`
		C float64 `parquet:"c"`
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []row{{1, "x,y", 0.5}, {2, "z", 1.5}}); err != nil {
		t.Fatal(err)
	}
	st, body := e.Raw(t, "POST", "/v1/datasets/"+d.ID+"/versions", dp.Token, &buf, map[string]string{"Content-Type": "application/vnd.apache.parquet"})
	if st != 201 {
		t.Fatalf("parquet upload: %d %s", st, body)
	}
	var up httpapi.UploadResponse
	_ = json.Unmarshal(body, &up)
	if up.Version.Format != "parquet" || up.Version.Rows != 2 || up.Report.Columns[2].Type != dataset.TypeNumeric {
		t.Fatalf("parquet version: %+v", up.Version)
	}
	st, body = e.Raw(t, "GET", "/v1/datasets/"+d.ID+"/versions/1/data", dp.Token, nil, nil)
	if st != 200 || string(body) != "a,b,c\n1,\"x,y\",0.5\n2,z,1.5\n" {
		t.Fatalf("download: %d %q", st, body)
	}
}

// TestDatasetRecoverPending: an upload interrupted by a crash (version row
// reserved, data sealed, never finished) is discarded at the next start:
// no key, no blob, no row (DATA-4 "nothing half-stored", RES-2).
func TestDatasetRecoverPending(t *testing.T) {
	e := servertest.Start(t)
	w := e.NewWorld(t, "crash")
	dp := w.Actors[rampart.RoleDataProvider]
	d := e.Dataset(t, dp, "crash", "")
	ctx := context.Background()
	v, err := e.Server.DB.ReserveVersion(ctx, dataset.Version{DatasetID: d.ID, TenantID: d.TenantID, Status: dataset.StatusIngesting,
		Format: "csv", CreatedAt: time.Now(), CreatedBy: dp.Principal.ID})
	if err != nil {
		t.Fatal(err)
	}
	ref := barrier.Ref{Tenant: d.TenantID, Kind: "dataset", ID: d.ID, Version: v.Version}
	sealed, err := e.Server.Barrier.PutBytes(ctx, ref, []byte("a\n1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Raw(t, "GET", "/v1/datasets/"+d.ID+"/versions/1", dp.Token, nil, nil); st != 404 {
		t.Errorf("an ingesting version is visible: %d", st)
	}
	svc := dataset.New(e.Server.DB, e.Server.Barrier, &recorder{}, nil, nil)
	if err := svc.RecoverPending(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Server.Barrier.Open(ctx, ref, sealed.Digest); !isCode(err, rampart.CodeNotFound) {
		t.Errorf("interrupted upload still opens: %v", err)
	}
	if _, err := e.Server.DB.GetVersion(ctx, d.ID, 1); !isCode(err, rampart.CodeNotFound) {
		t.Errorf("interrupted version row kept: %v", err)
	}
	if pend, _ := e.Server.DB.PendingVersions(ctx); len(pend) != 0 {
		t.Errorf("pending versions left: %+v", pend)
	}
	// The next upload gets a new number.
	if up := e.Upload(t, dp, d.ID, "a\n1\n"); up.Version.Version != 2 {
		t.Errorf("next version %d", up.Version.Version)
	}
}
