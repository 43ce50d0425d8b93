-- NAME
--	003_approvals - the organisation, approval requests, the approvers'
--	functions and notifications through Herald itself
-- DESCRIPTION
--	Policy A1-A3: general messages go out at once; important messages
--	wait for the head of the sender's department (level 1) and, when
--	major, for senior leadership too (level 2); bulk messages wait for
--	the head of the sender's department; a message both important and
--	bulk needs both. Every rule is enforced here, inside PostgreSQL: an
--	approver's login role can only call the SECURITY DEFINER functions
--	below, which decide who the caller is from session_user (the role
--	that logged in, which the database vouches for), never from an
--	argument. Plain SQL as that role writes nothing.
--
--	    intake_batch --> request pending --approve (all of them)--> deliveries queued, NOTIFY herald_released
--	                                     --reject (reason)-------> deliveries rejected_by_approver, sender told
--	                                     --approval_tick (due)---> deliveries expired, sender told
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- DECISIONS (where the contract left room; an auditor's reading)
--	- Addresses are stored lower-case; a sender is matched as
--	  lower(sender). Only ACTIVE staff may send; an unknown or inactive
--	  sender gets error 'unknown_sender' and nothing is written for that
--	  entry. A resend of a message already stored (same app + ikey) is
--	  answered as a duplicate even if its sender has been deactivated
--	  since: the message was accepted and will be sent, so telling the
--	  client it was refused would be false.
--	- Fail safe: an entry flagged important or major needs the important
--	  approvals whatever its class, and every entry that needs approval is
--	  stored held, whatever state the broker asked for. major implies
--	  important. The returned state is what was stored.
--	- The same person never approves two levels of one message: the level
--	  1 approver of a kind cannot approve its level 2 (separation of
--	  duties; otherwise a head who is also senior approves alone).
--	- reject marks the requests the caller decides 'rejected' (with the
--	  reason) and the message's other pending requests 'cancelled' (not
--	  decided by anybody); on expiry every pending request of the message
--	  becomes 'expired'. approval_tick's "expired" counts requests.
--	- A request nobody can approve (department without an active head,
--	  sender without department, or the sender is the head) is still
--	  created and simply expires, telling the sender why.
--	- org_import is a full import unless doc has "partial": true: active
--	  staff missing from a full import are deactivated (never deleted).
--	  Departments are never deleted.
--	- Audit actors: 'app:<app>' (intake), 'approver:<login role>',
--	  'operator:<login role>' (org_import), 'broker:<login role>'
--	  (approval_tick), 'app:herald' (notification messages).
-- CHANGES TO 001 OBJECTS
--	herald.intake_batch(jsonb) is dropped and re-created with an "error"
--	column and the approval rules; its first five columns keep their
--	meaning. For an error row message_id and state are NULL, class is the
--	entry's and duplicate is false.

-- ---------------------------------------------------------------------
-- Settings and the organisation
-- ---------------------------------------------------------------------

CREATE TABLE herald.settings (
	key   text PRIMARY KEY,
	value text NOT NULL
);
-- notify_from: the sender of every notification Herald sends itself.
INSERT INTO herald.settings (key, value) VALUES ('notify_from', 'herald@localhost.localdomain');

CREATE TABLE herald.departments (
	name       text PRIMARY KEY CHECK (name <> ''),
	-- A staff address; the foreign key is added below (staff refers here).
	head       text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE herald.staff (
	address        text PRIMARY KEY CHECK (address <> '' AND address = lower(address)),
	name           text,
	department     text REFERENCES herald.departments (name),
	roles          text[] NOT NULL DEFAULT '{employee}'
	               CONSTRAINT staff_roles_check CHECK (roles <@ ARRAY['employee', 'dept_head',
	                   'senior', 'supervisor', 'operator']::text[]),
	-- The PostgreSQL login role this person uses (session_user).
	db_role        name UNIQUE,
	notify_channel text NOT NULL DEFAULT 'email' CHECK (notify_channel IN ('email', 'im')),
	notify_address text,  -- IM group or email; NULL = address
	active         boolean NOT NULL DEFAULT true,
	created_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Deferred: a department and its head arrive in the same import.
ALTER TABLE herald.departments ADD CONSTRAINT departments_head_fkey
	FOREIGN KEY (head) REFERENCES herald.staff (address) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX staff_seniors_idx ON herald.staff (address) WHERE active AND 'senior' = ANY (roles);

-- ---------------------------------------------------------------------
-- Approval requests (the decided rows are the approvals)
-- ---------------------------------------------------------------------

CREATE TABLE herald.approval_requests (
	id            bigserial PRIMARY KEY,
	message_id    bigint NOT NULL REFERENCES herald.messages (id),
	kind          text NOT NULL CHECK (kind IN ('important', 'bulk')),
	level         int NOT NULL CHECK (level IN (1, 2)),
	-- The sender's department when the request was made (a record, not a link).
	department    text,
	approver_role text NOT NULL CHECK (approver_role IN ('dept_head', 'senior')),
	state         text NOT NULL DEFAULT 'pending'
	              CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
	due_at        timestamptz NOT NULL,
	remind_at     timestamptz,
	reminded_at   timestamptz,
	decided_by    text,  -- staff address; NULL for expired and cancelled
	decided_at    timestamptz,
	comment       text,
	created_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT approval_requests_one_per_level UNIQUE (message_id, kind, level),
	CONSTRAINT approval_requests_level_role CHECK ((level = 1) = (approver_role = 'dept_head')),
	CONSTRAINT approval_requests_bulk_level CHECK (kind = 'important' OR level = 1),
	CONSTRAINT approval_requests_decided CHECK ((state = 'pending') = (decided_at IS NULL)),
	CONSTRAINT approval_requests_decider CHECK (
		(state IN ('approved', 'rejected')) = (decided_by IS NOT NULL)),
	CONSTRAINT approval_requests_reject_reason CHECK (
		state <> 'rejected' OR coalesce(btrim(comment), '') <> '')
);
CREATE INDEX approval_requests_pending_due_idx ON herald.approval_requests (due_at)
	WHERE state = 'pending';
CREATE INDEX approval_requests_remind_idx ON herald.approval_requests (remind_at)
	WHERE state = 'pending' AND reminded_at IS NULL AND remind_at IS NOT NULL;

-- ---------------------------------------------------------------------
-- Notifications: messages Herald sends itself
-- ---------------------------------------------------------------------

-- Store notes, a JSON array of {"to": staff address, "about": message
-- id, "reason", "subject", "body", "key"}, as general messages of app
-- 'herald' from settings.notify_from, each with one queued delivery on
-- the recipient's notify_channel to notify_address (email to "to" when
-- the recipient is not staff) and one 'message.accepted' event, exactly
-- as intake stores a message. key is the idempotency key: a note whose
-- key was stored before is not stored again. Returns the number stored.
-- Not granted to anybody: only the functions below call it.
CREATE FUNCTION herald.notify(notes jsonb)
RETURNS int
LANGUAGE plpgsql SET search_path = herald, pg_temp
AS $$
DECLARE
	v_n int;
BEGIN
	WITH x AS MATERIALIZED (
		SELECT x.*, nextval('herald.messages_id_seq') AS id,
		       coalesce(s.notify_channel, 'email') AS channel,
		       coalesce(s.notify_address, s.address, lower(x."to")) AS recipient
		  FROM ROWS FROM (jsonb_to_recordset(notes) AS (
		       "to" text, about bigint, reason text, subject text, body text, key text))
		       WITH ORDINALITY AS x("to", about, reason, subject, body, key, ord)
		  LEFT JOIN herald.staff AS s ON s.address = lower(x."to")
	), m AS (
		INSERT INTO herald.messages AS t
		       (id, app, idempotency_key, channel, sender, class, initial_state, subject, body,
		        tags)
		SELECT x.id, 'herald', x.key, x.channel,
		       (SELECT st.value FROM herald.settings AS st WHERE st.key = 'notify_from'),
		       'general', 'queued', x.subject, x.body,
		       jsonb_strip_nulls(jsonb_build_object('about', x.about, 'reason', x.reason))
		  FROM x
		 ORDER BY x.ord
		    ON CONFLICT (app, idempotency_key) DO NOTHING
		RETURNING t.id
	), d AS (
		INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state)
		SELECT x.id, x.channel, x.recipient, 'to', 'queued'
		  FROM x JOIN m ON m.id = x.id
		 ORDER BY x.ord
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, detail)
		SELECT 'app:herald', 'message.accepted', x.id,
		       jsonb_strip_nulls(jsonb_build_object(
		           'class', 'general', 'state', 'queued', 'recipients', 1,
		           'notification', x.reason, 'about', x.about))::text
		  FROM x JOIN m ON m.id = x.id
		 ORDER BY x.ord
	)
	SELECT count(*) INTO v_n FROM m;
	RETURN v_n;
