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
--	Done by an AFTER INSERT trigger on approval_requests rather than in
--	intake_batch(): the request keeps being created as 003/004 create it
--	(its 'approval.requested' event says 'dept_head', then the
--	escalation event says where it went and why, which is the order the
--	decision is taken in), and intake_batch() is not copied again. An
--	AFTER trigger sees the message inserted by the same statement.
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

-- Route a new level-1 request to senior leadership when its department
-- cannot decide it (see DESCRIPTION).
CREATE FUNCTION herald.approval_escalate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_sender text;
	v_head   text;
	v_why    text;
BEGIN
	IF NEW.level <> 1 OR NEW.approver_role <> 'dept_head' THEN
		RETURN NULL;
	END IF;
	SELECT lower(m.sender) INTO v_sender FROM herald.messages AS m WHERE m.id = NEW.message_id;
	SELECT s.address INTO v_head
	  FROM herald.departments AS d
	  JOIN herald.staff AS s ON s.address = lower(d.head) AND s.active
	 WHERE d.name = NEW.department;
	IF v_head IS NULL THEN
		v_why := coalesce(NEW.department, '(no department)') || ' has no active head';
	ELSIF v_head = v_sender THEN
		v_why := 'the sender heads ' || NEW.department;
	ELSE
		RETURN NULL;
	END IF;
	UPDATE herald.approval_requests
	   SET approver_role = 'senior', escalated = v_why
	 WHERE id = NEW.id;
	INSERT INTO herald.audit_events (actor, kind, message_id, detail)
	VALUES ('broker:' || session_user, 'approval.escalated', NEW.message_id,
	        jsonb_build_object('request_id', NEW.id, 'kind', NEW.kind, 'level', NEW.level,
	                           'approver_role', 'senior', 'department', NEW.department,
	                           'reason', v_why)::text);
	RETURN NULL;
END
$$;

CREATE TRIGGER approval_requests_escalate
	AFTER INSERT ON herald.approval_requests
	FOR EACH ROW EXECUTE FUNCTION herald.approval_escalate();
