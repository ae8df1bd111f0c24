// Package authz makes every authorization decision in Rampart from one table
// of role × action × relationship (IAM-2, IAM-4, TEN-1). It is pure: no I/O,
// no clock; callers load the resource and describe how the principal relates
// to it, and Decide answers allow or deny with a reason.
package authz

import (
	"fmt"
	"slices"

	"github.com/rampart-mlaas/rampart"
)

// Action is something a principal asks to do.
type Action string

// The actions. Data-plane actions of later capabilities are declared here
// too, so that the table is complete and the matrix test covers them.
const (
	Whoami Action = "whoami"

	TenantCreate Action = "tenant.create"
	TenantList   Action = "tenant.list"
	TenantRead   Action = "tenant.read"

	PrincipalCreate  Action = "principal.create"
	PrincipalList    Action = "principal.list"
	PrincipalRead    Action = "principal.read"
	PrincipalDisable Action = "principal.disable"

	KeyCreate Action = "key.create"
	KeyList   Action = "key.list"
	KeyRevoke Action = "key.revoke"

	MetricsRead Action = "metrics.read"
	AuditRead   Action = "audit.read"
	// AuditProof: the log's public key, checkpoints and Merkle proofs, which
	// carry only hashes; every principal needs them to verify its own events.
	AuditProof Action = "audit.proof"
	// ComplianceRead: the deployment's compliance evaluation (aggregate
	// evidence, no tenant content).
	ComplianceRead Action = "compliance.read"

	DatasetCreate   Action = "dataset.create"
	DatasetRead     Action = "dataset.read" // metadata and audit report, never rows
	DatasetWrite    Action = "dataset.write"
	DatasetDelete   Action = "dataset.delete"
	DatasetGrant    Action = "dataset.grant"
	DatasetReadRows Action = "dataset.read_rows"
	DatasetTrain    Action = "dataset.train"
	DatasetEvaluate Action = "dataset.evaluate"

	JobCreate Action = "job.create"
	JobRead   Action = "job.read"
	JobCancel Action = "job.cancel"

	ModelRead    Action = "model.read"
	ModelExport  Action = "model.export"
	ModelPromote Action = "model.promote"
	ModelApprove Action = "model.approve"
	// ModelRegister: a finished training job registers its model (the
	// jobs service acts for the job's submitter).
	ModelRegister Action = "model.register"
	// ModelImport: import an external model (MODEL-2, SUP-3).
	ModelImport Action = "model.import"
	// ModelGrantExport: grant or revoke another principal's right to
	// export a model's weights (MODEL-4).
	ModelGrantExport Action = "model.grant_export"
	// ModelGates: set a model's own promotion gates (MODEL-5).
	ModelGates Action = "model.gates"

	// SigningKeyRead: read the platform's public model-signing key, for
	// offline verification of attestations (not tenant data).
	SigningKeyRead Action = "signing_key.read"

	EndpointCreate Action = "endpoint.create"
	EndpointRead   Action = "endpoint.read"
	EndpointUpdate Action = "endpoint.update"
	EndpointDelete Action = "endpoint.delete"
	EndpointGrant  Action = "endpoint.grant"
	Predict        Action = "endpoint.predict"

	AssessmentCreate Action = "assessment.create"
	AssessmentRead   Action = "assessment.read"
	// AssessmentThresholds: set the tenant's assessment thresholds that
	// gate promotion to production (MODEL-5).
	AssessmentThresholds Action = "assessment.thresholds"
)

// Relation is how the principal relates to the resource.
type Relation string

// The relations, from closest to farthest.
const (
	// Self: the resource is the principal itself or one of its own keys.
	Self Relation = "self"
	// Own: the resource belongs to the principal's tenant.
	Own Relation = "own"
	// Granted: another tenant's resource with a live grant to this principal
	// (or its tenant) for the purpose the action needs.
	Granted Relation = "granted"
	// Foreign: another tenant's resource and no grant.
	Foreign Relation = "foreign"
	// Platform: a resource of the platform itself (the tenant list, metrics).
	Platform Relation = "platform"
)

// Relations lists every relation in a stable order.
var Relations = []Relation{Self, Own, Granted, Foreign, Platform}

// Purpose is what a data grant allows (DATA-7).
type Purpose string

// Grant purposes.
const (
	PurposeTrain    Purpose = "train"
	PurposeEvaluate Purpose = "evaluate"
	PurposeRead     Purpose = "read"
	PurposeExport   Purpose = "export"
	PurposePredict  Purpose = "predict"
)

// Resource describes the object of an action as the caller found it.
type Resource struct {
	Kind     string // "tenant", "principal", "dataset", …
	ID       string
	TenantID string // owning tenant; "" for platform resources
	// PrincipalID is set when the resource is a principal or belongs to one
	// (an API key), so that Self can be recognised.
	PrincipalID string
	// Grants lists the purposes for which the caller holds a live grant.
	Grants []Purpose
}

