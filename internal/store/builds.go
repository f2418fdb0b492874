package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Build statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Sentinel errors of the build tables.
var (
	// ErrBuildNotFound: no build with that id.
	ErrBuildNotFound = errors.New("build not found")
	// ErrNotOwner: the build is no longer run by this worker (it was presumed dead and
	// the build was handed to another, or the build was cancelled); the write was refused.
	ErrNotOwner = errors.New("build is not run by this worker any more")
	// ErrBuildFinished: the build already ended (succeeded, failed or cancelled).
	ErrBuildFinished = errors.New("build already finished")
	// ErrClientLimit: the client queued as many builds as NewBuild.ClientLimit allows.
	ErrClientLimit = errors.New("client's build limit reached")
)

// ClientLimitError says how many builds the client queued in the window (Count, the
// limit) and when the window frees a place (RetryAfter, by the database's clock, as the
// window is).
type ClientLimitError struct {
	Count      int
	RetryAfter time.Duration
}

func (e *ClientLimitError) Error() string {
	return fmt.Sprintf("%v: %d builds queued in the window", ErrClientLimit, e.Count)
}

func (e *ClientLimitError) Unwrap() error { return ErrClientLimit }

// EventsChannel is the PostgreSQL notification channel on which a build's id is
// announced whenever it has new events or a new status.
const EventsChannel = "debate_build_events"

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidBuildID reports whether id has the form of a build id (a lowercase UUID).
func ValidBuildID(id string) bool { return uuidRe.MatchString(id) }

// Build is one row of the builds table.
type Build struct {
	ID            string
	Status        string
	Name          string
	Recipe        json.RawMessage
	RecipeHash    string
	ScopeHash     string
	SubmissionKey string
	BuildKey      string // "" until resolved
	CacheHitOf    string // "" unless a worker found an identical finished build
	Client        string
	RiverJobID    int64
	WorkerID      string
	Attempt       int
	Error         json.RawMessage // the builder's ErrorInfo when failed or cancelled
	CreatedAt     time.Time
	StartedAt     *time.Time
	FinishedAt    *time.Time
	CancelAt      *time.Time // cancel_requested_at
	LogsRemovedAt *time.Time
}

// Finished reports whether the build has ended.
func (b *Build) Finished() bool {
	return b.Status == StatusSucceeded || b.Status == StatusFailed || b.Status == StatusCancelled
}

const buildColumns = `id::text, status, name, recipe, recipe_hash, scope_hash, submission_key,
	coalesce(build_key, ''), coalesce(cache_hit_of::text, ''), client, coalesce(river_job_id, 0),
	coalesce(worker_id, ''), attempt, error, created_at, started_at, finished_at,
	cancel_requested_at, logs_removed_at`

func scanBuild(row pgx.Row) (*Build, error) {
	var b Build
	var errJSON []byte
	err := row.Scan(&b.ID, &b.Status, &b.Name, &b.Recipe, &b.RecipeHash, &b.ScopeHash, &b.SubmissionKey,
		&b.BuildKey, &b.CacheHitOf, &b.Client, &b.RiverJobID, &b.WorkerID, &b.Attempt, &errJSON,
		&b.CreatedAt, &b.StartedAt, &b.FinishedAt, &b.CancelAt, &b.LogsRemovedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrBuildNotFound
	}
	if err != nil {
		return nil, dbErr("read build", err)
	}
	if errJSON != nil {
		b.Error = errJSON
	}
	return &b, nil
}

// dbErr wraps a database error; a connection problem also matches ErrUnavailable.
func dbErr(what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, ErrBuildNotFound) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return fmt.Errorf("store: %s: %w: %w", what, ErrUnavailable, err)
}

