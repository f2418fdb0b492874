package builder

import (
	"sync"
	"time"
)

// Stage names, in pipeline order. They are part of the event format that the CLI's --json
// prints and the server streams: keep them stable.
const (
	StageResolve    = "resolve"
	StageDownload   = "download"
	StageBootstrap  = "bootstrap"
	StageCustomise  = "customise"
	StageSquashfs   = "squashfs"
	StageBootloader = "bootloader"
	StageISO        = "iso"
	StageManifest   = "manifest"
)

// Stages lists the stages in the order they run.
var Stages = []string{StageResolve, StageDownload, StageBootstrap, StageCustomise, StageSquashfs, StageBootloader, StageISO, StageManifest}

// Event types.
const (
	EventBuildStart = "build-start"
	EventStageStart = "stage-start"
	EventProgress   = "progress"
	EventStageEnd   = "stage-end"
	EventLog        = "log"
	EventWarning    = "warning"
	EventBuildEnd   = "build-end"
)

// Event is one line of a build's progress stream.
type Event struct {
	Seq  int       `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// Stage is set on stage, progress and log events.
	Stage string `json:"stage,omitempty"`
	// Progress is the known fraction (0..1) of the stage done, on progress events.
	Progress *float64 `json:"progress,omitempty"`
	Message  string   `json:"message,omitempty"`
	// Seconds is the stage's duration on stage-end, the build's on build-end.
	Seconds float64 `json:"seconds,omitempty"`
	// Result is set on a successful build-end.
	Result *Result `json:"result,omitempty"`
	// Error is set on a failed build-end (and on a failed stage-end).
	Error *ErrorInfo `json:"error,omitempty"`
}

// reporter numbers events and hands them to the caller's sink; safe for concurrent use.
type reporter struct {
	mu    sync.Mutex
	seq   int
	sink  func(Event)
	start time.Time
	stage string
	began time.Time
}

func newReporter(sink func(Event)) *reporter {
	if sink == nil {
		sink = func(Event) {}
	}
	return &reporter{sink: sink, start: time.Now()}
}

func (r *reporter) emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e.Seq = r.seq
	e.Time = time.Now().UTC()
	r.sink(e)
}

func (r *reporter) stageStart(stage, msg string) {
	r.mu.Lock()
	r.stage, r.began = stage, time.Now()
	r.mu.Unlock()
	r.emit(Event{Type: EventStageStart, Stage: stage, Message: msg})
}

func (r *reporter) stageEnd(msg string) {
	r.mu.Lock()
	stage, began := r.stage, r.began
	r.stage = ""
	r.mu.Unlock()
	if stage == "" {
		return
	}
	r.emit(Event{Type: EventStageEnd, Stage: stage, Message: msg, Seconds: time.Since(began).Seconds()})
}

func (r *reporter) current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stage
}

func (r *reporter) progress(frac float64, msg string) {
	if frac < 0 {
		frac = 0
	}
	if frac > 1 {
		frac = 1
	}
	r.emit(Event{Type: EventProgress, Stage: r.current(), Progress: &frac, Message: msg})
}

func (r *reporter) log(line string) {
	r.emit(Event{Type: EventLog, Stage: r.current(), Message: line})
}

func (r *reporter) warn(msg string) {
	r.emit(Event{Type: EventWarning, Stage: r.current(), Message: msg})
}
