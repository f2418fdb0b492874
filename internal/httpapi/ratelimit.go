package httpapi

import (
	"hash/maphash"
	"sync"
	"time"
)

// limiter allows each client `limit` requests per `period`, smoothly: it is the generic
// cell rate algorithm (GCRA), equivalent to a token bucket of `limit` tokens refilled one
// every period/limit, but it stores a single time per client.
//
// Memory is bounded: at most maxClients clients are remembered, split over shards that
// each forget their least recently seen client when full. A forgotten client starts
// afresh, which only matters to an attacker with more addresses than maxClients — and
// such an attacker cannot be limited per address anyway.
type limiter struct {
	limit    int
	period   time.Duration
	interval time.Duration // period / limit: the cost of one request
	seed     maphash.Seed
	shards   []limiterShard
}

const limiterShards = 32

type limiterShard struct {
	mu      sync.Mutex
	entries map[string]*limiterEntry
	// A doubly linked list in recency order: head is the most recently used.
	head, tail *limiterEntry
	max        int
}

type limiterEntry struct {
	key        string
	tat        time.Time // theoretical arrival time of the next request
	prev, next *limiterEntry
}

// decision is the outcome of one request against the limiter.
type decision struct {
	allowed    bool
	remaining  int           // requests left right now
	reset      time.Duration // until the full allowance is back
	retryAfter time.Duration // until the next request is allowed (when denied)
}

func newLimiter(limit int, period time.Duration, maxClients int) *limiter {
	l := &limiter{
		limit:    limit,
		period:   period,
		interval: period / time.Duration(limit),
		seed:     maphash.MakeSeed(),
		shards:   make([]limiterShard, limiterShards),
	}
	per := max(1, maxClients/limiterShards)
	for i := range l.shards {
		l.shards[i] = limiterShard{entries: make(map[string]*limiterEntry), max: per}
	}
	return l
}

// allow records one request from key at time now.
func (l *limiter) allow(key string, now time.Time) decision {
	s := &l.shards[maphash.String(l.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()

	e := s.entries[key]
	if e == nil {
		if len(s.entries) >= s.max {
			s.evictOldest()
		}
		e = &limiterEntry{key: key, tat: now}
		s.entries[key] = e
		s.pushFront(e)
	} else {
		s.moveToFront(e)
	}

	tat := e.tat
	if tat.Before(now) {
		tat = now
	}
	// Allowed while the backlog (tat - now) leaves room for one more request.
	tolerance := l.period - l.interval
	if backlog := tat.Sub(now); backlog > tolerance {
		return decision{
			allowed:    false,
			remaining:  0,
			reset:      backlog,
			retryAfter: backlog - tolerance,
		}
	}
	e.tat = tat.Add(l.interval)
	backlog := e.tat.Sub(now)
	return decision{
		allowed:   true,
		remaining: int((l.period - backlog) / l.interval),
		reset:     backlog,
	}
}

// size is the number of clients remembered (for tests).
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

func (s *limiterShard) pushFront(e *limiterEntry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *limiterShard) unlink(e *limiterEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *limiterShard) moveToFront(e *limiterEntry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

func (s *limiterShard) evictOldest() {
	if e := s.tail; e != nil {
		s.unlink(e)
		delete(s.entries, e.key)
	}
}