// Artifact is a file a succeeded build published.
type Artifact struct {
	Name        string `json:"name"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
}

// Stage is one pipeline stage's timing.
type Stage struct {
	Name      string    `json:"stage"`
	Position  int       `json:"position"`
	StartedAt time.Time `json:"started_at"`
	Seconds   *float64  `json:"seconds"` // nil while running (or when the attempt died in it)
}

// Event is one stored event of a build's stream.
type Event struct {
	Seq  int
	Type string
	Data json.RawMessage
}

// NewBuild is what a submission stores.
type NewBuild struct {
	Name          string
	Recipe        json.RawMessage
	RecipeHash    string
	ScopeHash     string
	SubmissionKey string
	Client        string
	// ClientLimit, when above 0, is how many builds Client may have queued in the last
	// ClientWindow (by the database's clock), this one included; InsertBuild refuses
	// with a *ClientLimitError beyond it. Joining a build in flight is never limited.
	ClientLimit  int
	ClientWindow time.Duration
}

// Enqueue inserts the build's job into the queue inside the transaction that inserts
// the build, and returns the job's id.
type Enqueue func(ctx context.Context, tx pgx.Tx, buildID string) (jobID int64, err error)

// InsertBuild stores a new queued build and its job in one transaction. When a build
// with the same submission key is already queued or running, nothing is inserted and
// that build is returned with created false: concurrent identical submissions make one
// build (the unique index builds_in_flight decides, so this holds across servers).
func (s *Store) InsertBuild(ctx context.Context, nb NewBuild, enqueue Enqueue) (b *Build, created bool, err error) {
	// The in-flight build found by the conflict may finish before we read it; then the
	// insert can go ahead, so try again (a few times at most: each retry means a build
	// of exactly this submission just ended).
	for range 5 {
		b, created, err = s.insertBuild(ctx, nb, enqueue)
		if !errors.Is(err, ErrBuildNotFound) {
			return b, created, err
		}
	}
	return nil, false, err
}

func (s *Store) insertBuild(ctx context.Context, nb NewBuild, enqueue Enqueue) (*Build, bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, dbErr("begin", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if nb.ClientLimit > 0 {
		// One submission of a client at a time, until commit, so that the count below
		// sees every other one: concurrent submissions cannot all pass the limit.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('debate.submit:' || $1, 0))`, nb.Client); err != nil {
			return nil, false, dbErr("lock client", err)
		}
	}
	var id string
	err = tx.QueryRow(ctx, `INSERT INTO builds (name, recipe, recipe_hash, scope_hash, submission_key, client)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (submission_key) WHERE status IN ('queued', 'running') DO NOTHING
		RETURNING id::text`,
		nb.Name, nb.Recipe, nb.RecipeHash, nb.ScopeHash, nb.SubmissionKey, nb.Client).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another submission of the same thing is in flight (its transaction has committed:
		// ON CONFLICT waited for it).
		b, err := scanBuild(tx.QueryRow(ctx, `SELECT `+buildColumns+` FROM builds
			WHERE submission_key = $1 AND status IN ('queued', 'running')`, nb.SubmissionKey))
		return b, false, err
	}
	if err != nil {
		return nil, false, dbErr("insert build", err)
	}
	if nb.ClientLimit > 0 {
		var n int
		var wait float64
		if err := tx.QueryRow(ctx, `SELECT count(*),
				extract(epoch FROM min(created_at) + make_interval(secs => $2) - now())::float8
			FROM builds WHERE client = $1 AND created_at >= now() - make_interval(secs => $2)`,
			nb.Client, nb.ClientWindow.Seconds()).Scan(&n, &wait); err != nil {
			return nil, false, dbErr("count submissions", err)
		}
		if n > nb.ClientLimit { // n includes this one, which the rollback takes back
			return nil, false, &ClientLimitError{Count: n - 1, RetryAfter: time.Duration(wait * float64(time.Second))}
		}
	}
	jobID, err := enqueue(ctx, tx, id)
	if err != nil {
		return nil, false, fmt.Errorf("store: enqueue build: %w", err)
	}
	b, err := scanBuild(tx.QueryRow(ctx, `UPDATE builds SET river_job_id = $2 WHERE id = $1
		RETURNING `+buildColumns, id, jobID))
	if err != nil {
		return nil, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, dbErr("commit build", err)
	}
	return b, true, nil
}

// GetBuild reads one build.
func (s *Store) GetBuild(ctx context.Context, id string) (*Build, error) {
	if !ValidBuildID(id) {
		return nil, ErrBuildNotFound
	}
	return scanBuild(s.pool.QueryRow(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id))
}

