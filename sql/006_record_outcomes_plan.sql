-- NAME
--	006_record_outcomes_plan - herald.record_outcomes() with a plan that
--	stays index look-ups from 1 to 2,000 results
-- DESCRIPTION
--	Replaces 002's herald.record_outcomes() with the same contract, the
--	same rules, the same error messages, the same audit events (one
--	INSERT, so one audit link per call) and the same outcome counters;
--	only the plan changes. It owns nothing else.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- WHY (measured on the 2-core VM, private cluster, 250,000 deliveries of
-- which 6,000 leased by the caller; one session, call in a rolled-back
-- transaction, median of 8 calls)
--	jsonb_to_recordset() is always estimated at 100 rows, whatever the
--	batch. 002 built everything in one statement and:
--	  - the UPDATE joined deliveries on "state = 'dispatched'", which
--	    the partial index deliveries_lease_idx (or, as seen with other
--	    statistics, a sequential scan) matched: every call read every
--	    leased row, not only the ones it was given;
--	  - the result joined the UPDATE's output to itself per result
--	    (the "another result applied" case), a nested loop over a CTE
--	    without an index: results x applied rows, 3.6 million
--	    comparisons for 2,000 results.
--	  1 result 2.2 ms, 100 results 5.0 ms, 2,000 results 204 ms.
--	Now:
--	  - the UPDATE compares state with the value the look-up saw
--	    (always 'dispatched' for a row it keeps) rather than with the
--	    literal, so no partial index on state can serve it and the only
--	    path left is the primary key, once per result; the row is still
--	    rechecked after it is locked, as before;
--	  - the applied results' ordinals come back as an array, made into
--	    a bool array indexed by ordinal (O(1) per result), and a second
--	    statement reads each result's delivery by primary key. It sees
--	    this call's own updates, so its state is what the old self-join
--	    computed: the state this call left (the rows are locked until
--	    commit), else the current one;
--	  - plan_cache_mode = force_generic_plan: no estimate here depends on
--	    the arguments (jsonb_to_recordset is 100 rows whatever it is
--	    given, owner matches no index), so the plan is made once per
--	    session (the default planned the first five calls of each
--	    session, ~0.75 ms each). The setting also holds in the audit
--	    seal, whose statements are key look-ups and inserts.
--	  1 result 0.4 ms, 100 results 2.6 ms, 2,000 results 43 ms (the audit
--	  events' insert, their seal and foreign-key checks ~28 ms of it);
--	  every deliveries access an index scan of deliveries_pkey, one per
--	  result, whatever the statistics say about 'dispatched'.
-- CHANGES TO EARLIER OBJECTS
--	herald.record_outcomes(text, jsonb): same signature, result, owner
--	and grants.

-- ---------------------------------------------------------------------
-- Recording outcomes (replaces 002's record_outcomes; same contract)
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
-- next_attempt_at (ISO 8601 UTC), expired: true}, nulls omitted) and the
-- outcome counters, all in one statement. One row per result, in order.
CREATE OR REPLACE FUNCTION herald.record_outcomes(owner text, results jsonb)
RETURNS TABLE (delivery_id bigint, applied boolean, state text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = herald, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
	v_bad text;
	v_ords bigint[];
	v_ord bigint;
	v_applied boolean[];
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
			       r.*, dd.channel, dd.state AS seen_state,
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
		   -- seen_state is 'dispatched' (v keeps only rows that hold the
		   -- lease); compared as a value, not the literal, so that no
		   -- partial index on state can stand in for the primary key.
		   AND d.state = v.seen_state
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
	SELECT coalesce(array_agg(upd.ord), '{}') INTO v_ords FROM upd;

	-- Indexed by ordinal, without NULLs, so a look-up is O(1): a join of
	-- the results with the applied ones would be planned for 100 rows.
	v_applied := array_fill(false, ARRAY[jsonb_array_length(results)]);
	FOREACH v_ord IN ARRAY v_ords LOOP
		v_applied[v_ord] := true;
	END LOOP;

	-- A new snapshot that sees this call's updates: a result not applied
	-- reports the state this call left (another result for the same
	-- delivery applied; that row stays locked until commit) or else the
	-- current one.
	RETURN QUERY
	SELECT x.delivery_id, v_applied[x.ord], cur.state
	  FROM ROWS FROM (jsonb_to_recordset(results) AS (delivery_id bigint))
	       WITH ORDINALITY AS x(delivery_id, ord)
	  LEFT JOIN herald.deliveries AS cur ON cur.id = x.delivery_id
	 ORDER BY x.ord;
END
$$;

-- CREATE OR REPLACE keeps the grants; restated so this file says them.
REVOKE ALL ON FUNCTION herald.record_outcomes(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION herald.record_outcomes(text, jsonb) TO herald_broker;