// Decision is the answer to one request, with the reason recorded in the
// audit log.
type Decision struct {
	Allow    bool
	Relation Relation
	Reason   string
}

// rule lists the relations under which a role may perform an action.
type rule map[rampart.Role][]Relation

var (
	any3   = []Relation{Self, Own, Foreign}
	ownish = []Relation{Self, Own}
)

// table is THE authorization policy (IAM-2). Anything absent is denied.
// The operator administers tenants and principals but has no data-plane
// action at all: it cannot read tenant datasets, models or predictions (IAM-4).
// Operators may not mint keys for other principals (that would let them
// impersonate a tenant); they may revoke any key as a security response.
var table = map[Action]rule{
	Whoami: {rampart.RoleOperator: {Self}, rampart.RoleDataProvider: {Self}, rampart.RoleModelDeveloper: {Self},
		rampart.RoleServiceUser: {Self}, rampart.RoleAuditor: {Self}},

	TenantCreate: {rampart.RoleOperator: {Platform}},
	TenantList:   {rampart.RoleOperator: {Platform}},
	TenantRead: {rampart.RoleOperator: {Own, Foreign}, rampart.RoleDataProvider: {Own}, rampart.RoleModelDeveloper: {Own},
		rampart.RoleServiceUser: {Own}, rampart.RoleAuditor: {Own}},

	PrincipalCreate:  {rampart.RoleOperator: {Own, Foreign}},
	PrincipalList:    {rampart.RoleOperator: {Own, Foreign}, rampart.RoleAuditor: {Own}},
	PrincipalRead:    {rampart.RoleOperator: any3, rampart.RoleDataProvider: {Self}, rampart.RoleModelDeveloper: {Self}, rampart.RoleServiceUser: {Self}, rampart.RoleAuditor: ownish},
	PrincipalDisable: {rampart.RoleOperator: {Own, Foreign}},

	KeyCreate: {rampart.RoleOperator: {Self}, rampart.RoleDataProvider: {Self}, rampart.RoleModelDeveloper: {Self},
		rampart.RoleServiceUser: {Self}, rampart.RoleAuditor: {Self}},
	KeyList: {rampart.RoleOperator: any3, rampart.RoleDataProvider: {Self}, rampart.RoleModelDeveloper: {Self},
		rampart.RoleServiceUser: {Self}, rampart.RoleAuditor: ownish},
	KeyRevoke: {rampart.RoleOperator: any3, rampart.RoleDataProvider: {Self}, rampart.RoleModelDeveloper: {Self},
		rampart.RoleServiceUser: {Self}, rampart.RoleAuditor: {Self}},

	MetricsRead:    {rampart.RoleOperator: {Platform}},
	AuditRead:      {rampart.RoleOperator: {Own, Foreign, Platform}, rampart.RoleAuditor: {Own}, rampart.RoleDataProvider: {Own}},
	ComplianceRead: {rampart.RoleOperator: {Platform}, rampart.RoleAuditor: {Platform}},
	AuditProof: {rampart.RoleOperator: {Platform}, rampart.RoleDataProvider: {Platform}, rampart.RoleModelDeveloper: {Platform},
		rampart.RoleServiceUser: {Platform}, rampart.RoleAuditor: {Platform}},

	DatasetCreate:   {rampart.RoleDataProvider: {Own}},
	DatasetRead:     {rampart.RoleDataProvider: {Own}, rampart.RoleModelDeveloper: {Own, Granted}, rampart.RoleAuditor: {Own}},
	DatasetWrite:    {rampart.RoleDataProvider: {Own}},
	DatasetDelete:   {rampart.RoleDataProvider: {Own}},
	DatasetGrant:    {rampart.RoleDataProvider: {Own}},
	DatasetReadRows: {rampart.RoleDataProvider: {Own}, rampart.RoleModelDeveloper: {Granted}},
	DatasetTrain:    {rampart.RoleDataProvider: {Own}, rampart.RoleModelDeveloper: {Own, Granted}},
	DatasetEvaluate: {rampart.RoleDataProvider: {Own}, rampart.RoleModelDeveloper: {Own, Granted}},

	JobCreate: {rampart.RoleModelDeveloper: {Own}},
	JobRead:   {rampart.RoleModelDeveloper: {Own}, rampart.RoleAuditor: {Own}},
	JobCancel: {rampart.RoleModelDeveloper: {Own}},

	ModelRead: {rampart.RoleModelDeveloper: {Own}, rampart.RoleAuditor: {Own}},
	// MODEL-4: the role may export its tenant's models, and the registry
	// additionally requires a live export grant to the exporting principal
	// from another principal (registry.Export).
	ModelExport:      {rampart.RoleModelDeveloper: {Own}},
	ModelPromote:     {rampart.RoleModelDeveloper: {Own}},
	ModelApprove:     {rampart.RoleModelDeveloper: {Own}},
	ModelRegister:    {rampart.RoleModelDeveloper: {Own}},
	ModelImport:      {rampart.RoleModelDeveloper: {Own}},
	ModelGrantExport: {rampart.RoleModelDeveloper: {Own}},
	ModelGates:       {rampart.RoleModelDeveloper: {Own}},

	SigningKeyRead: {rampart.RoleOperator: {Platform}, rampart.RoleDataProvider: {Platform}, rampart.RoleModelDeveloper: {Platform},
		rampart.RoleServiceUser: {Platform}, rampart.RoleAuditor: {Platform}},

	EndpointCreate: {rampart.RoleModelDeveloper: {Own}},
	EndpointRead:   {rampart.RoleModelDeveloper: {Own}, rampart.RoleServiceUser: {Own, Granted}, rampart.RoleAuditor: {Own}},
	EndpointUpdate: {rampart.RoleModelDeveloper: {Own}},
	EndpointDelete: {rampart.RoleModelDeveloper: {Own}},
	EndpointGrant:  {rampart.RoleModelDeveloper: {Own}},
	Predict:        {rampart.RoleModelDeveloper: {Own}, rampart.RoleServiceUser: {Own, Granted}},

	AssessmentCreate:     {rampart.RoleModelDeveloper: {Own}},
	AssessmentRead:       {rampart.RoleModelDeveloper: {Own}, rampart.RoleAuditor: {Own}},
	AssessmentThresholds: {rampart.RoleModelDeveloper: {Own}},
}

