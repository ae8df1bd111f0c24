package servertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// TinyXGBoostJSON is a valid XGBoost JSON model (one stump on two
// features, binary:logistic) for fixtures and tests: it scores
// sigmoid(-0.5) for x0 < 0.5 (or missing) and sigmoid(0.5) otherwise.
const TinyXGBoostJSON = `{"learner":{"attributes":{},"feature_names":[],"feature_types":[],` +
	`"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"1","size_leaf_vector":"0"},` +
	`"tree_info":[0],"trees":[{"base_weights":[0E0,-1E0,1E0],"categories":[],"categories_nodes":[],"categories_segments":[],` +
	`"categories_sizes":[],"default_left":[1,0,0],"id":0,"left_children":[1,-1,-1],"loss_changes":[1E0,0E0,0E0],` +
	`"parents":[2147483647,0,0],"right_children":[2,-1,-1],"split_conditions":[5E-1,-5E-1,5E-1],"split_indices":[0,0,0],` +
	`"split_type":[0,0,0],"sum_hessian":[2E0,1E0,1E0],"tree_param":{"num_deleted":"0","num_feature":"2","num_nodes":"3",` +
	`"size_leaf_vector":"0"}}]},"name":"gbtree"},"learner_model_param":{"base_score":"5E-1","boost_from_average":"1",` +
	`"num_class":"0","num_feature":"2","num_target":"1"},"objective":{"name":"binary:logistic","reg_loss_param":` +
	`{"scale_pos_weight":"1"}}},"version":[1,7,4]}`

// ImportModel imports model bytes as actor a under name and returns the
// new version.
func ImportModel(t testing.TB, a *Actor, name string, model []byte) rampart.ModelVersion {
	t.Helper()
	sum := sha256.Sum256(model)
	q := url.Values{"name": {name}, "digest": {"sha256:" + hex.EncodeToString(sum[:])}}
	v, err := a.C.ImportModel(context.Background(), q, model)
	if err != nil {
		t.Fatalf("import model %s: %v", name, err)
	}
	return v
}

// worldModel returns the fixture model of world w, importing it once.
func worldModel(t testing.TB, w *World) rampart.Model {
	t.Helper()
	md := w.Actors[rampart.RoleModelDeveloper]
	name := "fixture-" + w.Tenant.Name
	var page httpapi.List[rampart.Model]
	if err := md.C.Do(context.Background(), "GET", "/v1/models", url.Values{"name": {name}}, nil, &page); err != nil {
		t.Fatalf("list models: %v", err)
	}
	if len(page.Items) == 1 {
		return page.Items[0]
	}
	v := ImportModel(t, md, name, []byte(TinyXGBoostJSON))
	return rampart.Model{ID: v.ModelID, TenantID: v.TenantID, Name: name, LatestVersion: v.Version}
}

// registryFixtures create a model (imported as the world's model developer)
// and an export grant on it to a second model developer, so the
// cross-tenant sweep covers every registry route (TEN-1).
var registryFixtures = map[string]Fixture{
	"model_id": func(t testing.TB, e *Env, w *World) []string { return []string{worldModel(t, w).ID} },
	"version":  func(t testing.TB, e *Env, w *World) []string { return []string{"1"} },
	"export_grant_id": func(t testing.TB, e *Env, w *World) []string {
		m := worldModel(t, w)
		md2 := e.Actor(t, w.Tenant, fmt.Sprintf("%s-exporter", w.Tenant.Name), rampart.RoleModelDeveloper)
		var g rampart.ExportGrant
		if err := w.Actors[rampart.RoleModelDeveloper].C.Do(context.Background(), "POST", "/v1/models/"+m.ID+"/export-grants", nil,
			httpapi.ExportGrantRequest{PrincipalID: md2.Principal.ID}, &g); err != nil {
			t.Fatalf("export grant on %+v: %v", m, err)
		}
		return []string{g.ID}
	},
}

// The registry's fixtures join Fixtures when the package is initialised;
// a parameter another capability already covers (e.g. "version") keeps
// its fixture.
var _ = func() bool {
	for k, f := range registryFixtures {
		if _, ok := Fixtures[k]; !ok {
			Fixtures[k] = f
		}
	}
	return true
}()