// SucceededByKeys returns the most recent succeeded build with one of the build keys.
func (s *Store) SucceededByKeys(ctx context.Context, keys []string) (*Build, error) {
	if len(keys) == 0 {
		return nil, ErrBuildNotFound
	}
	return scanBuild(s.pool.QueryRow(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE status = 'succeeded' AND build_key = ANY($1) ORDER BY finished_at DESC LIMIT 1`, keys))
}

// SucceededFull is SucceededByKeys with the build's artifacts and stages, in one round
// trip: the whole answer to a cache hit.
func (s *Store) SucceededFull(ctx context.Context, keys []string) (*Build, []Artifact, []Stage, error) {
	if len(keys) == 0 {
		return nil, nil, nil, ErrBuildNotFound
	}
	row := s.pool.QueryRow(ctx, `SELECT `+buildColumns+`,
			(SELECT coalesce(json_agg(json_build_object('name', a.name, 'sha256', a.sha256, 'size', a.size,
				'content_type', a.content_type) ORDER BY a.name), '[]') FROM build_artifacts a WHERE a.build_id = b.id),
			(SELECT coalesce(json_agg(json_build_object('stage', st.stage, 'position', st.position,
				'started_at', st.started_at, 'seconds', st.seconds) ORDER BY st.position), '[]') FROM build_stages st WHERE st.build_id = b.id)
		FROM builds b WHERE status = 'succeeded' AND build_key = ANY($1) ORDER BY finished_at DESC LIMIT 1`, keys)
	var arts []Artifact
	var stages []Stage
	b, err := scanBuild(extraScan{row, []any{&arts, &stages}})
	if err != nil {
		return nil, nil, nil, err
	}
	return b, arts, stages, nil
}

// extraScan appends destinations after a build's columns.
type extraScan struct {
	row   pgx.Row
	extra []any
}

func (e extraScan) Scan(dest ...any) error { return e.row.Scan(append(dest, e.extra...)...) }

// Artifacts lists a build's published files, in name order.
func (s *Store) Artifacts(ctx context.Context, id string) ([]Artifact, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, sha256, size, content_type FROM build_artifacts
		WHERE build_id = $1 ORDER BY name`, id)
	if err != nil {
		return nil, dbErr("read artifacts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Artifact, error) {
		var a Artifact
		err := r.Scan(&a.Name, &a.SHA256, &a.Size, &a.ContentType)
		return a, err
	})
	if err != nil {
		return nil, dbErr("read artifacts", err)
	}
	return out, nil
}

// Artifact reads one of a build's files by name.
func (s *Store) Artifact(ctx context.Context, id, name string) (*Artifact, error) {
	if !ValidBuildID(id) {
		return nil, ErrBuildNotFound
	}
	var a Artifact
	err := s.pool.QueryRow(ctx, `SELECT name, sha256, size, content_type FROM build_artifacts
		WHERE build_id = $1 AND name = $2`, id, name).Scan(&a.Name, &a.SHA256, &a.Size, &a.ContentType)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrBuildNotFound
	}
	if err != nil {
		return nil, dbErr("read artifact", err)
	}
	return &a, nil
}

// Stages lists a build's stage timings in pipeline order.
func (s *Store) Stages(ctx context.Context, id string) ([]Stage, error) {
	rows, err := s.pool.Query(ctx, `SELECT stage, position, started_at, seconds FROM build_stages
		WHERE build_id = $1 ORDER BY position`, id)
	if err != nil {
		return nil, dbErr("read stages", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Stage, error) {
		var st Stage
		err := r.Scan(&st.Name, &st.Position, &st.StartedAt, &st.Seconds)
		return st, err
	})
	if err != nil {
		return nil, dbErr("read stages", err)
	}
	return out, nil
}

// QueueLength counts the queued builds.
func (s *Store) QueueLength(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM builds WHERE status = 'queued'`).Scan(&n); err != nil {
		return 0, dbErr("queue length", err)
	}
	return n, nil
}

// InFlight returns the queued or running build with the submission key.
func (s *Store) InFlight(ctx context.Context, submissionKey string) (*Build, error) {
	return scanBuild(s.pool.QueryRow(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE submission_key = $1 AND status IN ('queued', 'running')`, submissionKey))
}

