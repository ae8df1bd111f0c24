package dataset

import (
	"context"
	"fmt"
	"strconv"

	"github.com/rampart-mlaas/rampart/authz"
)

// Deletion is what a delete did: the versions shredded and the derived
// objects (models, jobs) now flagged as trained on deleted data (DATA-8).
type Deletion struct {
	DatasetID string    `json:"dataset_id"`
	Versions  []int     `json:"versions_shredded"`
	Affected  []Lineage `json:"affected"`
}

// DeleteVersion crypto-shreds one version (DATA-8): its data keys are
// destroyed first, so no copy of the ciphertext, backups included, can be
// decrypted again; then the blobs go, the version is marked deleted, the
// derived objects are flagged and a deletion record naming them is written
// to the audit log.
func (s *Service) DeleteVersion(ctx context.Context, id string, version int) (Deletion, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetDelete, map[string]string{"version": strconv.Itoa(version)})
	if err != nil {
		return Deletion{}, err
	}
	ver, err := s.loadVersion(ctx, d, version)
	if err == nil && ver.Status != StatusReady {
		err = missing("dataset version")
	}
	if err != nil {
		return Deletion{}, ev.finish(ctx, err)
	}
	del := Deletion{DatasetID: d.ID}
	if err := s.shredVersion(ctx, ver, &del); err != nil {
		return Deletion{}, ev.finish(ctx, err)
	}
	ev.ev.Digest = "sha256:" + ver.Digest
	ev.ev.Details["affected"] = lineageSummary(del.Affected)
	ev.ev.Details["affected_count"] = strconv.Itoa(len(del.Affected))
	return del, ev.finish(ctx, nil)
}

func (s *Service) shredVersion(ctx context.Context, v Version, del *Deletion) error {
	if err := s.sealer.Shred(ctx, dataRef(v)); err != nil {
		return fmt.Errorf("dataset: shred: %w", err)
	}
	if err := s.sealer.Shred(ctx, reportRef(v)); err != nil {
		return fmt.Errorf("dataset: shred report: %w", err)
	}
	now := s.now().UTC()
	if err := s.store.MarkVersionDeleted(ctx, v.DatasetID, v.Version, now); err != nil {
		return err
	}
	if err := s.store.MarkLineageDeleted(ctx, v.DatasetID, v.Version, now); err != nil {
		return err
	}
	del.Versions = append(del.Versions, v.Version)
	ls, err := s.store.ListLineage(ctx, v.DatasetID)
	if err != nil {
		return err
	}
	for _, l := range ls {
		if l.Version == v.Version {
			del.Affected = append(del.Affected, l)
		}
	}
	return nil
}

// Delete crypto-shreds every version of a dataset, revokes its grants and
// removes it (DATA-8); its lineage stays, flagged, for the models it fed.
func (s *Service) Delete(ctx context.Context, id string) (Deletion, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetDelete, map[string]string{})
	if err != nil {
		return Deletion{}, err
	}
	del := Deletion{DatasetID: d.ID}
	cursor := ""
	var vs []Version
	for {
		page, next, err := s.store.ListVersions(ctx, d.ID, pageOf(cursor))
		if err != nil {
			return Deletion{}, ev.finish(ctx, err)
		}
		vs = append(vs, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	for _, v := range vs {
		if v.Status == StatusDeleted {
			continue
		}
		if err := s.shredVersion(ctx, v, &del); err != nil {
			return Deletion{}, ev.finish(ctx, err)
		}
	}
	now := s.now().UTC()
	if err := s.store.RevokeDatasetGrants(ctx, d.ID, now); err != nil {
		return Deletion{}, ev.finish(ctx, err)
	}
	if err := s.store.MarkDatasetDeleted(ctx, d.ID, now); err != nil {
		return Deletion{}, ev.finish(ctx, err)
	}
	ev.ev.Details["versions"] = strconv.Itoa(len(del.Versions))
	ev.ev.Details["affected"] = lineageSummary(del.Affected)
	ev.ev.Details["affected_count"] = strconv.Itoa(len(del.Affected))
	return del, ev.finish(ctx, nil)
}
