-- NAME
--	009_approval_escalation - a level-1 request nobody in the department
--	may decide goes to senior leadership
-- DESCRIPTION
--	POLICY A2.1 sends an important or bulk message to the head of the
--	sender's department, and nobody approves their own message. So when
--	the sender is that head, or the department has no active head, the
--	level-1 request could never be decided and the message would expire
--	after two days with nobody having been asked. Exchange's moderation
--	routes such a message one step up; Herald does the same: the level-1
--	request goes to senior leadership (approver_role 'senior') and says
--	why in its new column escalated ("the sender heads Sales", "Sales has
--	no active head"), with an 'approval.escalated' audit event. Everything
--	that routes by approver_role follows: the notification to the
--	approvers, held_for_me, approve() and reject() (a senior decides it,
--	never the sender), reminders and expiry. A major message so escalated
--	needs two different seniors, as approve() already enforces for
--	levels 1 and 2.
--
--	Done by a statement-level AFTER INSERT trigger on approval_requests
--	rather than in intake_batch(), which is not copied again: the
--	request is created as 003/004 create it (its 'approval.requested'
--	event says 'dept_head'), then the trigger moves it and writes
--	'approval.escalated' (a later event id, saying where it went and
--	why). An AFTER trigger sees the message inserted by the same
--	statement. One UPDATE and one INSERT per statement: a batch with
--	escalations costs one more audit link, not one per request. That
--	link is sealed when the trigger's INSERT ends, so it precedes the
--	link of the statement that fired it in the chain; audit_verify()
--	checks links, not the order of events across them.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- CHANGES TO EARLIER OBJECTS
--	herald.approval_requests: column escalated; the constraint
--	approval_requests_level_role now allows level 1 to be 'senior' when,
--	and only when, escalated says why.

ALTER TABLE herald.approval_requests ADD COLUMN escalated text;
ALTER TABLE herald.approval_requests DROP CONSTRAINT approval_requests_level_role;
ALTER TABLE herald.approval_requests ADD CONSTRAINT approval_requests_level_role CHECK (
	CASE WHEN level = 2 THEN approver_role = 'senior' AND escalated IS NULL
	     ELSE (approver_role = 'dept_head') = (escalated IS NULL) END);

-- Route the new level-1 requests of one statement to senior leadership
-- when their department cannot decide them (see DESCRIPTION): one UPDATE
-- and one INSERT of events per statement, so one audit link per batch.
CREATE FUNCTION herald.approval_escalate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_seqscan text := current_setting('enable_seqscan');
	v_ids     bigint[];
	v_whys    text[];
BEGIN
	-- Key look-ups only, planned once per session: no sequential scan a
	-- tiny table could win at the first call (sql/007's WHY). Back on
	-- before the audit seal runs.
	PERFORM set_config('enable_seqscan', 'off', true);
	SELECT array_agg(x.id ORDER BY x.id),
	       array_agg(CASE WHEN x.head IS NULL
	                      THEN coalesce(x.department, '(no department)') || ' has no active head'
	                      ELSE 'the sender heads ' || x.department END ORDER BY x.id)
	  INTO v_ids, v_whys
	  FROM (SELECT n.id, n.department,
	               (SELECT s.address
	                  FROM herald.departments AS d
	                  JOIN herald.staff AS s ON s.address = lower(d.head) AND s.active
	                 WHERE d.name = n.department) AS head,
	               (SELECT lower(m.sender) FROM herald.messages AS m
	                 WHERE m.id = n.message_id) AS sender
	          FROM new_requests AS n
	         WHERE n.level = 1 AND n.approver_role = 'dept_head') AS x
	 WHERE x.head IS NULL OR x.head = x.sender;
	IF v_ids IS NOT NULL THEN
		UPDATE herald.approval_requests AS r
		   SET approver_role = 'senior', escalated = v_whys[array_position(v_ids, r.id)]
		 WHERE r.id = ANY (v_ids);
	END IF;
	PERFORM set_config('enable_seqscan', v_seqscan, true);
	IF v_ids IS NOT NULL THEN
		INSERT INTO herald.audit_events (actor, kind, message_id, detail)
		SELECT 'broker:' || session_user, 'approval.escalated', n.message_id,
		       jsonb_build_object('request_id', n.id, 'kind', n.kind, 'level', n.level,
		                          'approver_role', 'senior', 'department', n.department,
		                          'reason', v_whys[array_position(v_ids, n.id)])::text
		  FROM new_requests AS n
		 WHERE n.id = ANY (v_ids)
		 ORDER BY n.id;
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER approval_requests_escalate
	AFTER INSERT ON herald.approval_requests
	REFERENCING NEW TABLE AS new_requests
	FOR EACH STATEMENT EXECUTE FUNCTION herald.approval_escalate();