// QueueSnapshot is what a queue estimate is computed from.
type QueueSnapshot struct {
	// Ahead is the number of queued builds submitted before this one.
	Ahead int
	// RunningElapsed holds, for each running build, how long it has run.
	RunningElapsed []time.Duration
	// Capacity is the total concurrency of the workers alive now (0: none seen).
	Capacity int
	// Durations are the run times of recent successful builds (newest first).
	Durations []time.Duration
}

// QueueSnapshot reads the queue around a build in one round trip. staleAfter is how old
// a worker's heartbeat may be for it to count as alive.
func (s *Store) QueueSnapshot(ctx context.Context, b *Build, staleAfter time.Duration, recent int) (QueueSnapshot, error) {
	var qs QueueSnapshot
	batch := &pgx.Batch{}
	batch.Queue(`SELECT count(*) FROM builds WHERE status = 'queued' AND (created_at, id) < ($1, $2::uuid)`,
		b.CreatedAt, b.ID).QueryRow(func(r pgx.Row) error { return r.Scan(&qs.Ahead) })
	batch.Queue(`SELECT extract(epoch FROM now() - started_at)::float8 FROM builds WHERE status = 'running'
		ORDER BY started_at LIMIT 1000`).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var sec float64
			if err := rows.Scan(&sec); err != nil {
				return err
			}
			qs.RunningElapsed = append(qs.RunningElapsed, time.Duration(sec*float64(time.Second)))
		}
		return rows.Err()
	})
	batch.Queue(`SELECT coalesce(sum(concurrency), 0) FROM workers
		WHERE stopped_at IS NULL AND heartbeat_at > now() - $1::interval`, staleAfter).QueryRow(func(r pgx.Row) error { return r.Scan(&qs.Capacity) })
	batch.Queue(`SELECT extract(epoch FROM finished_at - started_at)::float8 FROM builds
		WHERE status = 'succeeded' AND cache_hit_of IS NULL AND started_at IS NOT NULL
		ORDER BY finished_at DESC LIMIT $1`, recent).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var sec float64
			if err := rows.Scan(&sec); err != nil {
				return err
			}
			qs.Durations = append(qs.Durations, time.Duration(sec*float64(time.Second)))
		}
		return rows.Err()
	})
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return qs, dbErr("queue snapshot", err)
	}
	return qs, nil
}

// RequestCancel marks a build for cancellation. A queued build is cancelled at once; a
// running one keeps running until its worker stops it. A finished build is returned
// unchanged with ErrBuildFinished.
func (s *Store) RequestCancel(ctx context.Context, id string) (*Build, error) {
	if !ValidBuildID(id) {
		return nil, ErrBuildNotFound
	}
	b, err := scanBuild(s.pool.QueryRow(ctx, `WITH u AS (
			UPDATE builds SET
				cancel_requested_at = coalesce(cancel_requested_at, now()),
				status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
				finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
				error = CASE WHEN status = 'queued'
					THEN '{"code":"cancelled","message":"cancelled before it started"}'::jsonb ELSE error END
			WHERE id = $1 AND status IN ('queued', 'running')
			RETURNING *)
		SELECT `+buildColumns+` FROM u`, id))
	if errors.Is(err, ErrBuildNotFound) {
		b, err := s.GetBuild(ctx, id)
		if err != nil {
			return nil, err
		}
		return b, ErrBuildFinished
	}
	if err != nil {
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, EventsChannel, id); err != nil {
		return b, dbErr("notify", err)
	}
	return b, nil
}

