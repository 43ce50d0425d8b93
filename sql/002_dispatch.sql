-- NAME
--	002_dispatch - claiming deliveries, recording outcomes, requeueing,
--	live workers and the operators' views
-- DESCRIPTION
--	heraldd's dispatcher moves a delivery through
--	    queued | retry_wait --claim--> dispatched --outcome--> sent
--	                                              |            retry_wait
--	                                              |            failed --requeue--> queued
--	                                              +--lease expired--> claimed again
--	only through the functions here, each one statement (or two) that
--	changes the rows and writes one audit event per row, sealed by the
--	chain trigger of 001. A claim takes a lease; a result is applied only
--	by the lease holder for the attempt it was given, so a broker that
--	lost its lease (it stalled, its lease expired, another broker
--	reclaimed the delivery) cannot overwrite the newer attempt: delivery
--	is at-least-once.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified, every
--	write a SECURITY DEFINER function owned by the migrating role.
-- CHANGES TO 001 OBJECTS
--	deliveries_due_idx is rebuilt as (channel, next_attempt_at): a claim
--	for some channels must not walk past the due rows of the others (a
--	bulk email backlog in front of an urgent SMS). Same name, same
--	predicate. deliveries gains sent_at, failed_at, provider_id,
--	last_provider, last_code and requeued_at.

-- ---------------------------------------------------------------------
-- Columns and indexes
-- ---------------------------------------------------------------------

ALTER TABLE herald.deliveries
	ADD COLUMN sent_at       timestamptz,
	ADD COLUMN failed_at     timestamptz,
	ADD COLUMN provider_id   text,
	ADD COLUMN last_provider text,
	ADD COLUMN last_code     text,
	-- A requeued delivery's lifetime starts again here (see record_outcomes).
	ADD COLUMN requeued_at   timestamptz;

DROP INDEX herald.deliveries_due_idx;
CREATE INDEX deliveries_due_idx ON herald.deliveries (channel, next_attempt_at)
	WHERE state IN ('queued', 'retry_wait');
-- Expired leases: only in-flight rows, a few thousand at most.
CREATE INDEX deliveries_lease_idx ON herald.deliveries (lease_until)
	WHERE state = 'dispatched';
-- The dead-letter list and requeue --since.
CREATE INDEX deliveries_failed_idx ON herald.deliveries (failed_at)
	WHERE state = 'failed';
-- The oldest held delivery per channel (stats; approvals later).
CREATE INDEX deliveries_held_idx ON herald.deliveries (channel, created_at)
	WHERE state = 'held';

-- ---------------------------------------------------------------------
-- Outcome counters
-- ---------------------------------------------------------------------
--
-- record_outcomes adds its applied results to ten-second buckets here, so
-- "delivered / retried / failed in the last hour" reads a few hundred
-- rows instead of scanning audit events or deliveries. Each session adds
-- to its own shard (pg_backend_pid() % 8), like the audit chains, so
-- concurrent recorders rarely wait on the same counter row. Buckets older
-- than a day are pruned by workers_update, which the broker calls every
-- few seconds. The audit trail stays the record; these are a cache of it.
CREATE TABLE herald.outcome_counts (
	bucket   timestamptz NOT NULL,
	channel  text NOT NULL,
	provider text NOT NULL,  -- '' when the worker named none
	outcome  text NOT NULL CHECK (outcome IN ('delivered', 'retried', 'failed')),
	shard    int NOT NULL CHECK (shard BETWEEN 0 AND 7),
	n        bigint NOT NULL CHECK (n >= 0),
	PRIMARY KEY (bucket, channel, provider, outcome, shard)
) WITH (fillfactor = 50); -- room for HOT updates of n

-- ---------------------------------------------------------------------
-- Workers the brokers see
-- ---------------------------------------------------------------------

CREATE TABLE herald.workers (
	broker       text NOT NULL,
	name         text NOT NULL,
	channels     text[] NOT NULL DEFAULT '{}',
	credit       int NOT NULL DEFAULT 0 CHECK (credit >= 0),
	connected_at timestamptz NOT NULL,
	last_seen_at timestamptz NOT NULL,
	PRIMARY KEY (broker, name)
);

