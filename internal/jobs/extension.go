// Package jobs runs Debate's background work on River: the build jobs that turn queued
// recipes into ISOs, and periodic maintenance (log retention, refreshing pinned inputs).
// Other packages add their own River work — backups do — through an Extension, so that
// this package never imports them.
package jobs

import (
	"github.com/riverqueue/river"
)

// River queues. Builds have their own queue, sized by the worker's concurrency, so that
// maintenance never waits behind a long build and never takes a build slot.
const (
	// QueueBuilds holds one job per queued build.
	QueueBuilds = "builds"
	// QueueMaintenance holds periodic and housekeeping jobs (retention, pin refresh,
	// backups). Each worker process works it with a small fixed concurrency.
	QueueMaintenance = "maintenance"
)

// Extension adds River work to every Debate worker process (`debate worker` and
// `debate serve --workers N`). It is the registration point for packages above the
// builder, such as backups:
//
//	jobs.Extension{
//		Name: "backup",
//		Register: func(w *river.Workers) error {
//			return river.AddWorkerSafely(w, &backupWorker{…})
//		},
//		Periodic: []*river.PeriodicJob{river.NewPeriodicJob(
//			river.PeriodicInterval(24*time.Hour),
//			func() (river.JobArgs, *river.InsertOpts) {
//				return BackupArgs{}, &river.InsertOpts{Queue: jobs.QueueMaintenance}
//			},
//			&river.PeriodicJobOpts{ID: "backup.nightly", RunOnStart: false})},
//	}
//
// Pass extensions in WorkerOptions.Extensions; cmd/debate gathers them in one place,
// workerExtensions in cmd/debate/worker.go, for both commands that run workers.
//
// A process works only the queues it is configured with, so work that must run on
// particular machines (where a backup folder is) gets a queue of its own (Queues), added
// only by those processes. Periodic jobs are scheduled by River's elected leader, from
// the leader's own list, among all running Debate processes (servers included: every
// server runs a River client for maintenance and extensions): an extension whose
// periodic jobs are given to some processes only is scheduled only while one of those
// leads. Give Periodic to every process where possible (the jobs still run only where
// their queue is worked), or make the work self-starting (RunOnStart, a watchdog).
type Extension struct {
	// Name identifies the extension in logs and errors.
	Name string
	// Register adds the extension's workers (river.AddWorkerSafely).
	Register func(*river.Workers) error
	// Periodic jobs to schedule. Give each an ID (river.PeriodicJobOpts) and put its jobs
	// on QueueMaintenance unless they need a queue of their own.
	Periodic []*river.PeriodicJob
	// Queues are extra queues this extension's jobs use, beyond QueueBuilds and
	// QueueMaintenance.
	Queues map[string]river.QueueConfig
}
