package server

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/jobs"
	"github.com/rampart-mlaas/rampart/registry"
)

// openJobs assembles the training-job service (issue 6): the confined
// executor (TEN-2), River's queue in the metadata database with one worker
// slot per core (TRAIN-5), the dataset service for authorized, verified
// reads (DATA-3, DATA-7) and the registry for signed registration. Its
// workers stop (and running attempts are retried at the next start) when
// the server closes.
func openJobs(ctx context.Context, s *Server) error {
	ex, err := executor.New(executor.Config{Log: s.log})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, ex.Close)
	// A second dataset service over the same store and barrier: Open is
	// stateless, so this is the same authorization, digest check and use
	// record as the routes' instance.
	ds := dataset.New(s.DB, s.Barrier, s.Audit, s.log, nil)
	reg, err := newRegistry(s)
	if err != nil {
		return err
	}
	svc, err := jobs.New(jobs.Config{Slots: s.cfg.JobSlots}, jobs.Deps{Store: s.DB, DB: s.DB.SQL(), Datasets: datasetsAdapter{ds},
		Registrar: registrarAdapter{reg}, Executor: ex, Audit: s.Audit, Log: s.log})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	s.closers = append(s.closers, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return svc.Stop(sctx)
	})
	s.API.RouteJobs(svc)
	return nil
}

// datasetsAdapter gives jobs the dataset service's training use.
type datasetsAdapter struct{ ds *dataset.Service }

func (a datasetsAdapter) OpenForTraining(ctx context.Context, id string, version int, mode jobs.OpenMode) (*jobs.TrainingData, error) {
	// Version 0 (latest) is resolved inside the use's own authorization and
	// audit event (no separate dataset read with two records of its own).
	// At the job's start the data is decrypted once and verified as it
	// streams (DATA-3, see jobs.Datasets: the worker gets the end of its
	// data only after the digest matched); at admission it is verified
	// before it is returned, so a tampered version is refused at submit.
	// The use's outcome record is written while the data is read: the
	// stream's EOF and Close wait for it and fail if it failed (jobs only
	// act on a clean EOF or Close, see jobs.TrainingData).
	u, err := a.ds.OpenUse(ctx, id, version, authz.PurposeTrain,
		dataset.UseOptions{Latest: true, Streamed: mode == jobs.OpenTrain, DeferOutcome: true})
	if err != nil {
		return nil, err
	}
	td := &jobs.TrainingData{DatasetID: u.Dataset.ID, DatasetName: u.Dataset.Name, TenantID: u.Dataset.TenantID,
		Version: u.Version.Version, Digest: u.Version.Digest, Grantee: "owner:" + u.Dataset.TenantID}
	if u.Grant != nil {
		td.GrantID = u.Grant.ID
		td.Grantee = "tenant:" + u.Grant.GranteeTenantID
		if u.Grant.GranteePrincipalID != "" {
			td.Grantee = "principal:" + u.Grant.GranteePrincipalID
		}
	}
	td.RequireDP = u.Terms.RequireDP
	if u.Terms.MaxEpsilon != nil {
		td.MaxEpsilon = *u.Terms.MaxEpsilon
		if td.MaxEpsilon <= 0 {
			td.MaxEpsilon = 1e-300 // a zero budget admits no DP job at all
		}
	}
	// The stream's header gives the columns the job may name.
	br := bufio.NewReaderSize(u, 64<<10)
	line, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		u.Close()
		return nil, fmt.Errorf("dataset %s: read header: %w", id, err)
	}
	head := bytes.Clone(line)
	cols, err := csv.NewReader(bytes.NewReader(head)).Read()
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("dataset %s: header: %w", id, err)
	}
	td.Columns = cols
	td.ReadCloser = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), br), u}
	return td, nil
}

// registrarAdapter registers trained models with the registry: signed
// attestation, card and BOM (TRAIN-1, MODEL-1, MODEL-3).
type registrarAdapter struct{ reg *registry.Service }

// PreSeal starts sealing a job's artifact when the worker sends it
// (jobs.PreSealer); RegisterTrained takes it over.
func (a registrarAdapter) PreSeal(ctx context.Context, artifact []byte) jobs.Presealed {
	c, _ := rampart.CallerFrom(ctx)
	if ps := a.reg.PreSeal(ctx, c.Principal, artifact); ps != nil {
		return ps
	}
	return nil
}

func (a registrarAdapter) RegisterTrained(ctx context.Context, t jobs.Trained) (string, int, error) {
	c, _ := rampart.CallerFrom(ctx)
	in := registry.TrainedInput{Owner: c.Principal, RequestID: c.RequestID, ModelName: t.Job.Spec.ModelName,
		Artifact: t.Artifact, Metrics: t.Metrics, JobID: t.Job.ID, StartedAt: t.StartedAt, FinishedAt: t.FinishedAt,
		Spec: registry.TrainSpec{Algorithm: t.Job.Spec.Algorithm, Task: t.Job.Spec.Task, Target: t.Job.Spec.Target,
			Features: t.Job.Spec.Features, Params: t.Job.Spec.Params, Seed: t.Job.Spec.Seed},
		Datasets: []registry.DatasetInput{{ID: t.Job.Spec.DatasetID, Name: t.DatasetName, Version: t.DatasetVersion,
			Digest: t.DatasetDigest, GrantID: t.GrantID}}}
	if in.ModelName == "" {
		in.ModelName = t.DatasetName + "-" + t.Job.Spec.Algorithm
	}
	// The DP guarantee comes from the artifact itself: RegisterTrained
	// parses it (the one parse of the artifact in the parent) and takes
	// in.DP from the model when it is nil.
	if t.Then != nil {
		in.Then = func(tx *sql.Tx, v rampart.ModelVersion) error { return t.Then(tx, v.ModelID, v.Version) }
	}
	if ps, ok := t.Presealed.(*registry.Presealed); ok {
		in.Presealed = ps // RegisterTrained takes it over (stored or shredded)
	} else if t.Presealed != nil {
		t.Presealed.Discard(ctx)
	}
	mv, err := a.reg.RegisterTrained(ctx, in)
	if err != nil {
		return "", 0, err
	}
	return mv.ModelID, mv.Version, nil
}