// ClaimBuild makes workerID the runner of a build for attempt, and returns the build and
// the last event sequence number stored so far (a retried build continues after it).
// A build that is finished (cancelled while queued, say) returns ErrBuildFinished.
func (s *Store) ClaimBuild(ctx context.Context, id, workerID string, attempt int) (*Build, int, error) {
	b, err := scanBuild(s.pool.QueryRow(ctx, `UPDATE builds SET status = 'running', worker_id = $2,
			attempt = $3, started_at = now()
		WHERE id = $1 AND status IN ('queued', 'running')
		RETURNING `+buildColumns, id, workerID, attempt))
	if errors.Is(err, ErrBuildNotFound) {
		if b, gerr := s.GetBuild(ctx, id); gerr == nil {
			return b, 0, ErrBuildFinished
		}
		return nil, 0, err
	}
	if err != nil {
		return nil, 0, err
	}
	var last int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM build_events WHERE build_id = $1`, id).Scan(&last); err != nil {
		return nil, 0, dbErr("last event", err)
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, EventsChannel, id); err != nil {
		return nil, 0, dbErr("notify", err)
	}
	return b, last, nil
}

// SetBuildKey records the build key a worker resolved.
func (s *Store) SetBuildKey(ctx context.Context, id, workerID, key string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE builds SET build_key = $3 WHERE id = $1 AND worker_id = $2 AND status = 'running'`,
		id, workerID, key)
	if err != nil {
		return dbErr("set build key", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotOwner
	}
	return nil
}

// StageUpdate is a stage's start or end seen in the event stream.
type StageUpdate struct {
	Stage     string
	Position  int
	StartedAt time.Time
	Seconds   *float64 // set on the stage's end
}

// AppendEvents stores a batch of events (and the stage timings they carry) and notifies
// listeners, in one transaction. Only the worker running the build may append: events
// of an attempt that was handed to another worker are dropped.
func (s *Store) AppendEvents(ctx context.Context, id, workerID string, events []Event, stages []StageUpdate) error {
	if len(events) == 0 && len(stages) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	queueEvents(batch, id, workerID, events, stages)
	batch.Queue(`SELECT pg_notify($1, $2)`, EventsChannel, id)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return dbErr("append events", err)
	}
	return nil
}

// queueEvents adds the inserts of events and stage timings to a batch; they are dropped
// unless workerID runs the build.
func queueEvents(batch *pgx.Batch, id, workerID string, events []Event, stages []StageUpdate) {
	if len(events) > 0 {
		seqs := make([]int32, len(events))
		types := make([]string, len(events))
		datas := make([]string, len(events))
		for i, e := range events {
			seqs[i], types[i], datas[i] = int32(e.Seq), e.Type, string(e.Data)
		}
		batch.Queue(`INSERT INTO build_events (build_id, seq, type, data)
			SELECT $1, e.seq, e.type, e.data::json FROM unnest($3::int[], $4::text[], $5::text[]) AS e(seq, type, data)
			WHERE EXISTS (SELECT 1 FROM builds WHERE id = $1 AND worker_id = $2 AND status = 'running')
			ON CONFLICT DO NOTHING`, id, workerID, seqs, types, datas)
	}
	for _, st := range stages {
		batch.Queue(`INSERT INTO build_stages (build_id, stage, position, started_at, seconds)
			SELECT $1, $3, $4, $5, $6
			WHERE EXISTS (SELECT 1 FROM builds WHERE id = $1 AND worker_id = $2 AND status = 'running')
			ON CONFLICT (build_id, stage) DO UPDATE SET
				started_at = CASE WHEN excluded.seconds IS NULL THEN excluded.started_at ELSE build_stages.started_at END,
				seconds = excluded.seconds`,
			id, workerID, st.Stage, st.Position, st.StartedAt, st.Seconds)
	}
}

// Events returns up to limit events of a build after sequence number after.
func (s *Store) Events(ctx context.Context, id string, after, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, type, data FROM build_events
		WHERE build_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, id, after, limit)
	if err != nil {
		return nil, dbErr("read events", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.Seq, &e.Type, &e.Data)
		return e, err
	})
	if err != nil {
		return nil, dbErr("read events", err)
	}
	return out, nil
}

// Final is what a worker stores with a build's outcome, in the same transaction: the
// last events (build-end among them) and stage timings, so that a client that sees
// build-end also sees the final status.
type Final struct {
	Events []Event
	Stages []StageUpdate
}