// purposeOf is the grant purpose an action needs for the Granted relation.
var purposeOf = map[Action]Purpose{
	DatasetRead:     PurposeTrain, // any data grant lets the grantee see metadata; checked in Relate
	DatasetReadRows: PurposeRead,
	DatasetTrain:    PurposeTrain,
	DatasetEvaluate: PurposeEvaluate,
	EndpointRead:    PurposePredict,
	Predict:         PurposePredict,
}

// Actions returns every action in the table, sorted.
func Actions() []Action {
	out := make([]Action, 0, len(table))
	for a := range table {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Relate works out the relation of principal p to resource r for action a.
func Relate(p rampart.Principal, a Action, r Resource) Relation {
	switch {
	case r.TenantID == "":
		return Platform
	case r.PrincipalID != "" && r.PrincipalID == p.ID && r.TenantID == p.TenantID:
		return Self
	case r.TenantID == p.TenantID:
		return Own
	}
	need, ok := purposeOf[a]
	if ok {
		for _, g := range r.Grants {
			// Any data grant lets the grantee see the dataset's metadata,
			// never its rows: rows need an explicit read grant (DATA-7).
			if g == need || (a == DatasetRead && (g == PurposeTrain || g == PurposeEvaluate || g == PurposeRead)) {
				return Granted
			}
		}
	}
	return Foreign
}

// Allowed reports whether the table permits role to do a under rel. A Self
// resource is also Own: a rule that allows Own allows Self.
func Allowed(role rampart.Role, a Action, rel Relation) bool {
	rels := table[a][role]
	if slices.Contains(rels, rel) {
		return true
	}
	return rel == Self && slices.Contains(rels, Own)
}

// Decide is the one authorization decision (IAM-2): deny by default.
func Decide(p rampart.Principal, a Action, r Resource) Decision {
	if p.ID == "" || p.Disabled || !p.Role.Valid() {
		return Decision{Allow: false, Reason: "principal is not active"}
	}
	if _, ok := table[a]; !ok {
		return Decision{Allow: false, Reason: fmt.Sprintf("unknown action %q", a)}
	}
	rel := Relate(p, a, r)
	if Allowed(p.Role, a, rel) {
		// Concatenation, not fmt.Sprintf: the same text (plain string
		// types), without fmt's cost on every prediction (issue 7).
		return Decision{Allow: true, Relation: rel, Reason: "role " + string(p.Role) + " may " + string(a) + " (" + string(rel) + ")"}
	}
	return Decision{Allow: false, Relation: rel, Reason: fmt.Sprintf("role %s may not %s (%s)", p.Role, a, rel)}
}

// Err turns a denial into the error the caller sees. A denial on another
// tenant's object is a 404, exactly like a missing object, so IDs cannot be
// probed (TEN-1); a denial inside the caller's own tenant is a 403.
func (d Decision) Err(kind string) error {
	if d.Allow {
		return nil
	}
	if d.Relation == Foreign || d.Relation == Granted {
		return &rampart.Error{Code: rampart.CodeNotFound, Message: kind + " not found"}
	}
	return &rampart.Error{Code: rampart.CodeForbidden, Message: "not allowed: " + d.Reason}
}
