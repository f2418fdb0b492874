package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Histogram is a cumulative histogram in Prometheus' sense: Counts[i] observations were
// ≤ Bounds[i]; Count and Sum cover all of them.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// BuildMetrics is the build service's state, read from the database so that it covers
// every worker on every machine.
type BuildMetrics struct {
	ByStatus       map[string]uint64 // builds per status (terminal ones are outcomes)
	WorkerHits     uint64            // builds a worker finished as a cache hit after resolving
	Built          uint64            // builds that ran the pipeline past resolve (cache misses)
	QueueLength    uint64
	Running        uint64
	WorkersAlive   uint64
	Capacity       uint64
	BuildSeconds   Histogram            // run time of finished builds that ran the pipeline
	QueueWait      Histogram            // created → first start
	StageSeconds   map[string]Histogram // per stage, finished stages
	StageOrder     []string
	OldestQueuedAt float64 // seconds the oldest queued build has waited (0: none)
}

// histogramQuery fills h from rows of (bucket index, count, sum) where the bucket index
// is width_bucket(value, bounds): the number of bounds ≤ value.
func fillHistogram(h *Histogram, idx int, n uint64, sum float64) {
	// Values equal to a bound land one bucket up in width_bucket; with continuous
	// durations that is immaterial.
	for i := idx; i < len(h.Bounds); i++ {
		h.Counts[i] += n
	}
	h.Count += n
	h.Sum += sum
}

func newHistogram(bounds []float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
}

// BuildMetrics reads the metrics in one round trip. bounds are the histogram buckets of
// durations in seconds; staleAfter decides which workers count as alive.
func (s *Store) BuildMetrics(ctx context.Context, bounds []float64, staleAfter float64) (*BuildMetrics, error) {
	m := &BuildMetrics{
		ByStatus:     map[string]uint64{},
		BuildSeconds: newHistogram(bounds),
		QueueWait:    newHistogram(bounds),
		StageSeconds: map[string]Histogram{},
	}
	batch := &pgx.Batch{}
	batch.Queue(`SELECT status, count(*), count(*) FILTER (WHERE cache_hit_of IS NOT NULL),
			count(*) FILTER (WHERE cache_hit_of IS NULL AND build_key IS NOT NULL AND status <> 'queued'),
			coalesce(max(extract(epoch FROM now() - created_at)) FILTER (WHERE status = 'queued'), 0)::float8
		FROM builds GROUP BY status`).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var st string
			var n, hits, built uint64
			var oldest float64
			if err := rows.Scan(&st, &n, &hits, &built, &oldest); err != nil {
				return err
			}
			m.ByStatus[st] = n
			m.WorkerHits += hits
			m.Built += built
			switch st {
			case StatusQueued:
				m.QueueLength = n
				m.OldestQueuedAt = oldest
			case StatusRunning:
				m.Running = n
			}
		}
		return rows.Err()
	})
	hist := func(h *Histogram) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			for rows.Next() {
				var idx int
				var n uint64
				var sum float64
				if err := rows.Scan(&idx, &n, &sum); err != nil {
					return err
				}
				fillHistogram(h, idx, n, sum)
			}
			return rows.Err()
		}
	}
	batch.Queue(`SELECT width_bucket(d, $1::float8[]), count(*), sum(d) FROM (
			SELECT extract(epoch FROM finished_at - started_at)::float8 AS d FROM builds
			WHERE status IN ('succeeded', 'failed') AND cache_hit_of IS NULL AND started_at IS NOT NULL
			  AND finished_at IS NOT NULL) x GROUP BY 1`, bounds).Query(hist(&m.BuildSeconds))
	batch.Queue(`SELECT width_bucket(d, $1::float8[]), count(*), sum(d) FROM (
			SELECT extract(epoch FROM started_at - created_at)::float8 AS d FROM builds
			WHERE started_at IS NOT NULL AND attempt = 1) x GROUP BY 1`, bounds).Query(hist(&m.QueueWait))
	batch.Queue(`SELECT stage, min(position), width_bucket(seconds, $1::float8[]), count(*), sum(seconds)
		FROM build_stages WHERE seconds IS NOT NULL GROUP BY stage, 3 ORDER BY 2`, bounds).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var stage string
			var pos, idx int
			var n uint64
			var sum float64
			if err := rows.Scan(&stage, &pos, &idx, &n, &sum); err != nil {
				return err
			}
			h, ok := m.StageSeconds[stage]
			if !ok {
				h = newHistogram(bounds)
				m.StageOrder = append(m.StageOrder, stage)
			}
			fillHistogram(&h, idx, n, sum)
			m.StageSeconds[stage] = h
		}
		return rows.Err()
	})
	batch.Queue(`SELECT count(*), coalesce(sum(concurrency), 0) FROM workers
		WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1)`, staleAfter).QueryRow(func(r pgx.Row) error { return r.Scan(&m.WorkersAlive, &m.Capacity) })
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, dbErr("build metrics", err)
	}
	return m, nil
}