// FinishSucceeded marks the build succeeded with its artifacts and its last events, in
// one transaction, if workerID still runs it. cacheHitOf names the build whose artifacts
// these are ("" for a build of its own).
func (s *Store) FinishSucceeded(ctx context.Context, id, workerID, buildKey, cacheHitOf string, arts []Artifact, final Final) error {
	var hit any
	if cacheHitOf != "" {
		hit = cacheHitOf
	}
	return s.finish(ctx, id, workerID, final, func(batch *pgx.Batch) {
		batch.Queue(`UPDATE builds SET status = 'succeeded', finished_at = now(),
				build_key = $3, cache_hit_of = $4::uuid, error = NULL
			WHERE id = $1 AND worker_id = $2 AND status = 'running'`, id, workerID, buildKey, hit)
		for _, a := range arts {
			batch.Queue(`INSERT INTO build_artifacts (build_id, name, sha256, size, content_type)
				VALUES ($1, $2, $3, $4, $5)`, id, a.Name, a.SHA256, a.Size, a.ContentType)
		}
	})
}

// FinishFailed marks the build failed or cancelled (status) with the builder's error and
// its last events, if workerID still runs it.
func (s *Store) FinishFailed(ctx context.Context, id, workerID, status string, errInfo json.RawMessage, final Final) error {
	if status != StatusFailed && status != StatusCancelled {
		return fmt.Errorf("store: finish build as %q: want failed or cancelled", status)
	}
	return s.finish(ctx, id, workerID, final, func(batch *pgx.Batch) {
		batch.Queue(`UPDATE builds SET status = $3, finished_at = now(), error = $4
			WHERE id = $1 AND worker_id = $2 AND status = 'running'`, id, workerID, status, []byte(errInfo))
	})
}

// finish stores the final events, then the outcome (queued by outcome, whose first
// statement is the update of the build row), then notifies: all or nothing.
func (s *Store) finish(ctx context.Context, id, workerID string, final Final, outcome func(*pgx.Batch)) error {
	batch := &pgx.Batch{}
	queueEvents(batch, id, workerID, final.Events, final.Stages)
	first := batch.Len()
	outcome(batch)
	batch.Queue(`SELECT pg_notify($1, $2)`, EventsChannel, id)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, batch)
		defer br.Close()
		for i := range batch.Len() {
			tag, err := br.Exec()
			if err != nil {
				return err
			}
			if i == first && tag.RowsAffected() == 0 {
				return ErrNotOwner
			}
		}
		return br.Close()
	})
	if errors.Is(err, ErrNotOwner) {
		return err
	}
	if err != nil {
		return dbErr("finish build", err)
	}
	return nil
}

// Requeue puts a running build back in the queue (its worker is shutting down; River
// retries the job).
func (s *Store) Requeue(ctx context.Context, id, workerID string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE builds SET status = 'queued', worker_id = NULL
		WHERE id = $1 AND worker_id = $2 AND status = 'running'`, id, workerID)
	if err != nil {
		return dbErr("requeue build", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotOwner
	}
	return nil
}

// CancelRequested reports whether someone asked to cancel the build.
func (s *Store) CancelRequested(ctx context.Context, id string) (bool, error) {
	var req bool
	err := s.pool.QueryRow(ctx, `SELECT cancel_requested_at IS NOT NULL FROM builds WHERE id = $1`, id).Scan(&req)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, ErrBuildNotFound
	}
	if err != nil {
		return false, dbErr("read build", err)
	}
	return req, nil
}

// ListenEvents calls fn with the id of every build that has news (events or a status
// change), from one dedicated connection, until ctx ends. It returns when the
// connection fails; the caller reconnects (and should re-read what it follows, since
// notifications sent while disconnected are lost).
func (s *Store) ListenEvents(ctx context.Context, ready func(), fn func(buildID string)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return dbErr("listen", err)
	}
	// The connection is in LISTEN state: never hand it back to the pool.
	defer func() {
		c := conn.Hijack()
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+EventsChannel); err != nil {
		return dbErr("listen", err)
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return dbErr("wait for notification", err)
		}
		fn(n.Payload)
	}
}
