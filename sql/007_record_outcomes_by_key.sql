-- NAME
--	007_record_outcomes_by_key - herald.record_outcomes() without a join
--	to deliveries, so its plan cannot go stale
-- DESCRIPTION
--	Replaces 006's herald.record_outcomes() with the same contract, the
--	same rules, the same error messages, the same audit events (one
--	INSERT, so one audit link per call) and the same outcome counters.
--	Only the way it reaches the rows changes. It owns nothing else.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- WHY (bench/run.sh approval and email on the 2-core VM,
-- pg_stat_statements and auto_explain of heraldd's session)
--	006 joined the results to deliveries, planned once per session
--	(force_generic_plan). heraldd makes its first call early, while
--	deliveries holds a few hundred rows; for that size the planner
--	rightly picks sequential scans and hash joins, and the plan was kept
--	for the life of the session while the table grew to tens of
--	thousands of rows. Every call then read the whole table three times:
--	8.4 ms per call for ~7 results, 12 of the 14 seconds of the approval
--	phase, the "bad mode" of that benchmark (540-710 approvals/s against
--	850-905 when the first plan happened to be good). Forbidding hash
--	joins and sequential scans does not help: for a small table a nested
--	loop driven by a full index scan of deliveries is still the cheaper
--	join on paper. Any join whose plan depends on the table's size at
--	the first call is the wrong shape for a statement that runs for
--	months in one session.
--	Now nothing joins deliveries. The results become one JSON object
--	keyed "delivery_id:attempt" (the first result of each key, with its
--	ordinal), and one UPDATE reads "id = ANY (ids)", taking each row's
--	new values from that object by the row's own id and attempt. The
--	final states are read by a correlated sub-select on the key. The only
--	index paths are deliveries_pkey (state is compared with a variable,
--	a parameter of the generic plan, so no partial index on state can
--	stand in for the key), and sequential scans are off while these
--	statements run (only these: the audit seal's trigger keeps its own
--	choice). So the plan is the same whatever the table's size when it
--	was made. A loop of one UPDATE per result was tried first: robust,
--	but ~40% slower than this on 1,000-result batches.
--	Measured: see the README (approval and email benchmarks).
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
	v_seqscan  text := current_setting('enable_seqscan');
	v_bad      text;
	-- "delivery_id:attempt" -> the first result with that key, plus its
	-- "ord"; only such a result can hold the lease.
	v_first    jsonb;
	v_ids      bigint[];
	-- The applied results, in order of ord.
	u_ord      bigint[];
	u_did      bigint[];
	u_mid      bigint[];
	u_state    text[];
	u_detail   text[];
	u_channel  text[];
	u_provider text[];
	v_applied  boolean[];
	v_ord      bigint;
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

	-- Every result's fields must have their types, applied or not, as in
	-- 006 (which read them all): a malformed batch is refused whole.
	PERFORM count(*)
	   FROM jsonb_to_recordset(results) AS x(
	        delivery_id bigint, attempt int, outcome text, provider text, code text,
	        detail text, provider_id text, next_attempt_at_ms bigint, max_lifetime_s int);

	SELECT jsonb_object_agg(f.id || ':' || f.attempt, f.e || jsonb_build_object('ord', f.ord)),
	       array_agg(f.id)
	  INTO v_first, v_ids
	  FROM (SELECT DISTINCT ON (r.id, r.attempt) r.*
	          FROM (SELECT (x.e->>'delivery_id')::bigint AS id, (x.e->>'attempt')::int AS attempt,
	                       x.e, x.ord
	                  FROM jsonb_array_elements(results) WITH ORDINALITY AS x(e, ord)) AS r
	         ORDER BY r.id, r.attempt, r.ord) AS f;

	-- deliveries is read by primary key only (see WHY); sequential scans
	-- are off for these statements and back on before the audit seal,
	-- whose chain heads are a few rows best read by a scan.
	PERFORM set_config('enable_seqscan', 'off', true);
	WITH upd AS (
		-- The lease is checked on each row this locks; the result applied
		-- is the first one with the row's id and current attempt.
		UPDATE herald.deliveries AS d
		   SET (state, last_error, failed_at, next_attempt_at, sent_at, provider_id,
		        last_provider, last_code) = (
		           SELECT CASE WHEN r.outcome = 'delivered' THEN 'sent'
		                       WHEN r.outcome = 'failed' OR t.expired THEN 'failed'
		                       ELSE 'retry_wait' END,
		                  CASE WHEN r.outcome = 'delivered' THEN d.last_error
		                       WHEN t.expired
		                       THEN left('expired: gave up after '
		                                 || herald.duration_text(r.max_lifetime_s)
		                                 || '; last: ' || concat_ws(' ', r.code, r.detail), 1024)
		                       ELSE left(concat_ws(' ', r.code, r.detail), 1024) END,
		                  CASE WHEN r.outcome = 'failed' OR t.expired THEN now()
		                       ELSE d.failed_at END,
		                  CASE WHEN r.outcome = 'retry' AND NOT t.expired THEN t.next_at
		                       ELSE d.next_attempt_at END,
		                  CASE WHEN r.outcome = 'delivered' THEN now() ELSE d.sent_at END,
		                  CASE WHEN r.outcome = 'delivered' THEN r.provider_id
		                       ELSE d.provider_id END,
		                  r.provider,
		                  r.code
		             FROM jsonb_to_record(v_first -> (d.id || ':' || d.attempts)) AS r(
		                  outcome text, provider text, code text, detail text, provider_id text,
		                  next_attempt_at_ms bigint, max_lifetime_s int)
		            CROSS JOIN LATERAL (
		                  SELECT coalesce(to_timestamp(r.next_attempt_at_ms / 1000.0), now())
		                         AS next_at) AS n
		            CROSS JOIN LATERAL (
		                  SELECT n.next_at,
		                         r.outcome = 'retry' AND r.max_lifetime_s IS NOT NULL
		                         AND n.next_at > coalesce(d.requeued_at, d.created_at)
		                                         + make_interval(secs => r.max_lifetime_s)
		                         AS expired) AS t),
		       lease_owner = NULL,
		       lease_until = NULL,
		       updated_at = now()
		 WHERE d.id = ANY (v_ids)
		   AND d.state = v_dispatched
		   AND d.lease_owner = owner
		   AND v_first ? (d.id || ':' || d.attempts)
		RETURNING (v_first -> (d.id || ':' || d.attempts) ->> 'ord')::bigint AS ord,
		          d.id, d.message_id, d.state, d.channel, coalesce(d.last_provider, '') AS provider,
		          jsonb_strip_nulls(jsonb_build_object(
		              'attempt', d.attempts,
		              'provider', d.last_provider,
		              'code', d.last_code,
		              'detail', left(v_first -> (d.id || ':' || d.attempts) ->> 'detail', 512),
		              'provider_id', CASE WHEN d.state = 'sent' THEN d.provider_id END,
		              'next_attempt_at', CASE WHEN d.state = 'retry_wait'
		                  THEN to_char(d.next_attempt_at AT TIME ZONE 'UTC',
		                               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
		              'expired', CASE WHEN d.state = 'failed'
		                               AND v_first -> (d.id || ':' || d.attempts) ->> 'outcome' = 'retry'
		                              THEN true END))::text AS detail
	)
	SELECT array_agg(upd.ord ORDER BY upd.ord), array_agg(upd.id ORDER BY upd.ord),
	       array_agg(upd.message_id ORDER BY upd.ord), array_agg(upd.state ORDER BY upd.ord),
	       array_agg(upd.detail ORDER BY upd.ord), array_agg(upd.channel ORDER BY upd.ord),
	       array_agg(upd.provider ORDER BY upd.ord)
	  INTO u_ord, u_did, u_mid, u_state, u_detail, u_channel, u_provider
	  FROM upd;

	-- Indexed by ordinal, so a look-up is O(1).
	v_applied := array_fill(false, ARRAY[jsonb_array_length(results)]);
	FOREACH v_ord IN ARRAY coalesce(u_ord, '{}') LOOP
		v_applied[v_ord] := true;
	END LOOP;
	-- One row per result, in order. A new statement, so a result not
	-- applied reports the state this call left (another result for the
	-- same delivery applied; the row stays locked until commit), else
	-- the current one, NULL when there is no such delivery.
	RETURN QUERY
	SELECT x.id, v_applied[x.ord],
	       (SELECT d.state FROM herald.deliveries AS d WHERE d.id = x.id)
	  FROM (SELECT (e->>'delivery_id')::bigint AS id, ord
	          FROM jsonb_array_elements(results) WITH ORDINALITY AS j(e, ord)) AS x
	 ORDER BY x.ord;
	PERFORM set_config('enable_seqscan', v_seqscan, true);

	IF u_ord IS NULL THEN
		RETURN;
	END IF;
	-- One INSERT for all events, in the order of the results: one audit
	-- link per call.
	INSERT INTO herald.audit_events (actor, kind, message_id, delivery_id, detail)
	SELECT 'broker:' || owner,
	       CASE e.state WHEN 'sent' THEN 'delivery.sent'
	                    WHEN 'retry_wait' THEN 'delivery.retry'
	                    ELSE 'delivery.failed' END,
	       e.mid, e.did, e.detail
	  FROM unnest(u_state, u_mid, u_did, u_detail) WITH ORDINALITY AS e(state, mid, did, detail, k)
	 ORDER BY e.k;
	INSERT INTO herald.outcome_counts AS c (bucket, channel, provider, outcome, shard, n)
	SELECT date_bin('10 seconds', now(), timestamptz '2000-01-01 00:00:00+00'),
	       e.channel, e.provider,
	       CASE e.state WHEN 'sent' THEN 'delivered'
	                    WHEN 'retry_wait' THEN 'retried'
	                    ELSE 'failed' END,
	       pg_backend_pid() % 8, count(*)
	  FROM unnest(u_state, u_channel, u_provider) AS e(state, channel, provider)
	 GROUP BY 1, 2, 3, 4
	    ON CONFLICT (bucket, channel, provider, outcome, shard) DO UPDATE
	   SET n = c.n + EXCLUDED.n;
END
$$;

-- CREATE OR REPLACE keeps the grants; restated so this file says them.
REVOKE ALL ON FUNCTION herald.record_outcomes(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION herald.record_outcomes(text, jsonb) TO herald_broker;
