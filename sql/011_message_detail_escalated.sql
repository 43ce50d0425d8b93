-- NAME
--	011_message_detail_escalated - heraldctl show says why a request went
--	to senior leadership
-- DESCRIPTION
--	009 records in approval_requests.escalated why a level-1 request went
--	to senior leadership instead of the department head. This puts it
--	in herald.message_detail()'s approval chain, so `heraldctl show`
--	(and --json) tells the approver why the message is theirs.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- CHANGES TO EARLIER OBJECTS
--	herald.message_detail(bigint): same signature, checks and result as
--	in 004, plus "escalated" (text or null) in every approvals entry.

-- Everything heraldctl show prints about message_id, as
--	{"message": {.., "redacted": bool}, "recipients": {"to": [..], "cc":
--	 [..], "to_count", "cc_count"} (lists cut at 100), "attachments":
--	 [{"name", "type", "size"}], "bulk_application": {..} | null,
--	 "approvals": [{"request_id", "kind", "level", "approver_role",
--	 "department", "state", "due_at", "remind_at", "reminded_at",
--	 "decided_by", "decided_at", "comment", "created_at", "escalated"}],
--	 "deliveries":
--	 {"<state>": count}, "findings": [{"rule", "clause", "action",
--	 "severity", "reason", "field"}] (messages.findings: heraldd's and the
--	 database's, e.g. an S3 deferral), "violations": [{"id", "at", "rule",
--	 "clause", "severity", "action", "reason", "field"}] (this message's
--	 rows of herald.violations)}.
-- Who may see it: operators (herald_operator), staff with role
-- supervisor or operator, the sender, and staff who can act on a
-- pending request of it or decided one. When the message is flagged
-- confidential, "message"."body" and "html" are null and "redacted" is
-- true unless the caller is its sender, one of those approvers or a
-- supervisor (see DECISIONS).
CREATE OR REPLACE FUNCTION herald.message_detail(message_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_mid      bigint := message_detail.message_id;
	v_me       herald.staff;
	v_staff    boolean;
	v_operator boolean := pg_has_role(session_user, 'herald_operator', 'MEMBER');
	v_msg      herald.messages;
	v_approver boolean := false;
	v_sender   boolean := false;
	v_redact   boolean;
BEGIN
	SELECT s.* INTO v_me FROM herald.staff AS s WHERE s.db_role = session_user AND s.active;
	v_staff := FOUND;
	IF NOT v_staff AND NOT v_operator THEN
		RAISE EXCEPTION 'you are not registered as staff (login role %)', session_user
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT m.* INTO v_msg FROM herald.messages AS m WHERE m.id = v_mid;
	IF v_staff THEN
		v_sender := v_msg.id IS NOT NULL AND lower(v_msg.sender) = v_me.address;
		v_approver := EXISTS (
			SELECT 1 FROM herald.approval_requests AS r
			  LEFT JOIN herald.departments AS dp ON dp.name = r.department
			 WHERE r.message_id = v_mid
			   AND (r.decided_by = v_me.address
			        OR (r.state = 'pending' AND lower(v_msg.sender) <> v_me.address
			            AND CASE r.approver_role
			                WHEN 'dept_head' THEN dp.head IS NOT DISTINCT FROM v_me.address
			                ELSE 'senior' = ANY (v_me.roles) END)));
	END IF;
	IF NOT v_operator AND NOT v_sender AND NOT v_approver
	   AND NOT v_me.roles && ARRAY['supervisor', 'operator'] THEN
		RAISE EXCEPTION 'you may not see message %', v_mid
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF v_msg.id IS NULL THEN
		RAISE EXCEPTION 'message % does not exist', v_mid USING ERRCODE = 'no_data_found';
	END IF;
	v_redact := 'confidential' = ANY (v_msg.flags)
	            AND NOT (v_sender OR v_approver OR coalesce('supervisor' = ANY (v_me.roles), false));

	RETURN jsonb_build_object(
		'message', jsonb_build_object(
			'id', v_msg.id, 'app', v_msg.app, 'idempotency_key', v_msg.idempotency_key,
			'channel', v_msg.channel, 'sender', v_msg.sender,
			'sender_name', (SELECT s.name FROM herald.staff AS s WHERE s.address = lower(v_msg.sender)),
			'department', (SELECT s.department FROM herald.staff AS s
			                WHERE s.address = lower(v_msg.sender)),
			'class', v_msg.class, 'initial_state', v_msg.initial_state,
			'subject', v_msg.subject,
			'body', CASE WHEN v_redact THEN NULL ELSE v_msg.body END,
			'html', CASE WHEN v_redact THEN NULL ELSE v_msg.html END,
			'redacted', v_redact,
			'cc_reason', v_msg.cc_reason, 'purpose', v_msg.purpose, 'reply_by', v_msg.reply_by,
			'flags', to_jsonb(v_msg.flags), 'tags', v_msg.tags, 'created_at', v_msg.created_at),
		'recipients', jsonb_build_object(
			'to', coalesce((SELECT jsonb_agg(x.recipient ORDER BY x.id) FROM (
			        SELECT d.id, d.recipient FROM herald.deliveries AS d
			         WHERE d.message_id = v_mid AND d.kind = 'to' ORDER BY d.id LIMIT 100) AS x),
			        '[]'::jsonb),
			'cc', coalesce((SELECT jsonb_agg(x.recipient ORDER BY x.id) FROM (
			        SELECT d.id, d.recipient FROM herald.deliveries AS d
			         WHERE d.message_id = v_mid AND d.kind = 'cc' ORDER BY d.id LIMIT 100) AS x),
			        '[]'::jsonb),
			'to_count', (SELECT count(*) FROM herald.deliveries AS d
			              WHERE d.message_id = v_mid AND d.kind = 'to'),
			'cc_count', (SELECT count(*) FROM herald.deliveries AS d
			              WHERE d.message_id = v_mid AND d.kind = 'cc')),
		'attachments', coalesce((SELECT jsonb_agg(jsonb_build_object(
			'name', a.name, 'type', a.mime_type, 'size', a.size) ORDER BY a.idx)
			FROM herald.attachments AS a WHERE a.message_id = v_mid), '[]'::jsonb),
		'bulk_application', (SELECT jsonb_build_object(
			'purpose', b.purpose, 'audience', b.audience, 'recipient_count', b.recipient_count,
			'summary', b.summary, 'applicant', b.applicant, 'created_at', b.created_at)
			FROM herald.bulk_applications AS b WHERE b.message_id = v_mid),
		'approvals', coalesce((SELECT jsonb_agg(jsonb_build_object(
			'request_id', r.id, 'kind', r.kind, 'level', r.level,
			'approver_role', r.approver_role, 'department', r.department, 'state', r.state,
			'due_at', r.due_at, 'remind_at', r.remind_at, 'reminded_at', r.reminded_at,
			'decided_by', r.decided_by, 'decided_at', r.decided_at, 'comment', r.comment,
			'created_at', r.created_at, 'escalated', r.escalated) ORDER BY r.level, r.kind)
			FROM herald.approval_requests AS r WHERE r.message_id = v_mid), '[]'::jsonb),
		'deliveries', coalesce((SELECT jsonb_object_agg(x.state, x.n) FROM (
			SELECT d.state, count(*) AS n FROM herald.deliveries AS d
			 WHERE d.message_id = v_mid GROUP BY d.state) AS x), '{}'::jsonb),
		'findings', v_msg.findings,
		'violations', coalesce((SELECT jsonb_agg(jsonb_build_object(
			'id', v.id, 'at', v.at, 'rule', v.rule, 'clause', v.clause,
			'severity', v.severity, 'action', v.action, 'reason', v.reason,
			'field', v.field) ORDER BY v.id)
			FROM herald.violations AS v WHERE v.message_id = v_mid), '[]'::jsonb));
END
$$;