END
$$;

-- "important level 1 (head of Sales)" for messages people read.
CREATE FUNCTION herald.request_text(kind text, level int, approver_role text, department text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN kind || ' level ' || level::text || ' ('
	|| CASE WHEN approver_role = 'senior' THEN 'senior leadership'
	        ELSE 'head of ' || coalesce(department, 'no department') END || ')';

CREATE FUNCTION herald.time_text(t timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC';

-- Tell the people who can act on the requests req_ids NOW: pending, no
-- lower level of the same message and kind still pending. For
-- dept_head that is the active head of the request's department, for
-- senior every active senior; never the sender, never who approved the
-- lower level. One note per message and person (reason
-- 'approval.requested' or 'approval.reminder'); a note already sent
-- for the same requests, reason and person is not sent again.
CREATE FUNCTION herald.notify_approvers(req_ids bigint[], reason text)
RETURNS int
LANGUAGE plpgsql SET search_path = herald, pg_temp
AS $$
DECLARE
	v_notes jsonb;
BEGIN
	WITH r AS (
		SELECT ar.*, m.sender, m.subject, m.channel, m.class
		  FROM herald.approval_requests AS ar
		  JOIN herald.messages AS m ON m.id = ar.message_id
		 WHERE ar.id = ANY (req_ids)
		   AND ar.state = 'pending'
		   AND NOT EXISTS (SELECT 1 FROM herald.approval_requests AS lo
		                    WHERE lo.message_id = ar.message_id AND lo.kind = ar.kind
		                      AND lo.level < ar.level AND lo.state = 'pending')
	), w AS (
		SELECT r.*, a.address AS approver
		  FROM r
		 CROSS JOIN LATERAL (
		       SELECT h.address
		         FROM herald.departments AS dp
		         JOIN herald.staff AS h ON h.address = dp.head AND h.active
		        WHERE r.approver_role = 'dept_head' AND dp.name = r.department
		       UNION ALL
		       SELECT s.address
		         FROM herald.staff AS s
		        WHERE r.approver_role = 'senior' AND s.active AND 'senior' = ANY (s.roles)
		       ) AS a(address)
		 WHERE a.address <> lower(r.sender)
		   AND NOT EXISTS (SELECT 1 FROM herald.approval_requests AS lo
		                    WHERE lo.message_id = r.message_id AND lo.kind = r.kind
		                      AND lo.level < r.level AND lo.decided_by = a.address)
	), g AS (
		SELECT w.message_id, w.approver, min(w.sender) AS sender, min(w.subject) AS subject,
		       min(w.channel) AS channel, min(w.class) AS class, min(w.due_at) AS due_at,
		       string_agg(herald.request_text(w.kind, w.level, w.approver_role, w.department),
		                  ', ' ORDER BY w.kind, w.level) AS what,
		       string_agg(w.id::text, ',' ORDER BY w.id) AS ids
		  FROM w
		 GROUP BY w.message_id, w.approver
	)
	SELECT jsonb_agg(jsonb_build_object(
	           'to', g.approver,
	           'about', g.message_id,
	           'reason', reason,
	           'key', reason || ':' || g.ids || ':' || g.approver,
	           'subject', format('[Herald] %s: message %s from %s',
	                             CASE WHEN reason = 'approval.reminder' THEN 'Reminder, approval needed'
	                                  ELSE 'Approval needed' END,
	                             g.message_id, g.sender),
	           'body', format(E'Message %s from %s needs your approval.\n\n'
	                          '  Subject:    %s\n'
	                          '  Class:      %s\n'
	                          '  Channel:    %s, %s recipient(s)\n'
	                          '  Requested:  %s\n'
	                          '  Due:        %s (without a decision by then it expires and is not sent)\n\n'
	                          'To approve:  heraldctl approve %s --comment "..."\n'
	                          'To reject:   heraldctl reject %s --reason "..."\n'
	                          'Details:     heraldctl show %s\n',
	                          g.message_id, g.sender, coalesce(g.subject, '(none)'), g.class,
	                          g.channel,
	                          (SELECT count(*) FROM herald.deliveries AS d
	                            WHERE d.message_id = g.message_id),
	                          g.what, herald.time_text(g.due_at),
	                          g.message_id, g.message_id, g.message_id))
	           ORDER BY g.message_id, g.approver)
	  INTO v_notes
	  FROM g;
	IF v_notes IS NULL THEN
		RETURN 0;
	END IF;
	RETURN herald.notify(v_notes);
END
$$;

-- ---------------------------------------------------------------------
-- Intake (replaces 001's)
-- ---------------------------------------------------------------------

-- Store one batch of accepted messages: the contract with heraldd's
-- store module. As in 001 (see there for the entry format), plus per
-- entry "important": bool, "major": bool, "approval_due_s": int (default
-- 172800, at least 1) and "reminder_s": int | null (seconds after
-- creation; null or <= 0 = no reminder). One row per entry, by ord:
--	new message     ord, id, class, stored state, false, NULL
--	duplicate       ord, original id, class, initial state, true, NULL
--	unknown sender  ord, NULL, class, NULL, false, 'unknown_sender'
-- A sender must be active staff (see DECISIONS). An entry of class
-- important, or flagged important or major, gets an approval request
-- (important, 1, dept_head) and when major also (important, 2, senior);
-- class bulk gets (bulk, 1, dept_head); all of them for the sender's
-- department, due now() + approval_due_s, remind_at now() + reminder_s,
-- each with an 'approval.requested' event; the message is then stored
-- held. The people who can act at once (level 1) are sent a
-- notification message.
--
-- Set-based: the messages, attachments, bulk applications, deliveries,
-- requests and every audit event of the batch are one statement (one
-- audit link); the notifications a second one, only when some request
-- was made; the duplicate / unknown-sender answers a third, only when
-- some entry was one (a separate statement because in READ COMMITTED
-- only a new statement sees a conflicting row that a concurrent
-- transaction committed while the insert waited on it).
DROP FUNCTION herald.intake_batch(jsonb);
CREATE FUNCTION herald.intake_batch(batch jsonb)
RETURNS TABLE (ord int, message_id bigint, class text, state text, duplicate boolean,
               error text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_ords    int[];
	v_ids     bigint[];
	v_classes text[];
	v_states  text[];
	v_apps    text[];
	v_ikeys   text[];
	v_reqs    bigint[];
BEGIN
	IF jsonb_typeof(batch) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'intake_batch: batch must be a JSON array, got %',
			coalesce(jsonb_typeof(batch), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	WITH e AS MATERIALIZED (
		-- Only known senders get an id; the others are never inserted.
		SELECT r.*, s.department AS dept,
		       r.class = 'important' OR coalesce(r.important, false)
		       OR coalesce(r.major, false) AS imp,
		       r.class = 'bulk' AS blk,
		       CASE WHEN r.class IN ('important', 'bulk') OR coalesce(r.important, false)
		                 OR coalesce(r.major, false) THEN 'held' ELSE r.state END AS st,
		       CASE WHEN s.address IS NOT NULL THEN nextval('herald.messages_id_seq') END AS id
		  FROM jsonb_to_recordset(batch) AS r(
		       ord int, app text, ikey text, channel text, sender text, class text,
		       state text, subject text, body text, html text, cc_reason text,
		       purpose text, reply_by bigint, flags jsonb, tags jsonb, "to" jsonb,
		       cc jsonb, attachments jsonb, bulk jsonb, important boolean, major boolean,
		       approval_due_s int, reminder_s int)
		  LEFT JOIN herald.staff AS s ON s.address = lower(r.sender) AND s.active
	), m AS (
		INSERT INTO herald.messages AS t
		       (id, app, idempotency_key, channel, sender, class, initial_state, subject,
		        body, html, cc_reason, purpose, reply_by, flags, tags)
		SELECT e.id, e.app, e.ikey, e.channel, e.sender, e.class, e.st, e.subject,
		       e.body, e.html, e.cc_reason, e.purpose, to_timestamp(e.reply_by),
		       CASE WHEN jsonb_typeof(e.flags) = 'array'
		            THEN ARRAY(SELECT jsonb_array_elements_text(e.flags))
		            ELSE '{}'::text[] END,
		       coalesce(e.tags, '{}'::jsonb)
		  FROM e
		 WHERE e.id IS NOT NULL
		 ORDER BY e.ord
		    ON CONFLICT (app, idempotency_key) DO NOTHING
		RETURNING t.id
	), n AS (
		SELECT e.* FROM e JOIN m ON m.id = e.id
	), a AS (
		INSERT INTO herald.attachments (message_id, idx, name, mime_type, data, size)
		SELECT n.id, x.idx::int, x.att->>'name', x.att->>'type', b.data, length(b.data)
		  FROM n
		 CROSS JOIN LATERAL jsonb_array_elements(
		       CASE WHEN jsonb_typeof(n.attachments) = 'array' THEN n.attachments
		            ELSE '[]'::jsonb END) WITH ORDINALITY AS x(att, idx)
		 CROSS JOIN LATERAL (SELECT decode(x.att->>'data', 'base64') AS data) AS b
	), b AS (
		INSERT INTO herald.bulk_applications
		       (message_id, purpose, audience, recipient_count, summary, applicant)
		SELECT n.id, n.bulk->>'purpose', n.bulk->>'audience',
		       (n.bulk->>'recipient_count')::int, n.bulk->>'summary', n.sender
		  FROM n
		 WHERE jsonb_typeof(n.bulk) = 'object'
	), d AS (
		INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state)
		SELECT n.id, n.channel, r.recipient, r.kind, n.st
		  FROM n
		 CROSS JOIN LATERAL (
		       SELECT t.recipient, 'to'::text, 0, t.pos
		         FROM jsonb_array_elements_text(
		              CASE WHEN jsonb_typeof(n."to") = 'array' THEN n."to" ELSE '[]' END)
		              WITH ORDINALITY AS t(recipient, pos)
		       UNION ALL
		       SELECT c.recipient, 'cc'::text, 1, c.pos
		         FROM jsonb_array_elements_text(
		              CASE WHEN jsonb_typeof(n.cc) = 'array' THEN n.cc ELSE '[]' END)
		              WITH ORDINALITY AS c(recipient, pos)
		       ) AS r(recipient, kind, kind_order, pos)
		 ORDER BY n.ord, r.kind_order, r.pos
	), rq AS (
		INSERT INTO herald.approval_requests AS t
		       (message_id, kind, level, department, approver_role, due_at, remind_at)
		SELECT n.id, k.kind, k.level, n.dept, k.role,
		       now() + make_interval(secs => greatest(coalesce(n.approval_due_s, 172800), 1)),
		       CASE WHEN n.reminder_s > 0 THEN now() + make_interval(secs => n.reminder_s) END
		  FROM n
		 CROSS JOIN LATERAL (VALUES
		       ('important', 1, 'dept_head', n.imp),
		       ('important', 2, 'senior', n.imp AND coalesce(n.major, false)),
		       ('bulk', 1, 'dept_head', n.blk)) AS k(kind, level, role, wanted)
		 WHERE (n.imp OR n.blk) AND k.wanted
		 ORDER BY n.ord, k.kind, k.level
		RETURNING t.id, t.message_id, t.kind, t.level, t.department, t.approver_role, t.due_at,
		          t.remind_at
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, detail)
		SELECT x.actor, x.kind, x.message_id, x.detail
		  FROM (
			SELECT 'app:' || n.app, 'message.accepted', n.id,
			       jsonb_strip_nulls(jsonb_build_object(
			           'class', n.class,
			           'state', n.st,
			           'recipients',
			               (CASE WHEN jsonb_typeof(n."to") = 'array'
			                     THEN jsonb_array_length(n."to") ELSE 0 END)
			             + (CASE WHEN jsonb_typeof(n.cc) = 'array'
			                     THEN jsonb_array_length(n.cc) ELSE 0 END),
			           'cc_reason', n.cc_reason))::text,
			       n.ord, 0::bigint
			  FROM n
			UNION ALL
			SELECT 'app:' || n.app, 'approval.requested', rq.message_id,
			       jsonb_strip_nulls(jsonb_build_object(
			           'request_id', rq.id, 'kind', rq.kind, 'level', rq.level,
			           'approver_role', rq.approver_role, 'department', rq.department,
			           'due_at', to_char(rq.due_at AT TIME ZONE 'UTC',
			                             'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
			           'remind_at', to_char(rq.remind_at AT TIME ZONE 'UTC',
			                                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))::text,
			       n.ord, rq.id
			  FROM rq JOIN n ON n.id = rq.message_id
		       ) AS x(actor, kind, message_id, detail, ord, sub)
		 ORDER BY x.ord, x.sub
	)
	-- One sort feeding all aggregates (they keep the subquery's order).
	SELECT array_agg(s.ord), array_agg(s.id), array_agg(s.class), array_agg(s.st),
	       array_agg(s.app), array_agg(s.ikey),
	       (SELECT array_agg(rq.id) FROM rq)
	  INTO v_ords, v_ids, v_classes, v_states, v_apps, v_ikeys, v_reqs
	  FROM (SELECT e.ord, m.id, e.class, e.st, e.app, e.ikey
	          FROM e LEFT JOIN m ON m.id = e.id
	         ORDER BY e.ord) AS s;

	IF v_reqs IS NOT NULL THEN
		PERFORM herald.notify_approvers(v_reqs, 'approval.requested');
	END IF;

	IF array_position(v_ids, NULL) IS NULL THEN
		-- No duplicate, no unknown sender (the usual case).
		RETURN QUERY
		SELECT u.ord, u.id, u.class, u.state, false, NULL::text
		  FROM unnest(v_ords, v_ids, v_classes, v_states) AS u(ord, id, class, state);
		RETURN;
	END IF;

	-- Not inserted: a duplicate (answered with the original, even when
	-- its sender is no longer staff), else an unknown sender.
	RETURN QUERY
	SELECT u.ord,
	       coalesce(u.id, o.id),
	       CASE WHEN u.id IS NOT NULL OR o.id IS NULL THEN u.class ELSE o.class END,
	       CASE WHEN u.id IS NOT NULL THEN u.state ELSE o.initial_state END,
	       u.id IS NULL AND o.id IS NOT NULL,
	       CASE WHEN u.id IS NULL AND o.id IS NULL THEN 'unknown_sender' END
	  FROM unnest(v_ords, v_ids, v_classes, v_states, v_apps, v_ikeys)
	       AS u(ord, id, class, state, app, ikey)
	  LEFT JOIN herald.messages AS o
	         ON u.id IS NULL AND o.app = u.app AND o.idempotency_key = u.ikey
	 ORDER BY u.ord;
END
$$;

-- ---------------------------------------------------------------------
-- The organisation
-- ---------------------------------------------------------------------

-- The departments and the staff of an org_import document, normalised
-- (trimmed, addresses lower-case, roles default {employee}, channel
-- default email), in document order. No temporary tables in org_import:
-- the caller could have made one of the same name, with triggers, that a
-- definer function would then use.
CREATE FUNCTION herald.org_doc_departments(deps jsonb)
RETURNS TABLE (name text, head text)
LANGUAGE sql IMMUTABLE SET search_path = herald, pg_temp
AS $$
SELECT btrim(x->>'name'), nullif(lower(btrim(x->>'head')), '')
  FROM jsonb_array_elements(deps) WITH ORDINALITY AS u(x, ord)
 ORDER BY u.ord
$$;

CREATE FUNCTION herald.org_doc_staff(staff jsonb)
RETURNS TABLE (address text, name text, department text, roles text[], db_role name,
               notify_channel text, notify_address text)
LANGUAGE sql IMMUTABLE SET search_path = herald, pg_temp
AS $$
SELECT lower(btrim(x->>'address')), x->>'name', nullif(btrim(x->>'department'), ''),
       CASE WHEN jsonb_typeof(x->'roles') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(x->'roles'))
            ELSE ARRAY['employee'] END,
       nullif(btrim(x->>'db_role'), '')::name,
       coalesce(x->>'notify_channel', 'email'),
       nullif(btrim(x->>'notify_address'), '')
  FROM jsonb_array_elements(staff) WITH ORDINALITY AS u(x, ord)
 ORDER BY u.ord
$$;

-- Upsert the organisation: doc = {"departments": [{"name", "head"}],
-- "staff": [{"address", "name", "department", "roles": [..], "db_role",
-- "notify_channel", "notify_address"}], "partial": bool (default
-- false)}. Addresses are lower-cased. A re-import updates changed rows
-- (updated_at) and never duplicates; unless partial, active staff not in
-- doc are deactivated. A db_role given to somebody else in doc is taken
-- from its previous holder. Everything is checked before anything is
-- written; each problem RAISEs naming the entry. One 'org.imported'
-- event. Returns the departments and staff in doc and the number of
-- active seniors afterwards.
CREATE FUNCTION herald.org_import(doc jsonb)
RETURNS TABLE (departments int, staff int, senior int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_deps    jsonb;
	v_staff   jsonb;
	v_bad     text;
	v_nd      int;
	v_ns      int;
	v_ins     int;
	v_upd     int;
	v_depchg  int;
	v_off     text[];
	v_senior  int;
	v_partial boolean;
BEGIN
	IF jsonb_typeof(doc) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'org_import: doc must be a JSON object, got %',
			coalesce(jsonb_typeof(doc), 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_deps := coalesce(doc->'departments', '[]');
	v_staff := coalesce(doc->'staff', '[]');
	v_partial := coalesce((doc->>'partial')::boolean, false);
	IF jsonb_typeof(v_deps) <> 'array' OR jsonb_typeof(v_staff) <> 'array' THEN
		RAISE EXCEPTION 'org_import: "departments" and "staff" must be arrays'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	v_nd := jsonb_array_length(v_deps);
	v_ns := jsonb_array_length(v_staff);

	SELECT 'a department without a name' INTO v_bad
	  FROM herald.org_doc_departments(v_deps) AS d WHERE coalesce(d.name, '') = '' LIMIT 1;
	IF v_bad IS NULL THEN
		SELECT format('department %s is listed twice', d.name) INTO v_bad
		  FROM herald.org_doc_departments(v_deps) AS d GROUP BY d.name HAVING count(*) > 1 LIMIT 1;
	END IF;
	IF v_bad IS NULL THEN
		SELECT 'a staff entry without an address' INTO v_bad
		  FROM herald.org_doc_staff(v_staff) AS s WHERE coalesce(s.address, '') = '' LIMIT 1;
	END IF;
	IF v_bad IS NULL THEN
		SELECT format('staff %s is listed twice', s.address) INTO v_bad
		  FROM herald.org_doc_staff(v_staff) AS s GROUP BY s.address HAVING count(*) > 1 LIMIT 1;
	END IF;
	IF v_bad IS NULL THEN
		SELECT format('db_role %s is given to more than one person', s.db_role) INTO v_bad
		  FROM herald.org_doc_staff(v_staff) AS s
		 WHERE s.db_role IS NOT NULL GROUP BY s.db_role HAVING count(*) > 1 LIMIT 1;
	END IF;
	IF v_bad IS NULL THEN
		SELECT format('staff %s has unknown role(s) %s (allowed: employee, dept_head, senior, supervisor, operator)',
		              s.address, array_to_string(s.roles, ', '))
		  INTO v_bad
		  FROM herald.org_doc_staff(v_staff) AS s
		 WHERE NOT s.roles <@ ARRAY['employee', 'dept_head', 'senior', 'supervisor', 'operator']
		 LIMIT 1;
	END IF;
	IF v_bad IS NULL THEN
		SELECT format('staff %s has notify_channel %s (allowed: email, im)', s.address,
		              s.notify_channel)
		  INTO v_bad
		  FROM herald.org_doc_staff(v_staff) AS s WHERE s.notify_channel NOT IN ('email', 'im') LIMIT 1;
	END IF;
	IF v_bad IS NULL THEN
		SELECT format('staff %s is in department %s, which does not exist', s.address, s.department)
		  INTO v_bad
		  FROM herald.org_doc_staff(v_staff) AS s
		 WHERE s.department IS NOT NULL
		   AND NOT EXISTS (SELECT 1 FROM herald.org_doc_departments(v_deps) AS d
		                    WHERE d.name = s.department)
		   AND NOT EXISTS (SELECT 1 FROM herald.departments AS d WHERE d.name = s.department)
		 LIMIT 1;
	END IF;
	IF v_bad IS NULL THEN
		SELECT format('the head of %s, %s, is not staff', d.name, d.head) INTO v_bad
		  FROM herald.org_doc_departments(v_deps) AS d
		 WHERE d.head IS NOT NULL
		   AND NOT EXISTS (SELECT 1 FROM herald.org_doc_staff(v_staff) AS s
		                    WHERE s.address = d.head)
		   AND (NOT EXISTS (SELECT 1 FROM herald.staff AS s WHERE s.address = d.head)
		        OR NOT v_partial)
		 LIMIT 1;
	END IF;
	IF v_bad IS NOT NULL THEN
		RAISE EXCEPTION 'org_import: %', v_bad USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- Departments first (heads are checked at commit, the key is deferred).
	WITH up AS (
		INSERT INTO herald.departments AS t (name, head)
		SELECT d.name, d.head FROM herald.org_doc_departments(v_deps) AS d ORDER BY d.name
		    ON CONFLICT (name) DO UPDATE
		   SET head = EXCLUDED.head, updated_at = now()
		 WHERE t.head IS DISTINCT FROM EXCLUDED.head
		RETURNING t.name
	)
	SELECT count(*) INTO v_depchg FROM up;

	-- A db_role moves to whoever doc gives it to.
	UPDATE herald.staff AS t
	   SET db_role = NULL, updated_at = now()
	  FROM herald.org_doc_staff(v_staff) AS s
	 WHERE t.db_role = s.db_role AND t.address <> s.address;

	WITH up AS (
		INSERT INTO herald.staff AS t
		       (address, name, department, roles, db_role, notify_channel, notify_address, active)
		SELECT s.address, s.name, s.department, s.roles, s.db_role, s.notify_channel,
		       s.notify_address, true
		  FROM herald.org_doc_staff(v_staff) AS s ORDER BY s.address
		    ON CONFLICT (address) DO UPDATE
		   SET name = EXCLUDED.name, department = EXCLUDED.department, roles = EXCLUDED.roles,
		       db_role = EXCLUDED.db_role, notify_channel = EXCLUDED.notify_channel,
		       notify_address = EXCLUDED.notify_address, active = true, updated_at = now()
		 WHERE (t.name, t.department, t.roles, t.db_role, t.notify_channel, t.notify_address,
		        t.active)
		       IS DISTINCT FROM
		       (EXCLUDED.name, EXCLUDED.department, EXCLUDED.roles, EXCLUDED.db_role,
		        EXCLUDED.notify_channel, EXCLUDED.notify_address, true)
		RETURNING (t.xmax = 0) AS inserted
	)
	SELECT count(*) FILTER (WHERE up.inserted), count(*) FILTER (WHERE NOT up.inserted)
	  INTO v_ins, v_upd FROM up;

	v_off := '{}';
	IF NOT v_partial THEN
		WITH off AS (
			UPDATE herald.staff AS t
			   SET active = false, updated_at = now()
			 WHERE t.active
			   AND NOT EXISTS (SELECT 1 FROM herald.org_doc_staff(v_staff) AS s
			                    WHERE s.address = t.address)
			RETURNING t.address
		)
		SELECT coalesce(array_agg(off.address ORDER BY off.address), '{}') INTO v_off FROM off;
	END IF;

	SELECT count(*) INTO v_senior FROM herald.staff AS s WHERE s.active AND 'senior' = ANY (s.roles);

	INSERT INTO herald.audit_events (actor, kind, detail)
	VALUES ('operator:' || session_user, 'org.imported',
	        jsonb_build_object('departments', v_nd, 'departments_changed', v_depchg,
	                           'staff', v_ns, 'staff_added', v_ins, 'staff_changed', v_upd,
	                           'deactivated', to_jsonb(v_off), 'senior', v_senior,
	                           'partial', v_partial)::text);

	RETURN QUERY SELECT v_nd, v_ns, v_senior;
END
$$;

-- ---------------------------------------------------------------------
-- Deciding
-- ---------------------------------------------------------------------

-- The caller: the active staff member whose db_role is session_user.
CREATE FUNCTION herald.caller() RETURNS herald.staff
LANGUAGE plpgsql STABLE SET search_path = herald, pg_temp
AS $$
DECLARE
	v_me herald.staff;
BEGIN
	SELECT s.* INTO v_me FROM herald.staff AS s WHERE s.db_role = session_user AND s.active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'you are not registered as staff (login role %)', session_user
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN v_me;
END
$$;

-- The common part of approve and reject: lock the message, check that
-- me may decide it now and return the ids of the requests me decides:
-- the pending ones at the lowest level me is entitled to. RAISEs
-- otherwise. Not granted: only approve and reject call it.
CREATE FUNCTION herald.decidable(me herald.staff, mid bigint, verb text)
RETURNS bigint[]
LANGUAGE plpgsql SET search_path = herald, pg_temp
AS $$
DECLARE
	v_msg    herald.messages;
	v_level  int;
	v_ids    bigint[];
	v_low    herald.approval_requests;
	v_states text;
	v_due    timestamptz;
BEGIN
	-- Every transition of a message's approvals locks the message first.
	SELECT m.* INTO v_msg FROM herald.messages AS m WHERE m.id = mid FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'message % does not exist', mid USING ERRCODE = 'no_data_found';
	END IF;
	IF lower(v_msg.sender) = me.address THEN
		RAISE EXCEPTION 'you cannot % your own message', verb
			USING ERRCODE = 'insufficient_privilege';
	END IF;

	SELECT r.* INTO v_low FROM herald.approval_requests AS r
	 WHERE r.message_id = mid AND r.state = 'pending'
	 ORDER BY r.level, r.kind LIMIT 1;
	IF NOT FOUND THEN
		SELECT string_agg(DISTINCT r.state, ', ') INTO v_states
		  FROM herald.approval_requests AS r WHERE r.message_id = mid;
		IF v_states IS NULL THEN
			RAISE EXCEPTION 'message % is not held for approval (class %)', mid, v_msg.class;
		END IF;
		RAISE EXCEPTION 'message % is not awaiting approval (its requests are %)', mid, v_states;
	END IF;

	SELECT min(r.level) INTO v_level
	  FROM herald.approval_requests AS r
	  LEFT JOIN herald.departments AS d ON d.name = r.department
	 WHERE r.message_id = mid AND r.state = 'pending'
	   AND CASE r.approver_role WHEN 'dept_head' THEN d.head IS NOT DISTINCT FROM me.address
	                            ELSE 'senior' = ANY (me.roles) END;
	IF v_level IS NULL THEN
		IF v_low.approver_role = 'dept_head' THEN
			RAISE EXCEPTION 'you are not the head of %', coalesce(v_low.department, '(no department)')
				USING ERRCODE = 'insufficient_privilege';
		END IF;
		RAISE EXCEPTION 'you are not senior leadership' USING ERRCODE = 'insufficient_privilege';
	END IF;

	SELECT array_agg(r.id ORDER BY r.id), min(r.due_at) INTO v_ids, v_due
	  FROM herald.approval_requests AS r
	  LEFT JOIN herald.departments AS d ON d.name = r.department
	 WHERE r.message_id = mid AND r.state = 'pending' AND r.level = v_level
	   AND CASE r.approver_role WHEN 'dept_head' THEN d.head IS NOT DISTINCT FROM me.address
	                            ELSE 'senior' = ANY (me.roles) END;

	IF EXISTS (SELECT 1 FROM herald.approval_requests AS r, herald.approval_requests AS lo
	            WHERE r.id = ANY (v_ids) AND lo.message_id = r.message_id AND lo.kind = r.kind
	              AND lo.level < r.level AND lo.state = 'pending') THEN
		RAISE EXCEPTION 'level 1 not yet approved'
			USING DETAIL = format('message %s waits for its department head first', mid);
	END IF;
	IF EXISTS (SELECT 1 FROM herald.approval_requests AS r, herald.approval_requests AS lo
	            WHERE r.id = ANY (v_ids) AND lo.message_id = r.message_id AND lo.kind = r.kind
	              AND lo.level < r.level AND lo.decided_by = me.address) THEN
		RAISE EXCEPTION 'you approved level 1 of message %; level 2 needs somebody else', mid
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF v_due < now() THEN
		RAISE EXCEPTION 'expired at %', herald.time_text(v_due);
	END IF;
	RETURN v_ids;
END
$$;

-- Approve message_id as the caller (see decidable for who may). When no
-- request of the message is pending any more its held deliveries are
-- queued, due now, with 'message.released' and NOTIFY herald_released
-- '<message_id>' in this transaction; when a level 2 request becomes
-- actionable the seniors are notified. One row per request approved.
CREATE FUNCTION herald.approve(message_id bigint, comment text DEFAULT NULL)
RETURNS TABLE (request_id bigint, kind text, level int, released boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_me       herald.staff := herald.caller();
	v_mid      bigint := approve.message_id;
	v_comment  text := nullif(btrim(approve.comment), '');
	v_ids      bigint[];
	v_released boolean;
	v_next     bigint[];
	v_n        int;
BEGIN
	v_ids := herald.decidable(v_me, v_mid, 'approve');

	WITH upd AS (
		UPDATE herald.approval_requests AS r
		   SET state = 'approved', decided_by = v_me.address, decided_at = now(),
		       comment = v_comment
		 WHERE r.id = ANY (v_ids) AND r.state = 'pending'
		RETURNING r.*
	)
	INSERT INTO herald.audit_events (actor, kind, message_id, detail)
	SELECT 'approver:' || session_user, 'approval.approved', upd.message_id,
	       jsonb_strip_nulls(jsonb_build_object(
	           'request_id', upd.id, 'kind', upd.kind, 'level', upd.level,
	           'approver_role', upd.approver_role, 'department', upd.department,
	           'by', v_me.address, 'comment', upd.comment))::text
	  FROM upd ORDER BY upd.id;

	SELECT coalesce(array_agg(r.id ORDER BY r.id), '{}') INTO v_next
	  FROM herald.approval_requests AS r WHERE r.message_id = v_mid AND r.state = 'pending';
	v_released := cardinality(v_next) = 0;

	IF v_released THEN
		WITH upd AS (
			UPDATE herald.deliveries AS d
			   SET state = 'queued', next_attempt_at = now(), updated_at = now()
			 WHERE d.message_id = v_mid AND d.state = 'held'
			RETURNING d.id
		)
		SELECT count(*) INTO v_n FROM upd;
		INSERT INTO herald.audit_events (actor, kind, message_id, detail)
		VALUES ('approver:' || session_user, 'message.released', v_mid,
		        jsonb_build_object('deliveries', v_n, 'by', v_me.address)::text);
		PERFORM pg_notify('herald_released', v_mid::text);
	ELSE
		PERFORM herald.notify_approvers(v_next, 'approval.requested');
		-- The notifications are queued deliveries: wake the dispatchers.
		PERFORM pg_notify('herald_released', v_mid::text);
	END IF;

	RETURN QUERY
	SELECT r.id, r.kind, r.level, v_released
	  FROM herald.approval_requests AS r WHERE r.id = ANY (v_ids) ORDER BY r.id;
END
$$;

-- Reject message_id as the caller with reason (required): the requests
-- the caller decides become 'rejected' (comment = reason), the others
-- still pending 'cancelled', the held deliveries rejected_by_approver;
-- audit events, and the sender is told the reason. One row per request
-- rejected.
CREATE FUNCTION herald.reject(message_id bigint, reason text)
RETURNS TABLE (request_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_me     herald.staff := herald.caller();
	v_mid    bigint := reject.message_id;
	v_reason text := nullif(btrim(reject.reason), '');
	v_ids    bigint[];
	v_msg    herald.messages;
	v_n      int;
BEGIN
	IF v_reason IS NULL THEN
		RAISE EXCEPTION 'a rejection needs a reason' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_ids := herald.decidable(v_me, v_mid, 'reject');
	SELECT m.* INTO v_msg FROM herald.messages AS m WHERE m.id = v_mid;

	WITH upd AS (
		UPDATE herald.approval_requests AS r
		   SET state = CASE WHEN r.id = ANY (v_ids) THEN 'rejected' ELSE 'cancelled' END,
		       decided_by = CASE WHEN r.id = ANY (v_ids) THEN v_me.address END,
		       decided_at = now(),
		       comment = CASE WHEN r.id = ANY (v_ids) THEN v_reason
		                      ELSE 'message rejected by ' || v_me.address END
		 WHERE r.message_id = v_mid AND r.state = 'pending'
		RETURNING r.*
	)
	INSERT INTO herald.audit_events (actor, kind, message_id, detail)
	SELECT 'approver:' || session_user, 'approval.' || upd.state, upd.message_id,
	       jsonb_strip_nulls(jsonb_build_object(
	           'request_id', upd.id, 'kind', upd.kind, 'level', upd.level,
	           'approver_role', upd.approver_role, 'department', upd.department,
	           'by', v_me.address, 'reason', v_reason))::text
	  FROM upd ORDER BY upd.id;

	WITH upd AS (
		UPDATE herald.deliveries AS d
		   SET state = 'rejected_by_approver', updated_at = now(), last_error = left(v_reason, 1024)
		 WHERE d.message_id = v_mid AND d.state = 'held'
		RETURNING d.id
	)
	SELECT count(*) INTO v_n FROM upd;
	INSERT INTO herald.audit_events (actor, kind, message_id, detail)
	VALUES ('approver:' || session_user, 'message.rejected', v_mid,
	        jsonb_build_object('deliveries', v_n, 'by', v_me.address, 'reason', v_reason)::text);

	PERFORM herald.notify(jsonb_build_array(jsonb_build_object(
		'to', v_msg.sender, 'about', v_mid, 'reason', 'message.rejected',
		'key', 'message.rejected:' || v_mid,
		'subject', format('[Herald] Message %s was rejected', v_mid),
		'body', format(E'Your message %s (subject: %s) was rejected by %s and will not be sent.\n\n'
		               '  Reason:  %s\n\n'
		               'Details:  heraldctl show %s\n',
		               v_mid, coalesce(v_msg.subject, '(none)'), v_me.address, v_reason, v_mid))));
	-- The sender's notification is a queued delivery: wake the dispatchers.
	PERFORM pg_notify('herald_released', v_mid::text);

	RETURN QUERY SELECT u.id FROM unnest(v_ids) AS u(id) ORDER BY u.id;
END
$$;

-- ---------------------------------------------------------------------
-- Looking
-- ---------------------------------------------------------------------

-- The pending requests the caller can act on now: entitled (head of the
-- request's department, or senior for level 2), not the sender, not the
-- level 1 approver of the same kind, no lower level pending, not past
-- due; optionally only of one department, one message class, or of
-- messages created more than older_than ago. Oldest due first. The first
-- parameter is named of_department, not department: PostgreSQL refuses
-- a parameter and an output column of the same name (call it
-- positionally).
CREATE FUNCTION herald.held_for_me(of_department text DEFAULT NULL, klass text DEFAULT NULL,
                                   older_than interval DEFAULT NULL)
RETURNS TABLE (message_id bigint, class text, channel text, sender text, department text,
               subject text, recipients int, kind text, level int, due_at timestamptz,
               created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_me herald.staff := herald.caller();
BEGIN
	RETURN QUERY
	SELECT m.id, m.class, m.channel, m.sender, r.department, m.subject,
	       (SELECT count(*) FROM herald.deliveries AS d WHERE d.message_id = m.id)::int,
	       r.kind, r.level, r.due_at, m.created_at
	  FROM herald.approval_requests AS r
	  JOIN herald.messages AS m ON m.id = r.message_id
	  LEFT JOIN herald.departments AS dp ON dp.name = r.department
	 WHERE r.state = 'pending'
	   AND r.due_at >= now()
	   AND CASE r.approver_role WHEN 'dept_head' THEN dp.head IS NOT DISTINCT FROM v_me.address
	                            ELSE 'senior' = ANY (v_me.roles) END
	   AND lower(m.sender) <> v_me.address
	   AND NOT EXISTS (SELECT 1 FROM herald.approval_requests AS lo
	                    WHERE lo.message_id = r.message_id AND lo.kind = r.kind
	                      AND lo.level < r.level
	                      AND (lo.state = 'pending' OR lo.decided_by = v_me.address))
	   AND (held_for_me.of_department IS NULL OR r.department = held_for_me.of_department)
	   AND (held_for_me.klass IS NULL OR m.class = held_for_me.klass)
	   AND (held_for_me.older_than IS NULL OR m.created_at <= now() - held_for_me.older_than)
	 ORDER BY r.due_at, m.id, r.kind, r.level;
END
$$;

-- Everything heraldctl show prints about message_id, as
--	{"message": {..}, "recipients": {"to": [..], "cc": [..], "to_count",
--	 "cc_count"} (lists cut at 100), "attachments": [{"name", "type",
--	 "size"}], "bulk_application": {..} | null, "approvals": [{"request_id",
--	 "kind", "level", "approver_role", "department", "state", "due_at",
--	 "remind_at", "reminded_at", "decided_by", "decided_at", "comment",
--	 "created_at"}], "deliveries": {"<state>": count}}.
-- Operators (herald_operator) and staff with role supervisor or operator
-- see every message; other staff the messages they can act on (entitled
-- to a pending request) or have decided.
CREATE FUNCTION herald.message_detail(message_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_mid bigint := message_detail.message_id;
	v_me  herald.staff;
	v_msg herald.messages;
BEGIN
	IF NOT pg_has_role(session_user, 'herald_operator', 'MEMBER') THEN
		v_me := herald.caller();
		IF NOT v_me.roles && ARRAY['supervisor', 'operator']
		   AND NOT EXISTS (
			SELECT 1 FROM herald.approval_requests AS r
			  JOIN herald.messages AS m ON m.id = r.message_id
			  LEFT JOIN herald.departments AS dp ON dp.name = r.department
			 WHERE r.message_id = v_mid
			   AND (r.decided_by = v_me.address
			        OR (r.state = 'pending' AND lower(m.sender) <> v_me.address
			            AND CASE r.approver_role
			                WHEN 'dept_head' THEN dp.head IS NOT DISTINCT FROM v_me.address
			                ELSE 'senior' = ANY (v_me.roles) END))) THEN
			RAISE EXCEPTION 'you may not see message %', v_mid
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	END IF;
	SELECT m.* INTO v_msg FROM herald.messages AS m WHERE m.id = v_mid;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'message % does not exist', v_mid USING ERRCODE = 'no_data_found';
	END IF;

	RETURN jsonb_build_object(
		'message', jsonb_build_object(
			'id', v_msg.id, 'app', v_msg.app, 'idempotency_key', v_msg.idempotency_key,
			'channel', v_msg.channel, 'sender', v_msg.sender,
			'sender_name', (SELECT s.name FROM herald.staff AS s WHERE s.address = lower(v_msg.sender)),
			'department', (SELECT s.department FROM herald.staff AS s
			                WHERE s.address = lower(v_msg.sender)),
			'class', v_msg.class, 'initial_state', v_msg.initial_state,
			'subject', v_msg.subject, 'body', v_msg.body, 'html', v_msg.html,
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
			'created_at', r.created_at) ORDER BY r.level, r.kind)
			FROM herald.approval_requests AS r WHERE r.message_id = v_mid), '[]'::jsonb),
		'deliveries', coalesce((SELECT jsonb_object_agg(x.state, x.n) FROM (
			SELECT d.state, count(*) AS n FROM herald.deliveries AS d
			 WHERE d.message_id = v_mid GROUP BY d.state) AS x), '{}'::jsonb));
END
$$;

-- ---------------------------------------------------------------------
-- Time passing
-- ---------------------------------------------------------------------

-- Called by heraldd every few seconds. Expires every message with a
-- pending request past due_at: all its pending requests become expired,
-- its held deliveries 'expired', events 'approval.expired' and
-- 'message.expired', and the sender is told which approval was missing.
-- Then reminds once the approvers of pending requests past remind_at
-- that they can act on now (reminded_at set, 'approval.reminded').
-- Messages and requests another session holds are skipped (the next
-- tick takes them). Returns the requests expired and reminded.
CREATE FUNCTION herald.approval_tick()
RETURNS TABLE (expired int, reminded int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_mids    bigint[];
	v_exp     int := 0;
	v_rem     bigint[];
	v_notes   jsonb;
BEGIN
	SELECT array_agg(x.id) INTO v_mids FROM (
		SELECT m.id FROM herald.messages AS m
		 WHERE m.id IN (SELECT r.message_id FROM herald.approval_requests AS r
		                 WHERE r.state = 'pending' AND r.due_at < now())
		 ORDER BY m.id
		   FOR UPDATE OF m SKIP LOCKED) AS x;

	IF v_mids IS NOT NULL THEN
		-- A new statement: sees what was committed before the locks were
		-- taken; a message decided meanwhile no longer qualifies.
		WITH due AS (
			SELECT DISTINCT r.message_id FROM herald.approval_requests AS r
			 WHERE r.message_id = ANY (v_mids) AND r.state = 'pending' AND r.due_at < now()
		), upd AS (
			UPDATE herald.approval_requests AS r
			   SET state = 'expired', decided_at = now(),
			       comment = CASE WHEN r.due_at < now()
			                      THEN 'not decided by ' || herald.time_text(r.due_at)
			                      ELSE 'another approval of the message expired' END
			  FROM due
			 WHERE r.message_id = due.message_id AND r.state = 'pending'
			RETURNING r.id, r.message_id, r.kind, r.level, r.approver_role, r.department,
			          r.due_at, r.due_at < now() AS past_due
		), dl AS (
			UPDATE herald.deliveries AS d
			   SET state = 'expired', updated_at = now(), last_error = 'approval expired'
			  FROM due
			 WHERE d.message_id = due.message_id AND d.state = 'held'
			RETURNING d.message_id
		), g AS (
			SELECT upd.message_id,
			       string_agg(herald.request_text(upd.kind, upd.level, upd.approver_role,
			                                      upd.department), ', '
			                  ORDER BY upd.kind, upd.level) FILTER (WHERE upd.past_due) AS what,
			       min(upd.due_at) AS due_at,
			       (SELECT count(*) FROM dl WHERE dl.message_id = upd.message_id) AS n
			  FROM upd GROUP BY upd.message_id
		), ev AS (
			INSERT INTO herald.audit_events (actor, kind, message_id, detail)
			SELECT x.actor, x.kind, x.message_id, x.detail FROM (
				SELECT 'broker:' || session_user, 'approval.expired', upd.message_id,
				       jsonb_build_object('request_id', upd.id, 'kind', upd.kind,
				                          'level', upd.level, 'approver_role', upd.approver_role,
				                          'due_at', to_char(upd.due_at AT TIME ZONE 'UTC',
				                                            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text,
				       upd.id
				  FROM upd
				UNION ALL
				-- After the message's requests (ids are far below this).
				SELECT 'broker:' || session_user, 'message.expired', g.message_id,
				       jsonb_build_object('deliveries', g.n)::text, 9223372036854775807
				  FROM g
			) AS x(actor, kind, message_id, detail, sub)
			 ORDER BY x.message_id, x.sub
		)
		SELECT (SELECT count(*) FROM upd),
		       (SELECT jsonb_agg(jsonb_build_object(
		                  'to', m.sender, 'about', m.id, 'reason', 'message.expired',
		                  'key', 'message.expired:' || m.id,
		                  'subject', format('[Herald] Message %s expired without approval', m.id),
		                  'body', format(E'Your message %s (subject: %s) was not approved in time and will not be sent.\n\n'
		                                 '  Waiting for:  %s\n'
		                                 '  Due:          %s\n\n'
		                                 'Details:  heraldctl show %s\n',
		                                 m.id, coalesce(m.subject, '(none)'), g.what,
		                                 herald.time_text(g.due_at), m.id))
		                  ORDER BY m.id)
		          FROM g JOIN herald.messages AS m ON m.id = g.message_id)
		  INTO v_exp, v_notes;
		IF v_notes IS NOT NULL THEN
			PERFORM herald.notify(v_notes);
		END IF;
	END IF;

	WITH due AS (
		SELECT r.id FROM herald.approval_requests AS r
		 WHERE r.state = 'pending' AND r.reminded_at IS NULL AND r.remind_at <= now()
		   AND r.due_at >= now()
		   AND NOT EXISTS (SELECT 1 FROM herald.approval_requests AS lo
		                    WHERE lo.message_id = r.message_id AND lo.kind = r.kind
		                      AND lo.level < r.level AND lo.state = 'pending')
		 ORDER BY r.remind_at
		   FOR UPDATE OF r SKIP LOCKED
	), upd AS (
		UPDATE herald.approval_requests AS r
		   SET reminded_at = now()
		  FROM due
		 WHERE r.id = due.id AND r.state = 'pending' AND r.reminded_at IS NULL
		RETURNING r.id, r.message_id, r.kind, r.level, r.approver_role
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, detail)
		SELECT 'broker:' || session_user, 'approval.reminded', upd.message_id,
		       jsonb_build_object('request_id', upd.id, 'kind', upd.kind, 'level', upd.level,
		                          'approver_role', upd.approver_role)::text
		  FROM upd ORDER BY upd.id
	)
	SELECT array_agg(upd.id ORDER BY upd.id) INTO v_rem FROM upd;
	IF v_rem IS NOT NULL THEN
		PERFORM herald.notify_approvers(v_rem, 'approval.reminder');
	END IF;

	RETURN QUERY SELECT v_exp, coalesce(cardinality(v_rem), 0);
END
$$;

-- ---------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------

REVOKE ALL ON herald.settings, herald.departments, herald.staff, herald.approval_requests
	FROM PUBLIC;
REVOKE ALL ON SEQUENCE herald.approval_requests_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION herald.notify(jsonb),
	herald.org_doc_departments(jsonb),
	herald.org_doc_staff(jsonb),
	herald.request_text(text, int, text, text),
	herald.time_text(timestamptz),
	herald.notify_approvers(bigint[], text),
	herald.intake_batch(jsonb),
	herald.org_import(jsonb),
	herald.caller(),
	herald.decidable(herald.staff, bigint, text),
	herald.approve(bigint, text),
	herald.reject(bigint, text),
	herald.held_for_me(text, text, interval),
	herald.message_detail(bigint),
	herald.approval_tick() FROM PUBLIC;

-- The broker and operators read everything (as in 001); nobody writes
-- these tables but the functions above.
GRANT SELECT ON herald.settings, herald.departments, herald.staff, herald.approval_requests
	TO herald_broker, herald_operator;

GRANT EXECUTE ON FUNCTION herald.intake_batch(jsonb), herald.approval_tick() TO herald_broker;
GRANT EXECUTE ON FUNCTION herald.org_import(jsonb), herald.message_detail(bigint)
	TO herald_operator;
GRANT EXECUTE ON FUNCTION herald.approve(bigint, text), herald.reject(bigint, text),
	herald.held_for_me(text, text, interval), herald.message_detail(bigint) TO herald_approver;
