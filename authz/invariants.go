package authz

import (
	"fmt"
	"strings"

	"github.com/rampart-mlaas/rampart"
)

// dataPlane reports actions on tenant data, models or predictions.
func dataPlane(a Action) bool {
	for _, p := range []string{"dataset.", "job.", "model.", "endpoint.", "assessment."} {
		if strings.HasPrefix(string(a), p) {
			return true
		}
	}
	return false
}

// CheckInvariants walks every role × action × relation and returns how many
// decisions it checked and which violate the properties the policy must
// keep: no data-plane action for the operator (IAM-4) and no foreign-object
// access for tenant roles (TEN-1). `rampart compliance` reports it.
func CheckInvariants() (int, []string) {
	n := 0
	var bad []string
	for _, role := range rampart.Roles {
		for _, a := range Actions() {
			for _, rel := range Relations {
				n++
				if !Allowed(role, a, rel) {
					continue
				}
				if role == rampart.RoleOperator && dataPlane(a) {
					bad = append(bad, fmt.Sprintf("operator may %s (%s)", a, rel))
				}
				if role != rampart.RoleOperator && rel == Foreign {
					bad = append(bad, fmt.Sprintf("%s may %s on a foreign object", role, a))
				}
			}
		}
	}
	return n, bad
}
