-- NAME
--	008_approve_plans - herald.approve() writes by key, never through a
--	partial index of every pending request or held delivery
-- DESCRIPTION
--	Replaces 005's herald.approve() with the same contract, rules, error
--	messages, audit events and NOTIFY. Two comparisons change, nothing
--	else. It owns nothing else.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- WHY (bench/run.sh approval on the 2-core VM, auto_explain with
-- log_analyze of the approvers' sessions)
--	approve()'s last statement updated "approval_requests WHERE id =
--	ANY (ids) AND state = 'pending'" and "deliveries WHERE message_id =
--	m AND state = 'held'". The literal states let the planner use the
--	partial indexes approval_requests_pending_due_idx (WHERE state =
--	'pending') and deliveries_held_idx (WHERE state = 'held'), and the
--	generic plan ANDed a bitmap of the whole partial index with the key
--	look-up: each approval read every pending request and every held
--	delivery (10,000 of them in the benchmark, 0.2 ms per approval and
--	growing with the backlog, exactly when approvers are busiest).
--	Compared with constants held in variables, the states are
--	parameters of the generic plan, no partial index predicate can be
--	proven, and the only paths left are approval_requests_pkey and
--	deliveries_message_id_idx, one key each. The state is still checked
--	on every row.
-- CHANGES TO EARLIER OBJECTS
--	herald.approve(bigint, text): same signature, result, owner and
--	grants.

-- ---------------------------------------------------------------------
-- Deciding (replaces 005's approve; same contract)
-- ---------------------------------------------------------------------

-- Approve message_id as the caller: the active staff member whose db_role
-- is session_user, never the sender, entitled to the message's pending
-- requests at the lowest level they may decide (head of the request's
-- department for level 1, senior leadership for level 2), no lower level
-- of the same kind still pending, not the approver of that lower level,
-- not past due. When no request of the message is pending any more its
-- held deliveries are queued, due at greatest(now(), next_attempt_at),
-- with 'message.released' and NOTIFY herald_released '<message_id>' in
-- this transaction; when a level 2 request becomes actionable the
-- seniors are notified. One row per request approved.
CREATE OR REPLACE FUNCTION herald.approve(message_id bigint, comment text DEFAULT NULL)
RETURNS TABLE (request_id bigint, kind text, level int, released boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = herald, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
	v_mid      bigint := approve.message_id;
	v_comment  text := nullif(btrim(approve.comment), '');
	v_addr     text;
	v_roles    text[];
	v_sender   text;
	v_class    text;
	v_states   text;
	v_low_role text;
	v_low_dept text;
	v_level    int;
	v_ids      bigint[];
	v_due      timestamptz;
	v_lower    boolean;
	v_own_low  boolean;
	v_next     bigint[];
	v_released boolean;
	-- States as variables, not literals: see WHY.
	v_pending  constant text := 'pending';
	v_held     constant text := 'held';
BEGIN
	-- 1. Who calls: decided by the database from the login, never an argument.
	SELECT s.address, s.roles INTO v_addr, v_roles
	  FROM herald.staff AS s WHERE s.db_role = session_user AND s.active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'you are not registered as staff (login role %)', session_user
			USING ERRCODE = 'insufficient_privilege';
	END IF;

	-- 2. Every transition of a message's approvals locks the message first.
	SELECT m.sender, m.class INTO v_sender, v_class
	  FROM herald.messages AS m WHERE m.id = v_mid FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'message % does not exist', v_mid USING ERRCODE = 'no_data_found';
	END IF;
	IF lower(v_sender) = v_addr THEN
		RAISE EXCEPTION 'you cannot approve your own message'
			USING ERRCODE = 'insufficient_privilege';
	END IF;

	-- 3. A new statement, so it reads what was committed before the lock
	-- was granted. mine = pending and the caller is entitled to it.
	WITH r AS MATERIALIZED (
		SELECT r.id, r.kind, r.level, r.state, r.due_at, r.decided_by, r.approver_role,
		       r.department,
		       r.state = 'pending'
		       AND CASE r.approver_role WHEN 'dept_head' THEN d.head IS NOT DISTINCT FROM v_addr
		                                ELSE 'senior' = ANY (v_roles) END AS mine
		  FROM herald.approval_requests AS r
		  LEFT JOIN herald.departments AS d ON d.name = r.department
		 WHERE r.message_id = v_mid
	), lv AS (
		SELECT min(r.level) AS level FROM r WHERE r.mine
	), ids AS (
		SELECT r.* FROM r, lv WHERE r.mine AND r.level = lv.level
	)
	SELECT (SELECT string_agg(DISTINCT r.state, ', ') FROM r),
	       lo.approver_role, lo.department, lv.level,
	       (SELECT array_agg(ids.id ORDER BY ids.id) FROM ids),
	       (SELECT min(ids.due_at) FROM ids),
	       EXISTS (SELECT 1 FROM ids, r AS l
	                WHERE l.kind = ids.kind AND l.level < ids.level AND l.state = 'pending'),
	       EXISTS (SELECT 1 FROM ids, r AS l
	                WHERE l.kind = ids.kind AND l.level < ids.level AND l.decided_by = v_addr),
	       (SELECT coalesce(array_agg(r.id ORDER BY r.id), '{}') FROM r
	         WHERE r.state = 'pending' AND r.id <> ALL (SELECT ids.id FROM ids))
	  INTO v_states, v_low_role, v_low_dept, v_level, v_ids, v_due, v_lower, v_own_low, v_next
	  FROM lv
	  LEFT JOIN LATERAL (SELECT r.approver_role, r.department FROM r WHERE r.state = 'pending'
	                      ORDER BY r.level, r.kind LIMIT 1) AS lo ON true;

	IF v_low_role IS NULL THEN
		IF v_states IS NULL THEN
			RAISE EXCEPTION 'message % is not held for approval (class %)', v_mid, v_class;
		END IF;
		RAISE EXCEPTION 'message % is not awaiting approval (its requests are %)', v_mid, v_states;
	END IF;
	IF v_level IS NULL THEN
		IF v_low_role = 'dept_head' THEN
			RAISE EXCEPTION 'you are not the head of %', coalesce(v_low_dept, '(no department)')
				USING ERRCODE = 'insufficient_privilege';
		END IF;
		RAISE EXCEPTION 'you are not senior leadership' USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF v_lower THEN
		RAISE EXCEPTION 'level 1 not yet approved'
			USING DETAIL = format('message %s waits for its department head first', v_mid);
	END IF;
	IF v_own_low THEN
		RAISE EXCEPTION 'you approved level 1 of message %; level 2 needs somebody else', v_mid
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF v_due < now() THEN
		RAISE EXCEPTION 'expired at %', herald.time_text(v_due);
	END IF;
	v_released := cardinality(v_next) = 0;

	-- 4. All writes and all audit events of the call: one statement, one link.
	RETURN QUERY
	WITH upd AS (
		UPDATE herald.approval_requests AS r
		   SET state = 'approved', decided_by = v_addr, decided_at = now(), comment = v_comment
		 WHERE r.id = ANY (v_ids) AND r.state = v_pending
		RETURNING r.id, r.message_id, r.kind, r.level, r.approver_role, r.department, r.comment
	), rel AS (
		UPDATE herald.deliveries AS d
		   SET state = 'queued', next_attempt_at = greatest(now(), d.next_attempt_at),
		       updated_at = now()
		 WHERE v_released AND d.message_id = v_mid AND d.state = v_held
		RETURNING d.id
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, detail)
		SELECT 'approver:' || session_user, e.kind, e.message_id, e.detail
		  FROM (SELECT 1 AS part, upd.id AS rid, 'approval.approved' AS kind, upd.message_id,
		               jsonb_strip_nulls(jsonb_build_object(
		                   'request_id', upd.id, 'kind', upd.kind, 'level', upd.level,
		                   'approver_role', upd.approver_role, 'department', upd.department,
		                   'by', v_addr, 'comment', upd.comment))::text AS detail
		          FROM upd
		        UNION ALL
		        SELECT 2, NULL, 'message.released', v_mid,
		               jsonb_build_object('deliveries', (SELECT count(*) FROM rel),
		                                  'by', v_addr)::text
		         WHERE v_released) AS e
		 ORDER BY e.part, e.rid
	)
	SELECT upd.id, upd.kind, upd.level, v_released FROM upd ORDER BY upd.id;

	IF NOT v_released THEN
		PERFORM herald.notify_approvers(v_next, 'approval.requested');
	END IF;
	-- Released deliveries, or the notifications just queued: wake the dispatchers.
	PERFORM pg_notify('herald_released', v_mid::text);
END
$$;

-- CREATE OR REPLACE keeps the grants; restated so this file says them.
REVOKE ALL ON FUNCTION herald.approve(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION herald.approve(bigint, text) TO herald_approver;