-- Replace broker owner's rows with workers, a JSON array of
--	{"name", "channels": [..], "credit": int,
--	 "connected_at_ms": unix ms, "last_seen_at_ms": unix ms | null (= now)}
-- (an empty array: the broker has no worker). A name given twice counts
-- once (the last one). Also prunes outcome_counts older than a day.
-- Returns the number of workers now recorded for owner.
CREATE FUNCTION herald.workers_update(owner text, workers jsonb)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_n int;
BEGIN
	IF owner IS NULL OR owner = '' THEN
		RAISE EXCEPTION 'workers_update: owner must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF jsonb_typeof(workers) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'workers_update: workers must be a JSON array, got %',
			coalesce(jsonb_typeof(workers), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	DELETE FROM herald.workers AS w
	 WHERE w.broker = owner
	   AND w.name NOT IN (SELECT x->>'name' FROM jsonb_array_elements(workers_update.workers) AS x
	                       WHERE x->>'name' IS NOT NULL);

	INSERT INTO herald.workers AS w (broker, name, channels, credit, connected_at, last_seen_at)
	SELECT DISTINCT ON (x.name) owner, x.name,
	       CASE WHEN jsonb_typeof(x.channels) = 'array'
	            THEN ARRAY(SELECT jsonb_array_elements_text(x.channels))
	            ELSE '{}'::text[] END,
	       greatest(coalesce(x.credit, 0), 0),
	       coalesce(to_timestamp(x.connected_at_ms / 1000.0), now()),
	       coalesce(to_timestamp(x.last_seen_at_ms / 1000.0), now())
	  FROM ROWS FROM (jsonb_to_recordset(workers_update.workers) AS (
	       name text, channels jsonb, credit int, connected_at_ms bigint, last_seen_at_ms bigint))
	       WITH ORDINALITY AS x(name, channels, credit, connected_at_ms, last_seen_at_ms, ord)
	 WHERE x.name IS NOT NULL
	 ORDER BY x.name, x.ord DESC
	    ON CONFLICT (broker, name) DO UPDATE
	   SET channels = EXCLUDED.channels, credit = EXCLUDED.credit,
	       connected_at = EXCLUDED.connected_at, last_seen_at = EXCLUDED.last_seen_at;

	DELETE FROM herald.outcome_counts AS c WHERE c.bucket < now() - interval '1 day';

	SELECT count(*) INTO v_n FROM herald.workers AS w WHERE w.broker = owner;
	RETURN v_n;
END
$$;

-- ---------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------

-- Claim up to max_n deliveries of the given channels for owner, with a
-- lease of lease_ms: those due (queued or retry_wait with
-- next_attempt_at <= now()) and those whose lease expired (dispatched,
-- lease_until < now(): the previous owner died or stalled), oldest
-- next_attempt_at first. Each becomes dispatched with lease_owner =
-- owner, lease_until = now() + lease and attempts + 1, which is returned
-- as attempt and must be echoed to record_outcomes. One audit event per
-- claimed delivery: 'delivery.dispatched', or 'delivery.reclaimed' naming
-- the previous owner. Rows another session holds are skipped, never
-- waited for, so concurrent claimers never get the same delivery.
--
-- Each channel is read from its own range of deliveries_due_idx (a
-- LATERAL per channel, up to max_n each) and the oldest max_n of the
-- union are claimed: the rows read but not claimed stay locked until the
-- caller's transaction ends, which for this one-statement call is at
-- once. One UNION ALL of row-locking subqueries cannot be merged lazily
-- by PostgreSQL 15 (it locks every due row first), hence the LIMITs.
CREATE FUNCTION herald.claim_deliveries(owner text, channels text[], max_n int, lease_ms int)
RETURNS TABLE (delivery_id bigint, message_id bigint, attempt int, recipient text,
               kind text, channel text, class text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	IF owner IS NULL OR owner = '' THEN
		RAISE EXCEPTION 'claim_deliveries: owner must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_n IS NULL OR max_n < 1 OR max_n > 10000 THEN
		RAISE EXCEPTION 'claim_deliveries: max_n must be 1..10000, got %', max_n
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF lease_ms IS NULL OR lease_ms < 1 THEN
		RAISE EXCEPTION 'claim_deliveries: lease_ms must be positive, got %', lease_ms
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	RETURN QUERY
	WITH pick AS MATERIALIZED (
		SELECT c.id, c.next_attempt_at, c.state AS old_state, c.lease_owner AS old_owner
		  FROM (
			SELECT due.*
			  FROM (SELECT DISTINCT u.ch FROM unnest(channels) AS u(ch)) AS chs
			 CROSS JOIN LATERAL (
				SELECT d.id, d.next_attempt_at, d.state, d.lease_owner
				  FROM herald.deliveries AS d
				 WHERE d.channel = chs.ch
				   AND d.state IN ('queued', 'retry_wait')
				   AND d.next_attempt_at <= now()
				 ORDER BY d.next_attempt_at
				 LIMIT max_n
				   FOR UPDATE SKIP LOCKED) AS due
			UNION ALL
			SELECT exp.*
			  FROM (SELECT d.id, d.next_attempt_at, d.state, d.lease_owner
			          FROM herald.deliveries AS d
			         WHERE d.state = 'dispatched'
			           AND d.lease_until < now()
			           AND d.channel = ANY (channels)
			         ORDER BY d.lease_until
			         LIMIT max_n
			           FOR UPDATE SKIP LOCKED) AS exp
		       ) AS c
		 ORDER BY c.next_attempt_at, c.id
		 LIMIT max_n
	), upd AS (
		UPDATE herald.deliveries AS d
		   SET state = 'dispatched',
		       lease_owner = owner,
		       lease_until = now() + make_interval(secs => lease_ms / 1000.0),
		       attempts = d.attempts + 1,
		       updated_at = now()
		  FROM pick
		 -- pick locked these rows, rechecking its conditions on their
		 -- newest versions: nothing else can have changed them since.
		 WHERE d.id = pick.id
		RETURNING d.id, d.message_id, d.attempts, d.recipient, d.kind, d.channel,
		          pick.next_attempt_at, pick.old_state, pick.old_owner
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, delivery_id, detail)
		SELECT 'broker:' || owner,
		       CASE WHEN upd.old_state = 'dispatched' THEN 'delivery.reclaimed'
		            ELSE 'delivery.dispatched' END,
		       upd.message_id, upd.id,
		       jsonb_strip_nulls(jsonb_build_object(
		           'attempt', upd.attempts,
		           'lease_ms', lease_ms,
		           'previous_owner', CASE WHEN upd.old_state = 'dispatched'
		                                  THEN upd.old_owner END))::text
		  FROM upd
		 ORDER BY upd.id
	)
	SELECT upd.id, upd.message_id, upd.attempts, upd.recipient, upd.kind, upd.channel, m.class
	  FROM upd
	  JOIN herald.messages AS m ON m.id = upd.message_id
	 ORDER BY upd.next_attempt_at, upd.id;
END
$$;

-- ---------------------------------------------------------------------
-- Message contents for the jobs
-- ---------------------------------------------------------------------

-- Everything a worker needs to send the messages ids (duplicates and
-- unknown ids are ignored), one row per message, by id. to_list and
-- cc_list are the message's deliveries of kind to / cc in delivery id
-- order, which is the order intake_batch received them in; attachments
-- is [{"name", "type", "data": base64 without line breaks}] by idx, '[]'
-- when there is none. reply_by is unix seconds.
CREATE FUNCTION herald.message_contents(ids bigint[])
RETURNS TABLE (message_id bigint, channel text, sender text, class text, subject text,
               body text, html text, cc_reason text, purpose text, reply_by bigint,
               flags text[], tags jsonb, to_list text[], cc_list text[], attachments jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
SELECT m.id, m.channel, m.sender, m.class, m.subject, m.body, m.html, m.cc_reason, m.purpose,
       extract(epoch FROM m.reply_by)::bigint, m.flags, m.tags,
       ARRAY(SELECT d.recipient FROM herald.deliveries AS d
              WHERE d.message_id = m.id AND d.kind = 'to' ORDER BY d.id),
       ARRAY(SELECT d.recipient FROM herald.deliveries AS d
              WHERE d.message_id = m.id AND d.kind = 'cc' ORDER BY d.id),
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'name', a.name, 'type', a.mime_type,
                            'data', translate(encode(a.data, 'base64'), E'\n', ''))
                        ORDER BY a.idx)
                   FROM herald.attachments AS a WHERE a.message_id = m.id), '[]'::jsonb)
  FROM herald.messages AS m
 WHERE m.id = ANY (ids)
 ORDER BY m.id
