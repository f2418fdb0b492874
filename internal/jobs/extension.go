// Package jobs runs Debate's background work on River: the build jobs that turn queued
// recipes into ISOs, and periodic maintenance (log retention, refreshing pinned inputs).
// Other packages add their own River work — backups do — through an Extension, so that
// this package never imports them.
package jobs

import (
	"context"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// River queues. Builds have their own queue, sized by the worker's concurrency, so that
// maintenance never waits behind a long build and never takes a build slot.
const (
	// QueueBuilds holds one job per queued build.
	QueueBuilds = "builds"
	// QueueMaintenance holds periodic and housekeeping jobs (retention, pin refresh).
	// Each worker process works it with a small fixed concurrency.
	QueueMaintenance = "maintenance"
)

// Extension adds River work to the Debate processes given it (every process runs a
// Worker: `debate worker`, and `debate serve` with any --workers, 0 included). It is the
// registration point for packages above the builder, such as backups
// (backup.Service.Extension, given only to servers with --backup-dir):
//
//	jobs.Extension{
//		Name:     "backup",
//		Register: func(w *river.Workers) error { return river.AddWorkerSafely(w, &backupWorker{…}) },
//		Queues:   map[string]river.QueueConfig{"backups": {MaxWorkers: 1}},
//		Run:      func(ctx context.Context, insert jobs.Inserter) { … insert(ctx, BackupArgs{…}, opts) … },
//	}
//
// Pass extensions in WorkerOptions.Extensions; cmd/debate gathers them in one place,
// workerExtensions in cmd/debate/worker.go, for both commands that run workers.
//
// A process works only the queues it is configured with, so work that must run on
// particular machines (where a backup folder is) gets a queue of its own (Queues), added
// only by those processes.
//
// Scheduling: River enqueues Periodic jobs from its elected leader's own list, and the
// leader is whichever Debate process wins the election (servers included: every server
// runs a River client). Periodic therefore suits only work every process schedules the
// same way. Work that only some processes know how to schedule (their configuration
// holds the times) schedules itself in Run instead, enqueueing each occurrence with
// unique arguments so that several such processes enqueue it once.
type Extension struct {
	// Name identifies the extension in logs and errors.
	Name string
	// Register adds the extension's workers (river.AddWorkerSafely).
	Register func(*river.Workers) error
	// Periodic jobs to schedule; see Scheduling above. Give each an ID
	// (river.PeriodicJobOpts) and put its jobs on QueueMaintenance unless they need a
	// queue of their own.
	Periodic []*river.PeriodicJob
	// Queues are extra queues this extension's jobs use, beyond QueueBuilds and
	// QueueMaintenance.
	Queues map[string]river.QueueConfig
	// Run, when set, runs in its own goroutine while the worker runs (from after River
	// started until the worker stops; ctx ends first). insert enqueues on the worker's
	// River client.
	Run func(ctx context.Context, insert Inserter)
}

// Inserter enqueues a job; it is the worker's River client's Insert.
type Inserter func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
