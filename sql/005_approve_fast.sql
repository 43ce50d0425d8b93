-- NAME
--	005_approve_fast - herald.approve() in four statements and one audit
--	link instead of twelve statements, two links and two nested calls
-- DESCRIPTION
--	Replaces 004's herald.approve() with the same contract, the same
--	rules, the same error messages in the same order, the same audit
--	events with the same details and the same NOTIFY; only the way it
--	gets there changes. It owns nothing else: reject(), decidable() and
--	caller() stay as 003 made them (reject still calls both).
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- WHY (measured on the 2-core VM: private cluster, pg_stat_statements
-- with track = all and track_planning, perf on the backends)
--	An approval ran caller() and decidable() (two more plpgsql calls,
--	each switching search_path) and twelve statements. Four of them
--	filter on "id = ANY (array)", for which plpgsql's plan cache kept
--	choosing a fresh custom plan (the generic one is costed higher):
--	they were planned on every call, 0.27 ms of the 0.86 ms an approval
--	cost alone, the two EXISTS self-joins of decidable() 0.2 ms of it.
--	Two INSERTs into audit_events (the request events, then
--	message.released) each fired the statement-level seal: two audit
--	links and two chain-head updates per approval.
--	Result, same machine: one session 0.86 -> 0.38 ms per call, no
--	planning after the first call; four sessions approving alone (no
--	statistics tracking) ~1,250 -> ~2,250 approvals/s, 25 -> 21 WAL
--	records per approval. Unchanged: NOTIFY takes a cluster-wide lock
--	from pre-commit until after the commit's WAL flush (PostgreSQL 15),
--	so notifying transactions commit one at a time (one WAL fsync per
--	approval, no group commit); approving alone that costs ~10%.
-- CHANGES TO EARLIER OBJECTS
--	herald.approve(bigint, text), same signature, result, owner and
--	grants. Now, in one plpgsql function with
--	plan_cache_mode = force_generic_plan (every statement below looks
--	rows up by primary or unique key, so the generic plan is the right
--	one and is planned once per session; the setting also holds inside
--	what approve calls, the audit seal, notify_approvers() and notify(),
--	whose statements are key look-ups or inserts from a JSON argument):
--	  1. the caller from session_user (caller()'s query and error);
--	  2. the message locked FOR UPDATE (as decidable(): every transition
--	     of a message's approvals locks the message first, and what
--	     follows reads in new snapshots, after the lock);
--	  3. one read of the message's requests deciding everything
--	     decidable() decided, in its order: not awaiting approval, not
--	     entitled, lower level pending, separation of duties, expired;
--	     plus the requests still pending after this approval, so release
--	     is known before writing (no other transition can change their
--	     state while the message is locked);
--	  4. one statement: the requests approved, the held deliveries
--	     queued (only on release, keeping an S3 / quiet-hours deferral:
--	     next_attempt_at = greatest(now(), next_attempt_at)), and every
--	     audit event of the call, 'approval.approved' per request (by
--	     request id) then 'message.released', in one INSERT: one audit
--	     link per approval.
--	  Then NOTIFY herald_released, and when a level 2 request becomes
--	  actionable notify_approvers() as before (its notification
--	  messages are their own statement and link, as in 003).

-- ---------------------------------------------------------------------
-- Deciding (replaces 004's approve; same contract)
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
		 WHERE r.id = ANY (v_ids) AND r.state = 'pending'
		RETURNING r.id, r.message_id, r.kind, r.level, r.approver_role, r.department, r.comment
	), rel AS (
		UPDATE herald.deliveries AS d
		   SET state = 'queued', next_attempt_at = greatest(now(), d.next_attempt_at),
		       updated_at = now()
		 WHERE v_released AND d.message_id = v_mid AND d.state = 'held'
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
