package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/registry"
	"github.com/rampart-mlaas/rampart/servertest"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestRegistryHTTP drives the registry through the real server: a model
// larger than the JSON body limit imports through the streaming route, a
// pickle is refused with problem+json, roles are enforced as the authz
// table says (the operator reads no tenant model, IAM-4), the full
// promotion flow works, and the lineage event reaches the audit log.
func TestRegistryHTTP(t *testing.T) {
	e := servertest.Start(t)
	tn := e.Tenant(t, "reg-http")
	w := &servertest.World{Tenant: tn, Actors: map[rampart.Role]*servertest.Actor{}}
	for _, r := range servertest.TenantRoles {
		w.Actors[r] = e.Actor(t, tn, "reg-"+string(r), r)
	}
	md := w.Actors[rampart.RoleModelDeveloper]
	md2 := e.Actor(t, w.Tenant, "reg-http-md2", rampart.RoleModelDeveloper)
	ctx := context.Background()

	// 200 KB: whitespace after the JSON document is valid JSON.
	big := append([]byte(servertest.TinyXGBoostJSON), bytes.Repeat([]byte(" "), 200<<10)...)
	v := servertest.ImportModel(t, md, "big", big)
	if v.Size != int64(len(big)) || v.Digest != sha(big) {
		t.Fatalf("big import: %+v", v)
	}
	pickle := []byte("\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94.")
	_, err := md.C.ImportModel(ctx, url.Values{"name": {"evil"}, "digest": {sha(pickle)}}, pickle)
	var pe *httpapi.ProblemError
	if !errorsAs(err, &pe) || pe.Status != 400 || pe.Code != rampart.CodeInvalid || !strings.Contains(pe.Detail, "pickle") {
		t.Fatalf("pickle import: %v", err)
	}

	// Roles, own tenant: who may read, import, verify.
	base := "/v1/models/" + v.ModelID
	for _, c := range []struct {
		role          rampart.Role
		read, imprt   int
		verify, grant int
	}{
		{rampart.RoleModelDeveloper, 200, 201, 200, 0},
		{rampart.RoleAuditor, 200, 403, 200, 403},
		{rampart.RoleDataProvider, 403, 403, 403, 403},
		{rampart.RoleServiceUser, 403, 403, 403, 403},
	} {
		a := w.Actors[c.role]
		for _, r := range []struct {
			method, path string
			want         int
		}{
			{"GET", base, c.read}, {"GET", base + "/versions/1/card", c.read}, {"GET", base + "/versions/1/attestation", c.read},
			{"POST", base + "/versions/1/verify", c.verify},
		} {
			if st, body := e.Raw(t, r.method, r.path, a.Token, nil, nil); st != r.want {
				t.Errorf("%s %s %s: %d, want %d: %s", c.role, r.method, r.path, st, r.want, body)
			}
		}
		q := url.Values{"name": {"by-" + string(c.role)}, "digest": {sha([]byte(servertest.TinyXGBoostJSON))}}
		st, body := e.Raw(t, "POST", httpapi.ImportPath+"?"+q.Encode(), a.Token, strings.NewReader(servertest.TinyXGBoostJSON),
			map[string]string{"Content-Type": "application/octet-stream"})
		if st != c.imprt {
			t.Errorf("%s import: %d, want %d: %s", c.role, st, c.imprt, body)
		}
		if c.grant != 0 {
			b, _ := json.Marshal(httpapi.ExportGrantRequest{PrincipalID: md2.Principal.ID})
			if st, body := e.Raw(t, "POST", base+"/export-grants", a.Token, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"}); st != c.grant {
				t.Errorf("%s export grant: %d, want %d: %s", c.role, st, c.grant, body)
			}
		}
	}
	// IAM-4: the operator reads no tenant model (it is another tenant's: 404).
	for _, p := range []string{base, base + "/versions/1/card", base + "/versions/1/attestation"} {
		if st, _ := e.Raw(t, "GET", p, e.OpToken, nil, nil); st != 404 {
			t.Errorf("operator GET %s: %d", p, st)
		}
	}
	if st, _ := e.Raw(t, "POST", base+"/versions/1/export", e.OpToken, nil, nil); st != 404 {
		t.Errorf("operator export: %d", st)
	}

	// The promotion flow over HTTP.
	do := func(a *servertest.Actor, method, path string, in, out any) error {
		return a.C.Do(ctx, method, path, nil, in, out)
	}
	if err := do(md, "POST", base+"/versions/1/promote", httpapi.PromoteRequest{Stage: rampart.StageStaging}, nil); err != nil {
		t.Fatal(err)
	}
	if err := do(md, "POST", base+"/versions/1/approve", nil, nil); !isStatus(err, 403) {
		t.Fatalf("self-approval over HTTP: %v", err)
	}
	if err := do(md, "POST", base+"/versions/1/promote", httpapi.PromoteRequest{Stage: rampart.StageProduction}, nil); !isStatus(err, 403) {
		t.Fatalf("unapproved promotion over HTTP: %v", err)
	}
	if err := do(md2, "POST", base+"/versions/1/approve", nil, nil); err != nil {
		t.Fatal(err)
	}
	var pv rampart.ModelVersion
	if err := do(md, "POST", base+"/versions/1/promote", httpapi.PromoteRequest{Stage: rampart.StageProduction}, &pv); err != nil || pv.Stage != rampart.StageProduction {
		t.Fatalf("promotion: %+v %v", pv, err)
	}
	var vr registry.VerifyResult
	if err := do(md, "POST", base+"/versions/1/verify", nil, &vr); err != nil || !vr.Verified || vr.Digest != v.Digest {
		t.Fatalf("verify: %+v %v", vr, err)
	}
	// Export: grant from md to md2, then md2 downloads the exact bytes.
	if _, _, err := md2.C.ExportModel(ctx, v.ModelID, 1); !isStatus(err, 403) {
		t.Fatalf("export without grant: %v", err)
	}
	if err := do(md, "POST", base+"/export-grants", httpapi.ExportGrantRequest{PrincipalID: md2.Principal.ID}, nil); err != nil {
		t.Fatal(err)
	}
	got, digest, err := md2.C.ExportModel(ctx, v.ModelID, 1)
	if err != nil || !bytes.Equal(got, big) || digest != v.Digest {
		t.Fatalf("export: %d bytes, %s, %v", len(got), digest, err)
	}

	// AUDIT-5: the registration's lineage event is in the Merkle log.
	var evs httpapi.List[map[string]any]
	aud := w.Actors[rampart.RoleAuditor]
	if err := aud.C.Do(ctx, "GET", "/v1/audit/events", url.Values{"action": {"model.version.create"}}, nil, &evs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range evs.Items {
		ev, _ := it["event"].(map[string]any)
		if fmt.Sprint(ev["Digest"]) == v.Digest && strings.Contains(fmt.Sprint(ev["Resource"]), v.ModelID) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no lineage event for %s in %v", v.Digest, evs.Items)
	}
}

func errorsAs(err error, pe **httpapi.ProblemError) bool {
	p, ok := err.(*httpapi.ProblemError)
	if ok {
		*pe = p
	}
	return ok
}

func isStatus(err error, status int) bool {
	p, ok := err.(*httpapi.ProblemError)
	return ok && p.Status == status
}