$$;

-- ---------------------------------------------------------------------
-- Outcomes
-- ---------------------------------------------------------------------

-- "3 days", "1 day", "12 hours", "90 minutes", "45 seconds": the largest
-- unit that divides s, for messages people read.
CREATE FUNCTION herald.duration_text(s int) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE
	WHEN s <> 0 AND s % 86400 = 0 THEN (s / 86400)::text || CASE WHEN s = 86400 THEN ' day' ELSE ' days' END
	WHEN s <> 0 AND s % 3600 = 0 THEN (s / 3600)::text || CASE WHEN s = 3600 THEN ' hour' ELSE ' hours' END
	WHEN s <> 0 AND s % 60 = 0 THEN (s / 60)::text || CASE WHEN s = 60 THEN ' minute' ELSE ' minutes' END
	ELSE s::text || CASE WHEN s = 1 THEN ' second' ELSE ' seconds' END
END;

-- Apply the workers' results for owner's leases. results is a JSON array
-- of {"delivery_id", "attempt", "outcome": "delivered" | "retry" |
-- "failed", "provider", "code", "detail", "provider_id",
-- "next_attempt_at_ms" (retry: unix ms; null = now), "max_lifetime_s"}.
-- A result applies only while its delivery is dispatched, leased by
-- owner for that attempt; otherwise the lease was lost (expired and
-- reclaimed, or another broker owns it) and nothing is written
-- (applied = false, state = the state another result of this call left,
-- else the delivery's current state, NULL when it does not exist). A delivery named twice is applied once: the first of
-- its results that holds the lease wins.
--	delivered -> sent: sent_at, provider_id
--	retry     -> retry_wait at next_attempt_at, last_error = code detail;
--	             but failed ('expired: gave up after ...') when that time is
--	             past the delivery's lifetime: max_lifetime_s from
--	             created_at, or from requeued_at for a requeued delivery
--	failed    -> failed: failed_at, last_error
-- The lease is cleared. One audit event per applied result
-- ('delivery.sent' | 'delivery.retry' | 'delivery.failed', detail
-- {attempt, provider, code, detail (first 512 chars), provider_id,
-- next_attempt_at (ISO 8601 UTC), expired: true}, nulls omitted) and the
-- outcome counters, all in one statement. One row per result, in order.
CREATE FUNCTION herald.record_outcomes(owner text, results jsonb)
RETURNS TABLE (delivery_id bigint, applied boolean, state text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_bad text;
BEGIN
	IF jsonb_typeof(results) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'record_outcomes: results must be a JSON array, got %',
			coalesce(jsonb_typeof(results), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT coalesce(x->>'outcome', 'null') INTO v_bad
	  FROM jsonb_array_elements(results) AS x
	 WHERE x->>'outcome' IS NULL OR x->>'outcome' NOT IN ('delivered', 'retry', 'failed')
	    OR jsonb_typeof(x->'delivery_id') IS DISTINCT FROM 'number'
	    OR jsonb_typeof(x->'attempt') IS DISTINCT FROM 'number'
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'record_outcomes: every result needs delivery_id, attempt and an outcome of delivered, retry or failed (got outcome %)', v_bad
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	RETURN QUERY
	WITH r AS MATERIALIZED (
		SELECT x.*
		  FROM ROWS FROM (jsonb_to_recordset(results) AS (
		       delivery_id bigint, attempt int, outcome text, provider text, code text,
		       detail text, provider_id text, next_attempt_at_ms bigint, max_lifetime_s int))
		       WITH ORDINALITY AS x(delivery_id, attempt, outcome, provider, code, detail,
		                            provider_id, next_attempt_at_ms, max_lifetime_s, ord)
	), v AS MATERIALIZED (
		-- Per delivery the first result that holds the lease in this
		-- statement's snapshot (the UPDATE rechecks it on the row it
		-- locks), with the new state decided from columns that cannot
		-- change while the row is leased. Joined on the primary key
		-- only, so the row estimate stays that of results: a filter on
		-- 'dispatched' here made the planner trust stale statistics of
		-- that volatile state and loop over every leased row per result.
		SELECT x.* FROM (
			SELECT DISTINCT ON (r.delivery_id)
			       r.*, dd.channel,
			       dd.state = 'dispatched' AND dd.lease_owner = owner
			       AND dd.attempts = r.attempt AS holds,
			       t.next_at,
			       CASE WHEN r.outcome = 'delivered' THEN 'sent'
			            WHEN r.outcome = 'failed' THEN 'failed'
			            WHEN t.expired THEN 'failed'
			            ELSE 'retry_wait' END AS new_state,
			       t.expired,
			       CASE WHEN t.expired
			            THEN left('expired: gave up after ' || herald.duration_text(r.max_lifetime_s)
			                      || '; last: ' || concat_ws(' ', r.code, r.detail), 1024)
			            ELSE left(concat_ws(' ', r.code, r.detail), 1024) END AS error
			  FROM r
			  JOIN herald.deliveries AS dd ON dd.id = r.delivery_id
			 CROSS JOIN LATERAL (
			       SELECT coalesce(to_timestamp(r.next_attempt_at_ms / 1000.0), now()) AS next_at) AS n
			 CROSS JOIN LATERAL (
			       SELECT n.next_at,
			              r.outcome = 'retry' AND r.max_lifetime_s IS NOT NULL
			              AND n.next_at > coalesce(dd.requeued_at, dd.created_at)
			                              + make_interval(secs => r.max_lifetime_s) AS expired) AS t
			 ORDER BY r.delivery_id, (dd.state = 'dispatched' AND dd.lease_owner = owner
			                          AND dd.attempts = r.attempt) DESC, r.ord
		) AS x
		 WHERE x.holds
	), upd AS (
		UPDATE herald.deliveries AS d
		   SET state = v.new_state,
		       lease_owner = NULL,
		       lease_until = NULL,
		       updated_at = now(),
		       next_attempt_at = CASE WHEN v.new_state = 'retry_wait' THEN v.next_at
		                              ELSE d.next_attempt_at END,
		       last_error = CASE WHEN v.new_state = 'sent' THEN d.last_error ELSE v.error END,
		       sent_at = CASE WHEN v.new_state = 'sent' THEN now() ELSE d.sent_at END,
		       failed_at = CASE WHEN v.new_state = 'failed' THEN now() ELSE d.failed_at END,
		       provider_id = CASE WHEN v.new_state = 'sent' THEN v.provider_id
		                          ELSE d.provider_id END,
		       last_provider = v.provider,
		       last_code = v.code
		  FROM v
		 WHERE d.id = v.delivery_id
		   AND d.state = 'dispatched'
		   AND d.lease_owner = owner
		   AND d.attempts = v.attempt
		RETURNING d.id, d.message_id, d.state, v.ord, v.attempt, v.provider, v.code, v.detail,
		          v.provider_id, v.next_at, v.expired, v.channel
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, delivery_id, detail)
		SELECT 'broker:' || owner,
		       CASE upd.state WHEN 'sent' THEN 'delivery.sent'
		                      WHEN 'retry_wait' THEN 'delivery.retry'
		                      ELSE 'delivery.failed' END,
		       upd.message_id, upd.id,
		       jsonb_strip_nulls(jsonb_build_object(
		           'attempt', upd.attempt,
		           'provider', upd.provider,
		           'code', upd.code,
		           'detail', left(upd.detail, 512),
		           'provider_id', CASE WHEN upd.state = 'sent' THEN upd.provider_id END,
		           'next_attempt_at', CASE WHEN upd.state = 'retry_wait'
		               THEN to_char(upd.next_at AT TIME ZONE 'UTC',
		                            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
		           'expired', CASE WHEN upd.expired THEN true END))::text
		  FROM upd
		 ORDER BY upd.ord
	), cnt AS (
		INSERT INTO herald.outcome_counts AS c (bucket, channel, provider, outcome, shard, n)
		SELECT date_bin('10 seconds', now(), timestamptz '2000-01-01 00:00:00+00'),
		       upd.channel, coalesce(upd.provider, ''),
		       CASE upd.state WHEN 'sent' THEN 'delivered'
		                      WHEN 'retry_wait' THEN 'retried'
		                      ELSE 'failed' END AS outcome,
		       pg_backend_pid() % 8, count(*)
		  FROM upd
		 GROUP BY 1, 2, 3, 4
		    ON CONFLICT (bucket, channel, provider, outcome, shard) DO UPDATE
		   SET n = c.n + EXCLUDED.n
	)
	-- A result not applied reports the state this call left (another
	-- result for the same delivery applied) or else the current one.
	SELECT r.delivery_id, upd.id IS NOT NULL, coalesce(upd.state, same.state, cur.state)
	  FROM r
	  LEFT JOIN upd ON upd.ord = r.ord
	  LEFT JOIN upd AS same ON upd.id IS NULL AND same.id = r.delivery_id
	  LEFT JOIN herald.deliveries AS cur
	         ON upd.id IS NULL AND same.id IS NULL AND cur.id = r.delivery_id
	 ORDER BY r.ord;
END
$$;

-- ---------------------------------------------------------------------
-- Requeue
-- ---------------------------------------------------------------------

-- Put failed deliveries back to queued, due now, attempts kept (the
-- lifetime starts again at requeued_at; failed_at is cleared, last_error
-- kept): the ones in ids, or when ids is NULL every delivery that failed
-- at or after since (one of the two is required). Deliveries in any
-- other state are left alone and not returned: the caller compares.
-- One 'delivery.requeued' audit event each. The event's actor is
-- 'operator:' || session_user, the role that logged in, which the
-- database vouches for; actor (free text the caller claims, such as the
-- operating-system user running heraldctl) is kept in the detail as
-- "requested_by" and nowhere else.
CREATE FUNCTION herald.requeue(ids bigint[], since timestamptz, actor text)
RETURNS TABLE (delivery_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_ids bigint[] := ids;
BEGIN
	IF ids IS NULL AND since IS NULL THEN
		RAISE EXCEPTION 'requeue: give delivery ids or a since time'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF v_ids IS NULL THEN
		-- A separate statement so the failed_at index serves it.
		SELECT coalesce(array_agg(f.id), '{}') INTO v_ids
		  FROM herald.deliveries AS f
		 WHERE f.state = 'failed' AND f.failed_at >= since;
	END IF;

	RETURN QUERY
	WITH upd AS (
		UPDATE herald.deliveries AS d
		   SET state = 'queued',
		       next_attempt_at = now(),
		       requeued_at = now(),
		       failed_at = NULL,
		       updated_at = now()
		  FROM (SELECT f.id, f.failed_at, f.last_error
		          FROM herald.deliveries AS f
		         WHERE f.id = ANY (v_ids) AND f.state = 'failed'
		           FOR UPDATE) AS old
		 WHERE d.id = old.id
		   AND d.state = 'failed'
		RETURNING d.id, d.message_id, d.attempts, old.failed_at, old.last_error
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, delivery_id, detail)
		SELECT 'operator:' || session_user, 'delivery.requeued', upd.message_id, upd.id,
		       jsonb_strip_nulls(jsonb_build_object(
		           'attempts', upd.attempts,
		           'failed_at', to_char(upd.failed_at AT TIME ZONE 'UTC',
		                                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
		           'last_error', left(upd.last_error, 512),
		           'requested_by', nullif(requeue.actor, '')))::text
		  FROM upd
		 ORDER BY upd.id
	)
	SELECT upd.id FROM upd ORDER BY upd.id;
END
$$;

-- ---------------------------------------------------------------------
-- Views for operators (heraldctl stats, heraldctl dead)
-- ---------------------------------------------------------------------

-- Deliveries by state, channel and class. Counts every row: its cost
-- grows with the table (about 0.35 s per million deliveries).
CREATE VIEW herald.delivery_stats AS
SELECT d.state, d.channel, m.class, count(*) AS count
  FROM herald.deliveries AS d
  JOIN herald.messages AS m ON m.id = d.message_id
 GROUP BY d.state, d.channel, m.class;

-- Per channel: the longest a queued delivery has been due without being
-- claimed (queue latency; queued rows are due from intake or requeue),
-- and the oldest held delivery. Index probes only.
CREATE VIEW herald.queue_ages AS
SELECT c.channel,
       q.oldest AS oldest_queued_due_at,
       extract(epoch FROM now() - q.oldest)::double precision AS oldest_queued_age_s,
       h.oldest AS oldest_held_at,
       extract(epoch FROM now() - h.oldest)::double precision AS oldest_held_age_s
  FROM (VALUES ('email'), ('im'), ('sms')) AS c(channel)
 CROSS JOIN LATERAL (SELECT min(d.next_attempt_at) AS oldest FROM herald.deliveries AS d
                      WHERE d.channel = c.channel AND d.state = 'queued') AS q
 CROSS JOIN LATERAL (SELECT min(d.created_at) AS oldest FROM herald.deliveries AS d
                      WHERE d.channel = c.channel AND d.state = 'held') AS h;

-- Outcomes over the last 5 minutes and the last hour (ten-second buckets,
-- so a window is exact to within 10 s): for all channels together
-- (scope 'all', name ''), per channel and per provider. failure_rate is
-- the share of attempts that did not deliver, (retried + failed) /
-- (delivered + retried + failed), NULL without attempts.
CREATE VIEW herald.outcome_rates AS
WITH w(window_s) AS (VALUES (300), (3600)),
c AS (
	SELECT w.window_s, o.channel, o.provider, o.outcome, o.n
	  FROM w JOIN herald.outcome_counts AS o
	    ON o.bucket > now() - make_interval(secs => w.window_s)
), g AS (
	SELECT c.window_s,
	       CASE WHEN grouping(c.channel) = 0 THEN 'channel'
	            WHEN grouping(c.provider) = 0 THEN 'provider'
	            ELSE 'all' END AS scope,
	       coalesce(c.channel, c.provider, '') AS name,
	       coalesce(sum(c.n) FILTER (WHERE c.outcome = 'delivered'), 0)::bigint AS delivered,
	       coalesce(sum(c.n) FILTER (WHERE c.outcome = 'retried'), 0)::bigint AS retried,
	       coalesce(sum(c.n) FILTER (WHERE c.outcome = 'failed'), 0)::bigint AS failed
	  FROM c
	 GROUP BY GROUPING SETS ((c.window_s), (c.window_s, c.channel), (c.window_s, c.provider))
)
SELECT w.window_s, coalesce(g.scope, 'all') AS scope, coalesce(g.name, '') AS name,
       coalesce(g.delivered, 0) AS delivered, coalesce(g.retried, 0) AS retried,
       coalesce(g.failed, 0) AS failed,
       CASE WHEN coalesce(g.delivered + g.retried + g.failed, 0) > 0
            THEN round((g.retried + g.failed)::numeric / (g.delivered + g.retried + g.failed), 4)
       END AS failure_rate
  FROM w LEFT JOIN g ON g.window_s = w.window_s;

-- Workers some broker reported in the last 10 seconds.
CREATE VIEW herald.live_workers AS
SELECT w.name, w.broker, w.channels, w.credit, w.connected_at, w.last_seen_at
  FROM herald.workers AS w
 WHERE w.last_seen_at > now() - interval '10 seconds';

-- Failed deliveries with what an operator needs to decide on a requeue.
CREATE VIEW herald.dead_letters AS
SELECT d.id AS delivery_id, d.message_id, d.channel, d.recipient, d.kind, d.attempts,
       d.last_error, d.last_provider, d.last_code, d.failed_at, m.class, m.sender, m.subject
  FROM herald.deliveries AS d
  JOIN herald.messages AS m ON m.id = d.message_id
 WHERE d.state = 'failed';

-- ---------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------

REVOKE ALL ON herald.outcome_counts, herald.workers, herald.delivery_stats, herald.queue_ages,
	herald.outcome_rates, herald.live_workers, herald.dead_letters FROM PUBLIC;
REVOKE ALL ON FUNCTION herald.workers_update(text, jsonb),
	herald.claim_deliveries(text, text[], int, int),
	herald.message_contents(bigint[]),
	herald.record_outcomes(text, jsonb),
	herald.duration_text(int),
	herald.requeue(bigint[], timestamptz, text) FROM PUBLIC;

-- The broker reads everything (as in 001) and writes through these.
GRANT SELECT ON herald.outcome_counts, herald.workers, herald.delivery_stats, herald.queue_ages,
	herald.outcome_rates, herald.live_workers, herald.dead_letters TO herald_broker;
GRANT EXECUTE ON FUNCTION herald.claim_deliveries(text, text[], int, int),
	herald.message_contents(bigint[]),
	herald.record_outcomes(text, jsonb),
	herald.workers_update(text, jsonb) TO herald_broker;

-- Operators watch and requeue; they change nothing else.
GRANT SELECT ON herald.outcome_counts, herald.workers, herald.delivery_stats, herald.queue_ages,
	herald.outcome_rates, herald.live_workers, herald.dead_letters TO herald_operator;
GRANT EXECUTE ON FUNCTION herald.requeue(bigint[], timestamptz, text) TO herald_operator;

GRANT EXECUTE ON FUNCTION herald.duration_text(int)
	TO herald_broker, herald_operator, herald_approver;
