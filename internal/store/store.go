// Package store is Debate's PostgreSQL access: the connection pool, the embedded schema
// migrations, and (later) every query. All SQL of the project lives in this package.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrUnavailable means the database could not be reached or did not answer in time.
var ErrUnavailable = errors.New("database unavailable")

// Options tune the pool.
type Options struct {
	// MaxConns is the most connections the pool opens; 0 means pgx's default.
	MaxConns int32
	Logger   *slog.Logger
}

// Store is a handle on the database; safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	logger   *slog.Logger
	migrator *Migrator
}

// Open creates the pool. It does not wait for the database: a server may start while
// PostgreSQL is still coming up, and readiness says so until it answers.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// Not %w: the parse error repeats the URL; its inner error has the reason.
		reason := errors.Unwrap(err)
		if reason == nil {
			reason = errors.New("cannot be parsed")
		}
		return nil, fmt.Errorf("store: database URL: %v", reason)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	// A dead server must not hang requests: fail the dial quickly and let the caller retry.
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.HealthCheckPeriod = 15 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: create pool: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{pool: pool, logger: logger}
	if s.migrator, err = s.newMigrator(); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Migrate applies the embedded migrations (River's first); a second run applies nothing.
func (s *Store) Migrate(ctx context.Context) (*MigrateResult, error) {
	return s.migrator.Migrate(ctx)
}

// MigrationStatus compares the database's schema with the embedded migrations.
func (s *Store) MigrationStatus(ctx context.Context) (Status, error) {
	return s.migrator.Status(ctx)
}

// Close waits for borrowed connections to come back and closes the pool.
func (s *Store) Close() { s.pool.Close() }

// MigrateURL opens the database at url, brings its schema up to date and closes it
// again, within two minutes: how a template database for tests or tools is prepared.
func MigrateURL(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := Open(ctx, url, Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.Migrate(ctx)
	return err
}

// Pool is the underlying pgx pool, for River's driver.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// PingResult is the time spent on a database round trip.
type PingResult struct {
	Acquire   time.Duration // waiting for a pooled connection (or dialling one)
	RoundTrip time.Duration // one empty statement sent and answered
}

// Ping sends one empty statement and times it.
func (s *Store) Ping(ctx context.Context) (PingResult, error) {
	start := time.Now()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return PingResult{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer conn.Release()
	acquired := time.Now()
	if err := conn.Ping(ctx); err != nil {
		return PingResult{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return PingResult{Acquire: acquired.Sub(start), RoundTrip: time.Since(acquired)}, nil
}
