-- NAME
--	007_record_outcomes_rows - herald.record_outcomes() as one key
--	look-up per result, with a plan that cannot go stale
-- DESCRIPTION
--	Replaces 006's herald.record_outcomes() with the same contract, the
--	same rules, the same error messages, the same audit events (one
--	INSERT, so one audit link per call) and the same outcome counters.
--	Only the way it reaches the rows changes. It owns nothing else.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- WHY (bench/run.sh approval on the 2-core VM, pg_stat_statements and
-- auto_explain of heraldd's session)
--	006 joined the results to deliveries in one statement, planned once
--	per session (force_generic_plan). heraldd makes its first call
--	early, while deliveries holds a few hundred rows; for that size the
--	planner rightly picks sequential scans and hash joins, and the plan
--	was kept for the life of the session while the table grew to tens
--	of thousands of rows. Every call then read the whole table three
--	times: 8.4 ms per call for ~7 results, 12 of the 14 seconds of the
--	approval phase, and the "bad mode" of that benchmark (540-710
--	approvals/s against 850-905 when the plan happened to be good).
--	Forbidding hash joins and sequential scans did not help: for a small
--	table a nested loop driven by a full index scan of deliveries is
--	still the cheaper plan on paper. A join whose plan depends on the
--	table's size at the first call is the wrong shape for a statement
--	that runs for months in one session.
--	Now each result is one UPDATE of one row by primary key. Its only
--	index path is deliveries_pkey: state is compared with a variable
--	(a parameter in the generic plan), so no partial index on state can
--	stand in for the key; and enable_seqscan is off while those
--	statements run (only those: the audit seal's trigger keeps its own
--	choice), which removes the sequential scan a tiny table would
--	otherwise win with. So the plan is the same whatever the table's
--	size when it was made. The audit events and the counters stay one
--	statement each per call.
--	Measured on the approval benchmark: see the README.
-- CHANGES TO EARLIER OBJECTS
--	herald.record_outcomes(text, jsonb): same signature, result, owner
--	and grants.

-- ---------------------------------------------------------------------
-- Recording outcomes (replaces 006's record_outcomes; same contract)
-- ---------------------------------------------------------------------

-- Apply the workers' results for owner's leases. results is a JSON array
-- of {"delivery_id", "attempt", "outcome": "delivered" | "retry" |
-- "failed", "provider", "code", "detail", "provider_id",
-- "next_attempt_at_ms" (retry: unix ms; null = now), "max_lifetime_s"}.
-- A result applies only while its delivery is dispatched, leased by
-- owner for that attempt; otherwise the lease was lost (expired and
-- reclaimed, or another broker owns it) and nothing is written
-- (applied = false, state = the state another result of this call left,
-- else the delivery's current state, NULL when it does not exist). A
-- delivery named twice is applied once: the first of its results that
-- holds the lease wins.
--	delivered -> sent: sent_at, provider_id
--	retry     -> retry_wait at next_attempt_at, last_error = code detail;
--	             but failed ('expired: gave up after ...') when that time is
--	             past the delivery's lifetime: max_lifetime_s from
--	             created_at, or from requeued_at for a requeued delivery
--	failed    -> failed: failed_at, last_error
-- The lease is cleared. One audit event per applied result
-- ('delivery.sent' | 'delivery.retry' | 'delivery.failed', detail
-- {attempt, provider, code, detail (first 512 chars), provider_id,
-- next_attempt_at (ISO 8601 UTC), expired: true}, nulls omitted), in
-- the order of the results, and the outcome counters. One row per
-- result, in order.
CREATE OR REPLACE FUNCTION herald.record_outcomes(owner text, results jsonb)
RETURNS TABLE (delivery_id bigint, applied boolean, state text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = herald, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
	-- A variable, not the literal: see WHY.
	v_dispatched constant text := 'dispatched';
	v_bad     text;
	v_r       record;
	v_next    timestamptz;
	v_mid     bigint;
	v_channel text;
	v_expired boolean;
	-- The applied results, in order: their events and counters.
	e_kind    text[] := '{}';
	e_mid     bigint[] := '{}';
	e_did     bigint[] := '{}';
	e_detail  text[] := '{}';
	e_channel text[] := '{}';
	e_provider text[] := '{}';
	-- One per result, in order: state is NULL where not applied.
	o_id      bigint[] := '{}';
	o_applied boolean[] := '{}';
	o_state   text[] := '{}';
	v_state   text;
	v_applied boolean;
	v_seqscan text := current_setting('enable_seqscan');
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

	-- The reads of deliveries below are by primary key: the only thing a
	-- sequential scan could win is a first plan made on a tiny table, kept
	-- for the session. Off for them only, not for the audit seal's trigger
	-- (its chain heads are a few rows that a scan of their index reads
	-- slower than the table).
	PERFORM set_config('enable_seqscan', 'off', true);
	FOR v_r IN
		SELECT x.*
		  FROM jsonb_to_recordset(results) AS x(
		       delivery_id bigint, attempt int, outcome text, provider text, code text,
		       detail text, provider_id text, next_attempt_at_ms bigint, max_lifetime_s int)
	LOOP
		v_next := coalesce(to_timestamp(v_r.next_attempt_at_ms / 1000.0), now());
		-- One row by primary key; the lease is checked on the row this
		-- locks. A result for a delivery this call already moved finds it
		-- no longer dispatched, so the first result that holds the lease wins.
		UPDATE herald.deliveries AS d
		   SET (state, last_error, failed_at, next_attempt_at) = (
		           SELECT CASE WHEN v_r.outcome = 'delivered' THEN 'sent'
		                       WHEN v_r.outcome = 'failed' OR t.expired THEN 'failed'
		                       ELSE 'retry_wait' END,
		                  CASE WHEN v_r.outcome = 'delivered' THEN d.last_error
		                       WHEN t.expired
		                       THEN left('expired: gave up after '
		                                 || herald.duration_text(v_r.max_lifetime_s)
		                                 || '; last: ' || concat_ws(' ', v_r.code, v_r.detail), 1024)
		                       ELSE left(concat_ws(' ', v_r.code, v_r.detail), 1024) END,
		                  CASE WHEN v_r.outcome = 'failed' OR t.expired THEN now()
		                       ELSE d.failed_at END,
		                  CASE WHEN v_r.outcome = 'retry' AND NOT t.expired THEN v_next
		                       ELSE d.next_attempt_at END
		             FROM (SELECT v_r.outcome = 'retry' AND v_r.max_lifetime_s IS NOT NULL
		                          AND v_next > coalesce(d.requeued_at, d.created_at)
		                                       + make_interval(secs => v_r.max_lifetime_s)
		                          AS expired) AS t),
		       lease_owner = NULL,
		       lease_until = NULL,
		       updated_at = now(),
		       sent_at = CASE WHEN v_r.outcome = 'delivered' THEN now() ELSE d.sent_at END,
		       provider_id = CASE WHEN v_r.outcome = 'delivered' THEN v_r.provider_id
		                          ELSE d.provider_id END,
		       last_provider = v_r.provider,
		       last_code = v_r.code
		 WHERE d.id = v_r.delivery_id
		   AND d.state = v_dispatched
		   AND d.lease_owner = owner
		   AND d.attempts = v_r.attempt
		RETURNING d.state, d.message_id, d.channel INTO v_state, v_mid, v_channel;

		v_applied := FOUND;
		o_id := o_id || v_r.delivery_id;
		o_applied := o_applied || v_applied;
		o_state := o_state || v_state;
		IF v_applied THEN
			-- A retry that became failed is the expired case.
			v_expired := v_r.outcome = 'retry' AND v_state = 'failed';
			e_kind := e_kind || CASE v_state WHEN 'sent' THEN 'delivery.sent'
			                                 WHEN 'retry_wait' THEN 'delivery.retry'
			                                 ELSE 'delivery.failed' END;
			e_mid := e_mid || v_mid;
			e_did := e_did || v_r.delivery_id;
			e_detail := e_detail || jsonb_strip_nulls(jsonb_build_object(
			    'attempt', v_r.attempt,
			    'provider', v_r.provider,
			    'code', v_r.code,
			    'detail', left(v_r.detail, 512),
			    'provider_id', CASE WHEN v_state = 'sent' THEN v_r.provider_id END,
			    'next_attempt_at', CASE WHEN v_state = 'retry_wait'
			        THEN to_char(v_next AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
			    'expired', CASE WHEN v_expired THEN true END))::text;
			e_channel := e_channel || v_channel;
			e_provider := e_provider || coalesce(v_r.provider, '');
		END IF;
	END LOOP;

	-- A result not applied reports the state this call left (another
	-- result for the same delivery applied; the row stays locked until
	-- commit), else the current one, NULL when there is no such delivery.
	SELECT array_agg(CASE WHEN o.applied THEN o.state
	                      ELSE (SELECT d.state FROM herald.deliveries AS d WHERE d.id = o.id) END
	                 ORDER BY o.ord)
	  INTO o_state
	  FROM unnest(o_id, o_applied, o_state) WITH ORDINALITY AS o(id, applied, state, ord);
	PERFORM set_config('enable_seqscan', v_seqscan, true);

	IF cardinality(e_kind) > 0 THEN
		-- One INSERT for all events: one audit link per call.
		INSERT INTO herald.audit_events (actor, kind, message_id, delivery_id, detail)
		SELECT 'broker:' || owner, e.kind, e.mid, e.did, e.detail
		  FROM unnest(e_kind, e_mid, e_did, e_detail) WITH ORDINALITY AS e(kind, mid, did, detail, ord)
		 ORDER BY e.ord;
		INSERT INTO herald.outcome_counts AS c (bucket, channel, provider, outcome, shard, n)
		SELECT date_bin('10 seconds', now(), timestamptz '2000-01-01 00:00:00+00'),
		       e.channel, e.provider,
		       CASE e.kind WHEN 'delivery.sent' THEN 'delivered'
		                   WHEN 'delivery.retry' THEN 'retried'
		                   ELSE 'failed' END,
		       pg_backend_pid() % 8, count(*)
		  FROM unnest(e_kind, e_channel, e_provider) AS e(kind, channel, provider)
		 GROUP BY 1, 2, 3, 4
		    ON CONFLICT (bucket, channel, provider, outcome, shard) DO UPDATE
		   SET n = c.n + EXCLUDED.n;
	END IF;

	RETURN QUERY
	SELECT o.id, o.applied, o.state
	  FROM unnest(o_id, o_applied, o_state) WITH ORDINALITY AS o(id, applied, state, ord)
	 ORDER BY o.ord;
END
$$;

-- CREATE OR REPLACE keeps the grants; restated so this file says them.
REVOKE ALL ON FUNCTION herald.record_outcomes(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION herald.record_outcomes(text, jsonb) TO herald_broker;
