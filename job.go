package rampart

import "time"

// PrefixJob prefixes training job IDs.
const PrefixJob = "job"

// JobState is where a training job is in its life.
type JobState string

// Job states. Queued and running are live; the others are final.
const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Final reports whether s is a terminal state.
func (s JobState) Final() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

// JobDP is a job's differential-privacy target (TRAIN-2, TRAIN-3).
type JobDP struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta,omitempty"`
}

// JobLimits bound one training run (TEN-2, TRAIN-4). Zero means the
// platform default.
type JobLimits struct {
	MemoryMB    int `json:"memory_mb,omitempty"`
	CPUSeconds  int `json:"cpu_seconds,omitempty"`
	WallSeconds int `json:"wall_seconds,omitempty"`
}

// JobSpec is what the caller asked to train.
type JobSpec struct {
	DatasetID      string            `json:"dataset_id"`
	DatasetVersion int               `json:"dataset_version,omitempty"`
	Target         string            `json:"target"`
	Features       []string          `json:"features,omitempty"`
	Task           string            `json:"task,omitempty"`
	Algorithm      string            `json:"algorithm"`
	Params         map[string]string `json:"params,omitempty"`
	Seed           uint64            `json:"seed"`
	DP             *JobDP            `json:"dp,omitempty"`
	Limits         JobLimits         `json:"limits"`
	ModelName      string            `json:"model_name,omitempty"`
}

// JobProgress is the latest progress a running job reported.
type JobProgress struct {
	Stage string   `json:"stage,omitempty"`
	Step  int      `json:"step"`
	Total int      `json:"total"`
	Loss  *float64 `json:"loss,omitempty"`
}

// JobResult is what a successful run produced.
type JobResult struct {
	ArtifactDigest string             `json:"artifact_digest,omitempty"` // "sha256:…"
	ArtifactSize   int64              `json:"artifact_size,omitempty"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	ModelID        string             `json:"model_id,omitempty"`
	ModelVersion   int                `json:"model_version,omitempty"`
	// DPEpsilon is the ε the trained model actually guarantees.
	DPEpsilon float64 `json:"dp_epsilon,omitempty"`
	DPDelta   float64 `json:"dp_delta,omitempty"`
}

// Job is one training run on the platform.
type Job struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id"`
	CreatedBy string `json:"created_by"`
	// DatasetDigest is the content digest of the dataset version the job
	// trains on, fixed at admission (DATA-3).
	DatasetDigest string   `json:"dataset_digest,omitempty"`
	Spec          JobSpec  `json:"spec"`
	State         JobState `json:"state"`
	// Reason says why a job failed or was cancelled, in words safe to show.
	Reason      string      `json:"reason,omitempty"`
	Attempt     int         `json:"attempt"`
	MaxAttempts int         `json:"max_attempts"`
	Progress    JobProgress `json:"progress"`
	Result      *JobResult  `json:"result,omitempty"`
	// Isolation lists the isolation mechanisms the last attempt actually got
	// (TEN-2), e.g. "netns", "seccomp", "uid:…", "rlimit_as".
	Isolation []string `json:"isolation,omitempty"`
	// Grantee and EpsilonCharged are the privacy-budget ledger entry this
	// job made (TRAIN-3); EpsilonCharged is 0 for non-DP jobs.
	Grantee        string     `json:"grantee,omitempty"`
	EpsilonCharged float64    `json:"epsilon_charged,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
}

// JobEventType names the events a job streams.
type JobEventType string

// Job event types.
const (
	EventQueued    JobEventType = "queued"
	EventRunning   JobEventType = "running"
	EventProgress  JobEventType = "progress"
	EventMetrics   JobEventType = "metrics"
	EventRetrying  JobEventType = "retrying"
	EventSucceeded JobEventType = "succeeded"
	EventFailed    JobEventType = "failed"
	EventCancelled JobEventType = "cancelled"
)

// JobEvent is one entry in a job's event stream (Server-Sent Events).
type JobEvent struct {
	JobID   string             `json:"job_id"`
	Seq     int64              `json:"seq"`
	Time    time.Time          `json:"time"`
	Type    JobEventType       `json:"type"`
	Attempt int                `json:"attempt,omitempty"`
	Stage   string             `json:"stage,omitempty"`
	Step    int                `json:"step,omitempty"`
	Total   int                `json:"total,omitempty"`
	Loss    *float64           `json:"loss,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Message string             `json:"message,omitempty"`
}

// Final reports whether the event ends the job's stream.
func (e JobEvent) Final() bool {
	return e.Type == EventSucceeded || e.Type == EventFailed || e.Type == EventCancelled
}

// PrivacyCharge is one entry of the privacy-budget ledger (TRAIN-3): a DP
// job's ε charged to (dataset, grantee) at admission, checked against the
// grant's MaxEpsilon (0: the grant sets no budget) in the same transaction.
type PrivacyCharge struct {
	DatasetID  string
	Grantee    string
	MaxEpsilon float64
	Epsilon    float64
	Delta      float64
}
