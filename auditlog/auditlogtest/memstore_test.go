package auditlogtest_test

import (
	"testing"

	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/auditlogtest"
)

func TestMemStoreConformance(t *testing.T) {
	auditlogtest.Run(t, func(*testing.T) auditlog.Store { return auditlogtest.NewMemStore() })
}
