-- The fleet history, schema 1: what every NDAS replica writes to one shared
-- PostgreSQL ([history] database_url). NDAS applies this itself (sqlx's
-- migrations, recorded in _sqlx_migrations) and refuses a database whose
-- schema is newer than it knows. README "Fleet history" documents it.
--
-- Every row carries its replica. Minute and hour aggregates are added to
-- (a replica restarted within a minute adds its second part); each batch
-- is applied once, by its key in applied_batches, in the same transaction.

CREATE TABLE replicas (
    replica      text PRIMARY KEY,
    version      text NOT NULL,
    started_at   timestamptz NOT NULL,
    last_report  timestamptz NOT NULL
);

-- Per replica per minute: its connections and workers at the minute's end.
CREATE TABLE replica_minutes (
    replica            text NOT NULL,
    minute             timestamptz NOT NULL,
    connections        bigint NOT NULL,
    workers_connected  bigint NOT NULL,
    workers_online     bigint NOT NULL,
    PRIMARY KEY (replica, minute)
);

-- Per worker per minute: what its shares came to (kept 48 hours).
CREATE TABLE worker_minutes (
    replica              text NOT NULL,
    worker               text NOT NULL,
    minute               timestamptz NOT NULL,
    accepted             bigint NOT NULL,
    rejected             bigint NOT NULL,
    stale                bigint NOT NULL,
    -- The hashrate is this x 2^32 over the minute's 60 seconds.
    accepted_difficulty  double precision NOT NULL,
    best_share           double precision NOT NULL,
    PRIMARY KEY (replica, worker, minute)
);
CREATE INDEX worker_minutes_by_minute ON worker_minutes (minute);
CREATE INDEX worker_minutes_by_worker ON worker_minutes (worker, minute);

-- The same per hour (kept 400 days: a year's billing).
CREATE TABLE worker_hours (
    replica              text NOT NULL,
    worker               text NOT NULL,
    hour                 timestamptz NOT NULL,
    accepted             bigint NOT NULL,
    rejected             bigint NOT NULL,
    stale                bigint NOT NULL,
    accepted_difficulty  double precision NOT NULL,
    best_share           double precision NOT NULL,
    PRIMARY KEY (replica, worker, hour)
);
CREATE INDEX worker_hours_by_hour ON worker_hours (hour);
CREATE INDEX worker_hours_by_worker ON worker_hours (worker, hour);

-- Found blocks, with the nodes' verdict once known.
CREATE TABLE blocks (
    hash        text PRIMARY KEY,
    height      integer NOT NULL,
    replica     text NOT NULL,
    worker      text NOT NULL,
    found_at    timestamptz NOT NULL,
    -- pending, accepted, duplicate, inconclusive or rejected.
    status      text NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX blocks_by_found_at ON blocks (found_at);

-- Who each block's coinbase pays, in its order (splits first).
CREATE TABLE block_outputs (
    hash        text NOT NULL REFERENCES blocks (hash) ON DELETE CASCADE,
    position    integer NOT NULL,
    address     text NOT NULL,
    value_sats  bigint NOT NULL,
    PRIMARY KEY (hash, position)
);

-- A worker on a connection: from its first accepted share to the end.
CREATE TABLE sessions (
    replica          text NOT NULL,
    -- The replica's run (its start, in microseconds) and the connection's
    -- number in it.
    run              bigint NOT NULL,
    seq              bigint NOT NULL,
    worker           text,
    user_agent       text,
    protocol         text,
    connected_at     timestamptz,
    disconnected_at  timestamptz,
    PRIMARY KEY (replica, run, seq)
);
CREATE INDEX sessions_by_worker ON sessions (worker, connected_at);

-- Node and upstream pool state changes.
CREATE TABLE state_changes (
    replica  text NOT NULL,
    at       timestamptz NOT NULL,
    -- node or upstream.
    kind     text NOT NULL,
    name     text NOT NULL,
    state    text NOT NULL,
    detail   text,
    PRIMARY KEY (replica, kind, name, at)
);

-- The batches applied, so a batch replayed after a lost answer is skipped.
CREATE TABLE applied_batches (
    replica     text NOT NULL,
    batch       bigint NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, batch)
);
