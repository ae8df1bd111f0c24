package registry

import (
	"context"
	"testing"
)

// BenchmarkLoad measures one verified load (binding MAC, DSSE signature,
// statement, decryption with the SHA-256 check, decoding) of a small
// trained model: the cost serving pays once per (re)load (MODEL-1).
func BenchmarkLoad(b *testing.B) {
	e := newEnv(b)
	v := e.register("bench")
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.svc.Load(ctx, e.tenant.ID, v.ModelID, v.Version); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseXGBoost measures decoding a 12-tree XGBoost JSON model.
func BenchmarkParseXGBoost(b *testing.B) {
	data := mustRead("testdata/xgboost/binary_logistic.json")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseXGBoostJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
