-- The build service: builds and what they produced, their event streams, the pinned
-- inputs that let the API answer a cache hit without resolving, and the worker processes'
-- heartbeats. River's river_job holds the queue itself; builds.river_job_id links to it.

-- One submitted build. A cache hit answered at submission time creates no row: the
-- client gets the existing build. A hit found by a worker after resolving finishes its
-- own row as succeeded with cache_hit_of set and the same artifacts.
CREATE TABLE builds (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    name                text NOT NULL,
    -- The effective recipe (layers composed) in canonical form: what the worker builds.
    recipe              jsonb NOT NULL,
    recipe_hash         text NOT NULL CHECK (recipe_hash ~ '^[0-9a-f]{64}$'),
    -- Hash of the recipe's pin scope (base distribution, release, architecture,
    -- components, updates, snapshot, mirrors): the inputs a resolve pins.
    scope_hash          text NOT NULL CHECK (scope_hash ~ '^[0-9a-f]{64}$'),
    -- sha256(recipe hash, scope hash): two submissions with the same key would build the
    -- same thing, so only one of them may be in flight (builds_in_flight below).
    submission_key      text NOT NULL CHECK (submission_key ~ '^[0-9a-f]{64}$'),
    -- Known once a worker has resolved: sha256 of the recipe hash and the pinned inputs.
    build_key           text CHECK (build_key ~ '^[0-9a-f]{64}$'),
    cache_hit_of        uuid REFERENCES builds (id),
    -- The submitting client's rate-limit identity (address, /64 for IPv6).
    client              text NOT NULL DEFAULT '',
    river_job_id        bigint,
    -- The worker process running the current attempt; a late write from an earlier
    -- attempt's worker (one that was presumed dead) is refused by comparing it.
    worker_id           text,
    attempt             integer NOT NULL DEFAULT 0,
    error               jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    cancel_requested_at timestamptz,
    logs_removed_at     timestamptz
);

CREATE UNIQUE INDEX builds_in_flight ON builds (submission_key) WHERE status IN ('queued', 'running');
CREATE INDEX builds_succeeded_by_key ON builds (build_key, finished_at DESC) WHERE status = 'succeeded';
CREATE INDEX builds_queued ON builds (created_at) WHERE status = 'queued';
CREATE INDEX builds_running ON builds (started_at) WHERE status = 'running';
CREATE INDEX builds_by_client ON builds (client, created_at);
CREATE INDEX builds_finished ON builds (finished_at) WHERE finished_at IS NOT NULL;

-- Files a succeeded build published to the content-addressed artifact store.
CREATE TABLE build_artifacts (
    build_id     uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    name         text NOT NULL,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size         bigint NOT NULL CHECK (size >= 0),
    content_type text NOT NULL,
    PRIMARY KEY (build_id, name)
);

-- Stage timings, kept after the event stream is removed (status and metrics use them).
CREATE TABLE build_stages (
    build_id   uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    stage      text NOT NULL,
    position   integer NOT NULL,
    started_at timestamptz NOT NULL,
    seconds    double precision,
    PRIMARY KEY (build_id, stage)
);

-- The builder's event stream, one row per event; seq grows across attempts, so that a
-- client resuming with Last-Event-ID never misses a restarted build's events. data is
-- json, not jsonb, on purpose: the stream is only ever replayed whole, and json keeps the
-- builder's bytes (key order as `debate build --json` prints them) while costing no
-- parsing on the insert path that every log line takes.
CREATE TABLE build_events (
    build_id uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq      integer NOT NULL,
    type     text NOT NULL,
    data     json NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- Pin scopes clients asked for, so that pins of scopes in use are kept fresh.
CREATE TABLE build_scopes (
    scope_hash   text PRIMARY KEY,
    base         jsonb NOT NULL,
    last_used_at timestamptz NOT NULL DEFAULT now()
);

-- The latest pinned inputs seen by workers, per scope and per set of inputs (workers with
-- other tool versions pin other inputs for the same scope).
CREATE TABLE build_pins (
    scope_hash  text NOT NULL,
    inputs_hash text NOT NULL,
    builder     text NOT NULL,
    pinned      jsonb NOT NULL,
    resolved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope_hash, inputs_hash)
);
CREATE INDEX build_pins_fresh ON build_pins (scope_hash, resolved_at DESC);

-- Worker processes and their heartbeats. River's own rescue of stuck jobs must wait
-- longer than the longest build; the heartbeat lets a running build of a dead worker be
-- retried within seconds instead.
CREATE TABLE workers (
    id           text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    version      text NOT NULL,
    concurrency  integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);
