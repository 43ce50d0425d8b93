-- NAME
--	010_claim_endpoint - a claimed IM delivery carries its group's
--	registered endpoint
-- DESCRIPTION
--	POLICY I3's registry (sql/004, herald.im_groups) names, for every
--	work group, the endpoint: the worker's configuration entry that
--	holds the webhook URL and secret. Until now the worker ignored it
--	and looked the group up by its own name, so a group registered with
--	another endpoint (several groups sharing one webhook, a group
--	renamed, a webhook replaced) failed as "unknown-group". The claim
--	now returns the endpoint of an active registered group for each IM
--	delivery (NULL otherwise: the worker then looks the recipient up by
--	name, as before) and heraldd passes it in the JOB (PROTOCOL 2,
--	"endpoint"). Read at claim time, so a registry change applies to
--	the next attempt.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- CHANGES TO EARLIER OBJECTS
--	herald.claim_deliveries(text, text[], int, int): one more result
--	column, endpoint (so dropped and created again, with its grant);
--	otherwise as in 002.

DROP FUNCTION herald.claim_deliveries(text, text[], int, int);

-- (As in 002, plus: endpoint is the registered endpoint of an IM
-- delivery's active work group, else NULL.)
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
               kind text, channel text, class text, endpoint text)
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
	SELECT upd.id, upd.message_id, upd.attempts, upd.recipient, upd.kind, upd.channel, m.class,
	       g.endpoint
	  FROM upd
	  JOIN herald.messages AS m ON m.id = upd.message_id
	  LEFT JOIN herald.im_groups AS g
	         ON upd.channel = 'im' AND g.name = upd.recipient AND g.active
	 ORDER BY upd.next_attempt_at, upd.id;
END
$$;

REVOKE ALL ON FUNCTION herald.claim_deliveries(text, text[], int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION herald.claim_deliveries(text, text[], int, int) TO herald_broker;
