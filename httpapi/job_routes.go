package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/jobs"
)

// CreateJobRequest submits a training job (TRAIN-3, TRAIN-4, TEN-2).
type CreateJobRequest struct {
	DatasetID      string            `json:"dataset_id" maxLength:"80" doc:"Dataset to train on (owned, or granted for training)."`
	DatasetVersion int               `json:"dataset_version,omitempty" minimum:"0" doc:"Version; 0 or absent = latest."`
	Target         string            `json:"target" minLength:"1" maxLength:"256" doc:"Target column."`
	Features       []string          `json:"features,omitempty" maxItems:"10000" doc:"Feature columns; default: every column but the target."`
	Task           string            `json:"task,omitempty" enum:"classification,regression" doc:"Default: regression for linreg, classification otherwise."`
	Algorithm      string            `json:"algorithm" enum:"logreg,linreg,gbdt,mlp"`
	Params         map[string]string `json:"params,omitempty" doc:"Hyper-parameters (scikit-learn / XGBoost names); unknown names are refused."`
	Seed           uint64            `json:"seed,omitempty" doc:"Same data, parameters and seed give the same model digest (TRAIN-6)."`
	DP             *rampart.JobDP    `json:"dp,omitempty" doc:"Differential privacy target (logreg, mlp): epsilon in (0, 100], delta < 1/N (0 = 1/(10N))."`
	Limits         rampart.JobLimits `json:"limits,omitempty" doc:"Resource limits; 0 = default (2048 MiB, 3600 s CPU, 3600 s wall)."`
	ModelName      string            `json:"model_name,omitempty" maxLength:"63" doc:"Model to register the result under; default: the dataset's name."`
}

type jobPath struct {
	JobID string `path:"job_id" maxLength:"80"`
}

type jobEventsInput struct {
	JobID       string `path:"job_id" maxLength:"80"`
	After       int64  `query:"after" minimum:"0" doc:"Only events with a sequence number above this (resume)."`
	LastEventID string `header:"Last-Event-ID" maxLength:"20" doc:"Standard SSE resume header; same as after."`
}

// RouteJobs adds the training-job routes.
func (a *API) RouteJobs(s *jobs.Service) {
	log := a.deps.Log
	huma.Register(a.huma, created(op("create-job", http.MethodPost, "/v1/jobs", "Submit a training job", "jobs")),
		wrap(log, func(ctx context.Context, in *struct{ Body CreateJobRequest }) (*struct{ Body rampart.Job }, error) {
			b := in.Body
			j, err := s.Submit(ctx, rampart.JobSpec{DatasetID: b.DatasetID, DatasetVersion: b.DatasetVersion, Target: b.Target,
				Features: b.Features, Task: b.Task, Algorithm: b.Algorithm, Params: b.Params, Seed: b.Seed, DP: b.DP,
				Limits: b.Limits, ModelName: b.ModelName})
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Job }{Body: j}, nil
		}))
	huma.Register(a.huma, op("list-jobs", http.MethodGet, "/v1/jobs", "List the tenant's jobs", "jobs"),
		wrap(log, func(ctx context.Context, in *PageQuery) (*listOut[rampart.Job], error) {
			js, next, err := s.List(ctx, in.page())
			if err != nil {
				return nil, err
			}
			return newList(js, next), nil
		}))
	huma.Register(a.huma, op("get-job", http.MethodGet, "/v1/jobs/{job_id}", "Show a job", "jobs"),
		wrap(log, func(ctx context.Context, in *jobPath) (*struct{ Body rampart.Job }, error) {
			j, err := s.Get(ctx, in.JobID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Job }{Body: j}, nil
		}))
	huma.Register(a.huma, op("cancel-job", http.MethodPost, "/v1/jobs/{job_id}/cancel", "Cancel a queued or running job", "jobs"),
		wrap(log, func(ctx context.Context, in *jobPath) (*struct{ Body rampart.Job }, error) {
			j, err := s.Cancel(ctx, in.JobID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Job }{Body: j}, nil
		}))

	ev := op("job-events", http.MethodGet, "/v1/jobs/{job_id}/events", "Stream a job's events (Server-Sent Events)", "jobs")
	ev.Description = "Replays the job's stored events, then streams new ones until the job ends. Each SSE message has " +
		"`id` = the event's sequence number, `event` = its type (queued, running, progress, retrying, succeeded, failed, " +
		"cancelled) and `data` = the JobEvent as JSON."
	ev.Responses = map[string]*huma.Response{"200": {Description: "text/event-stream of JobEvent",
		Content: map[string]*huma.MediaType{"text/event-stream": {Schema: a.huma.OpenAPI().Components.Schemas.Schema(
			reflect.TypeOf(rampart.JobEvent{}), true, "JobEvent")}}}}
	huma.Register(a.huma, ev, wrap(log, func(ctx context.Context, in *jobEventsInput) (*huma.StreamResponse, error) {
		after := in.After
		if in.LastEventID != "" {
			n, err := strconv.ParseInt(in.LastEventID, 10, 64)
			if err != nil || n < 0 {
				return nil, rampart.Invalid("Last-Event-ID", "Last-Event-ID must be an event sequence number")
			}
			after = max(after, n)
		}
		// The stream lives as long as the client listens, not as long as
		// the handler's first return.
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		ch, err := s.Events(sctx, in.JobID, after)
		if err != nil {
			cancel()
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			defer cancel()
			streamEvents(hc, ch, cancel)
		}}, nil
	}))
}

// streamEvents writes events as SSE, with a keep-alive comment every 15 s
// and a per-write deadline (the server's WriteTimeout would otherwise end
// long streams).
func streamEvents(hc huma.Context, ch <-chan rampart.JobEvent, cancel func()) {
	hc.SetHeader("Content-Type", "text/event-stream")
	hc.SetHeader("Cache-Control", "no-store")
	hc.SetHeader("X-Accel-Buffering", "no")
	hc.SetStatus(http.StatusOK)
	w := hc.BodyWriter()
	var rc *http.ResponseController
	if rw, ok := w.(http.ResponseWriter); ok {
		rc = http.NewResponseController(rw)
	}
	flush := func() bool {
		if rc != nil {
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := rc.Flush(); err != nil {
				return false
			}
		} else if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		return true
	}
	if _, err := w.Write([]byte(": rampart job events\n\n")); err != nil || !flush() {
		cancel()
		return
	}
	done := hc.Context().Done()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, b); err != nil || !flush() {
				cancel()
				return
			}
		case <-tick.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil || !flush() {
				cancel()
				return
			}
		case <-done:
			cancel()
			return
		}
	}
}
