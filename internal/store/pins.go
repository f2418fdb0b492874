package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// Pin is the pinned inputs a worker resolved for a pin scope.
type Pin struct {
	ScopeHash  string
	InputsHash string
	Builder    string
	Pinned     json.RawMessage
	ResolvedAt time.Time
}

// RecordPin stores the inputs a worker just pinned for a scope (base is the scope itself,
// kept so that a refresh job can resolve it again).
func (s *Store) RecordPin(ctx context.Context, base json.RawMessage, p Pin) error {
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO build_scopes (scope_hash, base) VALUES ($1, $2)
		ON CONFLICT (scope_hash) DO NOTHING`, p.ScopeHash, base)
	batch.Queue(`INSERT INTO build_pins (scope_hash, inputs_hash, builder, pinned, resolved_at)
		VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (scope_hash, inputs_hash) DO UPDATE SET resolved_at = now(), pinned = excluded.pinned`,
		p.ScopeHash, p.InputsHash, p.Builder, p.Pinned)
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return dbErr("record pin", err)
	}
	return nil
}

// FreshPins returns the pins of a scope resolved by builder within maxAge, newest first,
// and marks the scope as used (at most once a minute, so that the hot path of a cache
// hit rarely writes).
func (s *Store) FreshPins(ctx context.Context, scopeHash, builder string, maxAge time.Duration) ([]Pin, error) {
	var pins []Pin
	batch := &pgx.Batch{}
	batch.Queue(`UPDATE build_scopes SET last_used_at = now()
		WHERE scope_hash = $1 AND last_used_at < now() - interval '1 minute'`, scopeHash)
	batch.Queue(`SELECT inputs_hash, pinned, resolved_at FROM build_pins
		WHERE scope_hash = $1 AND builder = $2 AND resolved_at > now() - $3::interval
		ORDER BY resolved_at DESC LIMIT 8`, scopeHash, builder, maxAge).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			p := Pin{ScopeHash: scopeHash, Builder: builder}
			if err := rows.Scan(&p.InputsHash, &p.Pinned, &p.ResolvedAt); err != nil {
				return err
			}
			pins = append(pins, p)
		}
		return rows.Err()
	})
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, dbErr("read pins", err)
	}
	return pins, nil
}

// Scope is a pin scope in use.
type Scope struct {
	Hash string
	Base json.RawMessage
}

// ScopesToRefresh lists scopes used within usedWithin whose newest pin by builder is
// older than olderThan (or missing).
func (s *Store) ScopesToRefresh(ctx context.Context, builder string, usedWithin, olderThan time.Duration, limit int) ([]Scope, error) {
	rows, err := s.pool.Query(ctx, `SELECT sc.scope_hash, sc.base FROM build_scopes sc
		WHERE sc.last_used_at > now() - $2::interval
		  AND NOT EXISTS (SELECT 1 FROM build_pins p WHERE p.scope_hash = sc.scope_hash
			AND p.builder = $1 AND p.resolved_at > now() - $3::interval)
		ORDER BY sc.last_used_at DESC LIMIT $4`, builder, usedWithin, olderThan, limit)
	if err != nil {
		return nil, dbErr("scopes to refresh", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Scope, error) {
		var sc Scope
		err := r.Scan(&sc.Hash, &sc.Base)
		return sc, err
	})
	if err != nil {
		return nil, dbErr("scopes to refresh", err)
	}
	return out, nil
}
