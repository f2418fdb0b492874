package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// WorkerInfo describes a worker process for its heartbeat row.
type WorkerInfo struct {
	ID          string // also its River client id
	Hostname    string
	PID         int
	Version     string
	Concurrency int
}

// Heartbeat records that the worker is alive (creating its row the first time).
func (s *Store) Heartbeat(ctx context.Context, w WorkerInfo) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO workers (id, hostname, pid, version, concurrency)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL`,
		w.ID, w.Hostname, w.PID, w.Version, w.Concurrency)
	if err != nil {
		return dbErr("heartbeat", err)
	}
	return nil
}

// StopWorker records a clean stop.
func (s *Store) StopWorker(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE workers SET stopped_at = now() WHERE id = $1`, id); err != nil {
		return dbErr("stop worker", err)
	}
	return nil
}

// ReapedJob is a River job made available again because its worker died.
type ReapedJob struct {
	ID       int64
	Kind     string
	Args     json.RawMessage
	WorkerID string
}

// ReapStaleJobs makes running River jobs available again when the worker that was
// running them has not sent a heartbeat for staleAfter (or stopped, or never existed).
//
// Why SQL on River's table: River rescues a running job only after RescueStuckJobsAfter,
// which must exceed the longest job (a build may take 20 minutes or more), so a killed
// worker's build would wait that long. River has no notion of a dead client; our
// heartbeat table has. The update does to the row what River's own rescuer does (state
// back to available, scheduled now), keeping the attempt count, so River's retry limit
// still applies. A job is only touched once it has run longer than staleAfter, so a
// worker that just started and has not yet beaten is never robbed.
func (s *Store) ReapStaleJobs(ctx context.Context, staleAfter time.Duration) ([]ReapedJob, error) {
	rows, err := s.pool.Query(ctx, `UPDATE river_job j SET state = 'available', scheduled_at = now()
		WHERE j.state = 'running'
		  AND j.attempted_at < now() - $1::interval
		  AND NOT EXISTS (SELECT 1 FROM workers w
			WHERE w.id = j.attempted_by[array_upper(j.attempted_by, 1)]
			  AND w.stopped_at IS NULL AND w.heartbeat_at > now() - $1::interval)
		RETURNING j.id, j.kind, j.args, coalesce(j.attempted_by[array_upper(j.attempted_by, 1)], '')`, staleAfter)
	if err != nil {
		return nil, dbErr("reap stale jobs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReapedJob, error) {
		var j ReapedJob
		err := r.Scan(&j.ID, &j.Kind, &j.Args, &j.WorkerID)
		return j, err
	})
	if err != nil {
		return nil, dbErr("reap stale jobs", err)
	}
	return out, nil
}

// RetentionResult says what a retention pass removed.
type RetentionResult struct {
	LogsRemoved   int // builds whose events were deleted
	PinsRemoved   int
	WorkersPurged int
}

// RemoveOldLogs deletes the event streams (the logs) of builds that finished before
// olderThan ago, up to batch builds per call, and old pins and worker rows. Build rows,
// stage timings and artifacts stay.
func (s *Store) RemoveOldLogs(ctx context.Context, olderThan time.Duration, batch int) (RetentionResult, error) {
	var res RetentionResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE builds SET logs_removed_at = now()
			WHERE id IN (SELECT id FROM builds WHERE finished_at < now() - $1::interval
				AND logs_removed_at IS NULL ORDER BY finished_at LIMIT $2)
			RETURNING id`, olderThan, batch)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
		if err != nil {
			return err
		}
		res.LogsRemoved = len(ids)
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM build_events WHERE build_id = ANY($1::uuid[])`, ids); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM build_pins WHERE resolved_at < now() - interval '7 days'`)
		if err != nil {
			return err
		}
		res.PinsRemoved = int(tag.RowsAffected())
		if _, err := tx.Exec(ctx, `DELETE FROM build_scopes WHERE last_used_at < now() - interval '30 days'`); err != nil {
			return err
		}
		tag, err = tx.Exec(ctx, `DELETE FROM workers WHERE heartbeat_at < now() - interval '7 days'`)
		if err != nil {
			return err
		}
		res.WorkersPurged = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return res, dbErr("retention", err)
	}
	return res, nil
}

// RiverLeader is the client id of River's elected leader among the worker processes ("":
// none elected now). River schedules its periodic jobs from the leader alone.
func (s *Store) RiverLeader(ctx context.Context) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT leader_id FROM river_leader WHERE expires_at > now()`).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", dbErr("river leader", err)
	}
	return id, nil
}
