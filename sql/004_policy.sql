-- NAME
--	004_policy - the database half of the sending policy: the IM work
--	group registry, SMS consents and frequency caps, violations
-- DESCRIPTION
--	POLICY I1/I3: IM messages go only to registered work groups, and only
--	from the departments a group admits. S1: marketing SMS needs a live
--	consent of the number. S3: per-recipient SMS frequency caps; excess
--	messages are deferred, never dropped. V2: every policy rejection or
--	warning is a violation row, reported per sender or department.
--
--	heraldd's policy module decides everything it can from the message
--	and its configuration and hands intake_batch() its findings, its
--	rejection and the rules that need the database ("db_rules"); this
--	migration evaluates those rules inside the same transaction that
--	stores the batch, so a check and the write it allows cannot drift.
--	The registries are written only through the SECURITY DEFINER
--	functions below, each with its audit event.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- DECISIONS (where the contract left room; an auditor's reading)
--	- Work groups: a group admits the departments listed in departments,
--	  which must not be empty (fail safe: nobody is admitted by default);
--	  the entry '*' admits every department and cannot be mixed with
--	  names. A sender without a department is admitted only by '*'.
--	  Names compare case-sensitively, as on the wire. group_remove
--	  deactivates (the row and its history stay); group_add on a removed
--	  group reactivates it. The endpoint is the NAME of an entry in the
--	  worker's configuration (herald-worker.conf), which holds the URL and
--	  the secret: the column only accepts [A-Za-z0-9._-], so a URL, and a
--	  token inside one, cannot be stored by mistake.
--	- Consents: consent_revoke records an opt-out even for a number with
--	  no consent on record, so an older consent list imported later
--	  cannot re-grant it: consent_import never overrides a revocation
--	  unless the imported granted_at is later than the revocation.
--	  consent_add, an operator's explicit act, does. Adding a consent
--	  that is already granted, or revoking one already revoked, changes
--	  nothing and writes no event.
--	- Precedence at intake: idempotency first (a resend of a stored
--	  message is answered as the duplicate it is, even if the policy
--	  would refuse it now: consent revoked, group removed, lists
--	  changed; PROTOCOL 1.7), then a rejection by heraldd ("reject"),
--	  then an unknown sender ('unknown_sender', nothing written, no
--	  violation: the submission never reached the policy), then the
--	  database's rules (I3, S1). A refused submission that was never
--	  stored is refused again when resent, and its violation recorded
--	  each time.
--	- A violation row is written for every finding whose action is
--	  reject or warn of a stored or rejected item, never for a duplicate.
--	  Its department is the sender's department in staff at that moment
--	  (NULL for unknown senders), its sender the lower-cased address.
--	- S3 windows are sliding: with a cap of N per S seconds no interval of
--	  S seconds may hold more than N deliveries to one recipient, counting
--	  the ones already scheduled in the future (deferred earlier), not
--	  only those before. A delivery counts at sent_at once sent, else at
--	  next_attempt_at; held, queued, dispatched, retry_wait and sent
--	  deliveries count. Concurrent batches to the same recipient are
--	  serialised by a transaction advisory lock per recipient (class key
--	  1395929923), taken in key order.
--	- message_detail: the sender may now read their own message (the
--	  rejection and expiry notices tell them to run heraldctl show).
--	  Confidential body and html go only to the sender, the message's
--	  approvers (entitled to a pending request, or who decided one) and
--	  staff with role supervisor; everybody else who may see the message
--	  (operators included) gets them as null with "redacted": true.
--	- Audit actors: 'operator:<login role>' for the registries,
--	  'app:<app>' for intake's policy events.
-- CHANGES TO EARLIER OBJECTS
--	herald.intake_batch(jsonb) is dropped and re-created with the
--	columns error_field, error_reason and findings (the first six keep
--	their meaning; error may also be 'policy'). herald.approve() keeps a
--	deferral on release (next_attempt_at = greatest(now(), its value)).
--	herald.message_detail() gains "findings", "violations" and
--	"redacted". messages gains findings; deliveries an index for the S3
--	count.

-- ---------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------

-- The names of IM groups and worker endpoints: 1..64 of A-Z a-z 0-9 . _ -,
-- starting with a letter or digit (PROTOCOL.md §1.4 for groups).
CREATE FUNCTION herald.is_plain_name(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN s ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';

-- E.164 as on the wire: '+', then 8..15 digits, the first not 0.
CREATE FUNCTION herald.is_e164(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN s ~ '^\+[1-9][0-9]{7,14}$';

CREATE TABLE herald.im_groups (
	name        text PRIMARY KEY CHECK (herald.is_plain_name(name)),
	purpose     text NOT NULL CHECK (btrim(purpose) <> ''),
	owner       text NOT NULL REFERENCES herald.staff (address),
	provider    text NOT NULL CHECK (provider IN ('slack', 'mattermost', 'teams', 'wecom',
	                                              'dingtalk', 'feishu', 'webhook')),
	-- The name of the worker's endpoint entry (URL and secret live there).
	endpoint    text NOT NULL CHECK (herald.is_plain_name(endpoint)),
	departments text[] NOT NULL CHECK (cardinality(departments) > 0
	                                   AND array_position(departments, NULL) IS NULL
	                                   AND ('*' <> ALL (departments) OR cardinality(departments) = 1)),
	active      boolean NOT NULL DEFAULT true,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE herald.sms_consents (
	number         text PRIMARY KEY CHECK (herald.is_e164(number)),
	state          text NOT NULL CHECK (state IN ('granted', 'revoked')),
	granted_at     timestamptz,
	granted_source text,
	revoked_at     timestamptz,
	revoked_source text,
	updated_at     timestamptz NOT NULL DEFAULT now(),
	-- The number's consent.granted / consent.revoked audit events, oldest
	-- first: its history without an index on the whole audit trail.
	event_ids      bigint[] NOT NULL DEFAULT '{}',
	CONSTRAINT sms_consents_granted CHECK (
		state <> 'granted' OR (granted_at IS NOT NULL AND coalesce(btrim(granted_source), '') <> '')),
	CONSTRAINT sms_consents_revoked CHECK (
		state <> 'revoked' OR (revoked_at IS NOT NULL AND coalesce(btrim(revoked_source), '') <> ''))
);

-- Append-only by privileges: nobody but the owner has UPDATE or DELETE.
CREATE TABLE herald.violations (
	id         bigserial PRIMARY KEY,
	at         timestamptz NOT NULL DEFAULT now(),
	sender     text NOT NULL,
	department text,
	app        text,
	-- NULL for a rejected submission: nothing was stored. An id, not a
	-- foreign key: violations outlive messages pruned later (as audit
	-- events do).
	message_id bigint,
	rule       text NOT NULL,
	clause     text NOT NULL,
	severity   text NOT NULL CHECK (severity IN ('info', 'minor', 'major', 'critical')),
	action     text NOT NULL CHECK (action IN ('reject', 'hold', 'tag', 'defer', 'warn')),
	reason     text,
	field      text
);
CREATE INDEX violations_at_idx ON herald.violations (at);
CREATE INDEX violations_sender_at_idx ON herald.violations (sender, at);
CREATE INDEX violations_department_at_idx ON herald.violations (department, at);
CREATE INDEX violations_message_id_idx ON herald.violations (message_id)
	WHERE message_id IS NOT NULL;

ALTER TABLE herald.messages ADD COLUMN findings jsonb NOT NULL DEFAULT '[]';

-- S3: a recipient's SMS deliveries by the time they count at. Partial,
-- so email and IM intake do not maintain it.
CREATE INDEX deliveries_sms_recipient_idx
	ON herald.deliveries (recipient, (coalesce(sent_at, next_attempt_at)))
	WHERE channel = 'sms';

-- ---------------------------------------------------------------------
-- Who may manage and read
-- ---------------------------------------------------------------------

-- The audit actor of an operator ('operator:<login role>'): members of
-- herald_operator and active staff with role operator; RAISEs for anybody
-- else, naming what they tried (what).
CREATE FUNCTION herald.operator_actor(what text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = herald, pg_temp
AS $$
BEGIN
	IF pg_has_role(session_user, 'herald_operator', 'MEMBER')
	   OR EXISTS (SELECT 1 FROM herald.staff AS s
	               WHERE s.db_role = session_user AND s.active AND 'operator' = ANY (s.roles)) THEN
		RETURN 'operator:' || session_user;
	END IF;
	RAISE EXCEPTION 'only operators may %', what USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Violations are read by operators and by staff with role supervisor or
-- operator (POLICY V1/V2: the supervision group). RAISEs for anybody else.
CREATE FUNCTION herald.check_supervisor() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = herald, pg_temp
AS $$
BEGIN
	IF pg_has_role(session_user, 'herald_operator', 'MEMBER')
	   OR EXISTS (SELECT 1 FROM herald.staff AS s
	               WHERE s.db_role = session_user AND s.active
	                 AND s.roles && ARRAY['supervisor', 'operator']) THEN
		RETURN;
	END IF;
	RAISE EXCEPTION 'only supervisors and operators may read violations'
		USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE FUNCTION herald.iso_ms(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

-- ---------------------------------------------------------------------
-- The work group registry (I1, I3)
-- ---------------------------------------------------------------------

-- Register group_name, or update it (and reactivate it when removed).
-- owner is a staff address (lower-cased here), departments existing
-- department names (stored trimmed, sorted, once each) or exactly
-- {'*'}. Returns 'added', 'updated' or
-- 'unchanged'; an event group.added / group.updated when something
-- changed. RAISEs naming the first problem.
CREATE FUNCTION herald.group_add(group_name text, purpose text, owner text, provider text,
                                 endpoint text, departments text[])
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_actor text := herald.operator_actor('manage the work group registry');
	v_owner text := lower(btrim(group_add.owner));
	v_deps  text[];
	v_old   herald.im_groups;
	v_new   herald.im_groups;
	v_bad   text;
BEGIN
	IF group_name IS NULL OR NOT herald.is_plain_name(group_name) THEN
		RAISE EXCEPTION 'group name % is not 1..64 of A-Z a-z 0-9 . _ - starting with a letter or digit',
			coalesce('"' || group_name || '"', 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF coalesce(btrim(group_add.purpose), '') = '' THEN
		RAISE EXCEPTION 'group "%" needs a purpose', group_name
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM herald.staff AS s WHERE s.address = v_owner AND s.active) THEN
		RAISE EXCEPTION 'owner % is not active staff', coalesce(v_owner, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF group_add.provider IS NULL OR group_add.provider NOT IN
	   ('slack', 'mattermost', 'teams', 'wecom', 'dingtalk', 'feishu', 'webhook') THEN
		RAISE EXCEPTION 'provider % is not one of slack, mattermost, teams, wecom, dingtalk, feishu, webhook',
			coalesce(group_add.provider, 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF group_add.endpoint IS NULL OR NOT herald.is_plain_name(group_add.endpoint) THEN
		RAISE EXCEPTION 'endpoint must name an entry of the worker configuration (1..64 of A-Z a-z 0-9 . _ -), not a URL or a secret'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT coalesce(array_agg(DISTINCT btrim(d)), '{}') INTO v_deps
	  FROM unnest(group_add.departments) AS d WHERE coalesce(btrim(d), '') <> '';
	IF cardinality(v_deps) = 0 THEN
		RAISE EXCEPTION 'group "%" needs the departments that may post to it (or * for all)', group_name
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF '*' = ANY (v_deps) AND cardinality(v_deps) > 1 THEN
		RAISE EXCEPTION '* (every department) cannot be combined with department names'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT d INTO v_bad FROM unnest(v_deps) AS d
	 WHERE d <> '*' AND NOT EXISTS (SELECT 1 FROM herald.departments AS dp WHERE dp.name = d)
	 ORDER BY d LIMIT 1;
	IF v_bad IS NOT NULL THEN
		RAISE EXCEPTION 'department % does not exist', v_bad USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT g.* INTO v_old FROM herald.im_groups AS g WHERE g.name = group_name FOR UPDATE;
	INSERT INTO herald.im_groups AS g (name, purpose, owner, provider, endpoint, departments)
	VALUES (group_name, btrim(group_add.purpose), v_owner, group_add.provider, group_add.endpoint,
	        v_deps)
	    ON CONFLICT (name) DO UPDATE
	   SET purpose = EXCLUDED.purpose, owner = EXCLUDED.owner, provider = EXCLUDED.provider,
	       endpoint = EXCLUDED.endpoint, departments = EXCLUDED.departments, active = true,
	       updated_at = now()
	 WHERE (g.purpose, g.owner, g.provider, g.endpoint, g.departments, g.active)
	       IS DISTINCT FROM (EXCLUDED.purpose, EXCLUDED.owner, EXCLUDED.provider,
	                         EXCLUDED.endpoint, EXCLUDED.departments, true)
	RETURNING g.* INTO v_new;
	IF v_new.name IS NULL THEN
		RETURN 'unchanged';
	END IF;
	INSERT INTO herald.audit_events (actor, kind, detail)
	VALUES (v_actor, CASE WHEN v_old.name IS NULL THEN 'group.added' ELSE 'group.updated' END,
	        jsonb_strip_nulls(jsonb_build_object(
	            'name', v_new.name, 'purpose', v_new.purpose, 'owner', v_new.owner,
	            'provider', v_new.provider, 'endpoint', v_new.endpoint,
	            'departments', to_jsonb(v_new.departments),
	            'reactivated', CASE WHEN v_old.name IS NOT NULL AND NOT v_old.active THEN true END))::text);
	RETURN CASE WHEN v_old.name IS NULL THEN 'added' ELSE 'updated' END;
END
$$;

-- Deactivate group_name (kept, with its history): 'removed', or
-- 'unchanged' when it was removed already; RAISEs for an unknown group.
-- Event group.removed.
CREATE FUNCTION herald.group_remove(group_name text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_actor text := herald.operator_actor('manage the work group registry');
	v_g     herald.im_groups;
BEGIN
	SELECT g.* INTO v_g FROM herald.im_groups AS g WHERE g.name = group_name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" is not registered', group_name USING ERRCODE = 'no_data_found';
	END IF;
	IF NOT v_g.active THEN
		RETURN 'unchanged';
	END IF;
	UPDATE herald.im_groups AS g SET active = false, updated_at = now() WHERE g.name = group_name;
	INSERT INTO herald.audit_events (actor, kind, detail)
	VALUES (v_actor, 'group.removed', jsonb_build_object('name', group_name)::text);
	RETURN 'removed';
END
$$;

-- Every registered group, active first, by name.
CREATE FUNCTION herald.group_list()
RETURNS TABLE (name text, purpose text, owner text, provider text, endpoint text,
               departments text[], active boolean, created_at timestamptz,
               updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	PERFORM herald.operator_actor('list the work group registry');
	RETURN QUERY
	SELECT g.name, g.purpose, g.owner, g.provider, g.endpoint, g.departments, g.active,
	       g.created_at, g.updated_at
	  FROM herald.im_groups AS g
	 ORDER BY g.active DESC, g.name;
END
$$;

-- ---------------------------------------------------------------------
-- SMS consents (S1)
-- ---------------------------------------------------------------------

CREATE FUNCTION herald.check_consent_args(phone text, source text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = herald, pg_temp
AS $$
BEGIN
	IF phone IS NULL OR NOT herald.is_e164(phone) THEN
		RAISE EXCEPTION '% is not an E.164 number (+ then 8 to 15 digits, the first not 0)',
			coalesce('"' || phone || '"', 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF coalesce(btrim(source), '') = '' THEN
		RAISE EXCEPTION 'a consent change needs its source (where the consent or opt-out came from)'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;

-- Record that phone consented to marketing SMS now, from source. Returns
-- 'granted', or 'unchanged' when it is granted already. Overrides an
-- earlier opt-out (an explicit act). Event consent.granted.
CREATE FUNCTION herald.consent_add(phone text, source text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_actor text := herald.operator_actor('manage SMS consents');
	v_row   herald.sms_consents;
	v_eid   bigint;
BEGIN
	PERFORM herald.check_consent_args(phone, source);
	INSERT INTO herald.sms_consents AS c (number, state, granted_at, granted_source)
	VALUES (phone, 'granted', now(), btrim(source))
	    ON CONFLICT (number) DO UPDATE
	   SET state = 'granted', granted_at = now(), granted_source = EXCLUDED.granted_source,
	       revoked_at = NULL, revoked_source = NULL, updated_at = now()
	 WHERE c.state <> 'granted'
	RETURNING c.* INTO v_row;
	IF v_row.number IS NULL THEN
		RETURN 'unchanged';
	END IF;
	INSERT INTO herald.audit_events (actor, kind, detail)
	VALUES (v_actor, 'consent.granted',
	        jsonb_build_object('number', phone, 'source', v_row.granted_source,
	                           'granted_at', herald.iso_ms(v_row.granted_at))::text)
	RETURNING id INTO v_eid;
	UPDATE herald.sms_consents AS c SET event_ids = c.event_ids || v_eid WHERE c.number = phone;
	RETURN 'granted';
END
$$;

-- Record phone's opt-out now, from source (required). Returns 'revoked',
-- or 'unchanged' when it is revoked already. A number without a consent
-- gets a revoked record (see DECISIONS). Event consent.revoked.
CREATE FUNCTION herald.consent_revoke(phone text, source text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_actor text := herald.operator_actor('manage SMS consents');
	v_row   herald.sms_consents;
	v_eid   bigint;
BEGIN
	PERFORM herald.check_consent_args(phone, source);
	INSERT INTO herald.sms_consents AS c (number, state, revoked_at, revoked_source)
	VALUES (phone, 'revoked', now(), btrim(source))
	    ON CONFLICT (number) DO UPDATE
	   SET state = 'revoked', revoked_at = now(), revoked_source = EXCLUDED.revoked_source,
	       updated_at = now()
	 WHERE c.state <> 'revoked'
	RETURNING c.* INTO v_row;
	IF v_row.number IS NULL THEN
		RETURN 'unchanged';
	END IF;
	INSERT INTO herald.audit_events (actor, kind, detail)
	VALUES (v_actor, 'consent.revoked',
	        jsonb_build_object('number', phone, 'source', v_row.revoked_source,
	                           'revoked_at', herald.iso_ms(v_row.revoked_at))::text)
	RETURNING id INTO v_eid;
	UPDATE herald.sms_consents AS c SET event_ids = c.event_ids || v_eid WHERE c.number = phone;
	RETURN 'revoked';
END
$$;

-- Import consents: doc = [{"number", "source", "granted_at": ISO 8601 |
-- null (= now)}]. Everything is checked first; the first problem RAISEs
-- naming its entry (1-based). A number listed twice counts once (the
-- last entry). Idempotent: a number already granted is unchanged; a
-- revoked one is re-granted only by an entry whose granted_at is later
-- than the revocation. One consent.granted event per number granted.
-- Returns how many were granted, unchanged and kept revoked.
CREATE FUNCTION herald.consent_import(doc jsonb)
RETURNS TABLE (granted int, unchanged int, kept_revoked int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_actor text := herald.operator_actor('manage SMS consents');
	v_bad   text;
	v_n     int;
	v_g     int;
	v_kept  int;
	v_nums  text[];
	v_eids  bigint[];
BEGIN
	IF jsonb_typeof(doc) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'consent_import: doc must be a JSON array, got %',
			coalesce(jsonb_typeof(doc), 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT format('consent_import: entry %s: %s', x.ord,
	              CASE WHEN jsonb_typeof(x.e) IS DISTINCT FROM 'object' THEN 'not an object'
	                   WHEN x.e->>'number' IS NULL OR NOT herald.is_e164(x.e->>'number')
	                   THEN format('%s is not an E.164 number (+ then 8 to 15 digits, the first not 0)',
	                               coalesce('"' || (x.e->>'number') || '"', 'no number'))
	                   WHEN coalesce(btrim(x.e->>'source'), '') = '' THEN 'no source'
	                   ELSE 'granted_at is in the future' END)
	  INTO v_bad
	  FROM jsonb_array_elements(doc) WITH ORDINALITY AS x(e, ord)
	 WHERE jsonb_typeof(x.e) IS DISTINCT FROM 'object'
	    OR x.e->>'number' IS NULL OR NOT herald.is_e164(x.e->>'number')
	    OR coalesce(btrim(x.e->>'source'), '') = ''
	    OR (x.e->>'granted_at')::timestamptz > now() + interval '5 minutes'
	 ORDER BY x.ord LIMIT 1;
	IF v_bad IS NOT NULL THEN
		RAISE EXCEPTION '%', v_bad USING ERRCODE = 'invalid_parameter_value';
	END IF;

	WITH x AS (
		SELECT DISTINCT ON (u.e->>'number')
		       u.e->>'number' AS number, btrim(u.e->>'source') AS source,
		       coalesce((u.e->>'granted_at')::timestamptz, now()) AS at,
		       (u.e->>'granted_at') IS NOT NULL AS dated
		  FROM jsonb_array_elements(doc) WITH ORDINALITY AS u(e, ord)
		 ORDER BY u.e->>'number', u.ord DESC
	), up AS (
		INSERT INTO herald.sms_consents AS c (number, state, granted_at, granted_source)
		SELECT x.number, 'granted', x.at, x.source FROM x ORDER BY x.number
		    ON CONFLICT (number) DO UPDATE
		   SET state = 'granted', granted_at = EXCLUDED.granted_at,
		       granted_source = EXCLUDED.granted_source, revoked_at = NULL,
		       revoked_source = NULL, updated_at = now()
		 WHERE c.state = 'revoked'
		   AND EXCLUDED.granted_at > c.revoked_at
		   AND EXISTS (SELECT 1 FROM x WHERE x.number = c.number AND x.dated)
		RETURNING c.number, c.granted_source, c.granted_at
	), ev AS (
		INSERT INTO herald.audit_events AS t (actor, kind, detail)
		SELECT v_actor, 'consent.granted',
		       jsonb_build_object('number', up.number, 'source', up.granted_source,
		                          'granted_at', herald.iso_ms(up.granted_at),
		                          'imported', true)::text
		  FROM up ORDER BY up.number
		RETURNING t.id, t.detail::jsonb ->> 'number' AS number
	)
	SELECT (SELECT count(*) FROM x), (SELECT count(*) FROM up),
	       (SELECT array_agg(ev.number ORDER BY ev.id) FROM ev),
	       (SELECT array_agg(ev.id ORDER BY ev.id) FROM ev)
	  INTO v_n, v_g, v_nums, v_eids;
	UPDATE herald.sms_consents AS c SET event_ids = c.event_ids || u.id
	  FROM unnest(v_nums, v_eids) AS u(number, id)
	 WHERE c.number = u.number;

	-- A new statement: sees the rows the import just wrote.
	SELECT count(*) INTO v_kept
	  FROM herald.sms_consents AS c
	 WHERE c.state = 'revoked'
	   AND c.number IN (SELECT DISTINCT u.e->>'number' FROM jsonb_array_elements(doc) AS u(e));
	RETURN QUERY SELECT v_g, v_n - v_g - v_kept, v_kept;
END
$$;

-- phone's consent now (state 'none' when nothing is recorded) and its
-- history, oldest first: [{"at", "event": "granted" | "revoked",
-- "actor", "source", "imported"}] from the audit trail.
CREATE FUNCTION herald.consent_show(phone text)
RETURNS TABLE (number text, state text, granted_at timestamptz, granted_source text,
               revoked_at timestamptz, revoked_source text, updated_at timestamptz,
               history jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	PERFORM herald.operator_actor('read SMS consents');
	IF phone IS NULL OR NOT herald.is_e164(phone) THEN
		RAISE EXCEPTION '% is not an E.164 number (+ then 8 to 15 digits, the first not 0)',
			coalesce('"' || phone || '"', 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT phone, coalesce(c.state, 'none'), c.granted_at, c.granted_source, c.revoked_at,
	       c.revoked_source, c.updated_at,
	       coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
	                        'at', herald.iso_ms(e.at),
	                        'event', substr(e.kind, 9),
	                        'actor', e.actor,
	                        'source', e.detail::jsonb ->> 'source',
	                        'imported', (e.detail::jsonb -> 'imported')))
	                        ORDER BY e.id)
	                   FROM herald.audit_events AS e
	                  WHERE e.id = ANY (c.event_ids)), '[]'::jsonb)
	  FROM (SELECT 1) AS one
	  LEFT JOIN herald.sms_consents AS c ON c.number = phone;
END
$$;

-- ---------------------------------------------------------------------
-- Intake: the rules that need the database
-- ---------------------------------------------------------------------

-- I3 for one IM item: NULL when every group in recipients is active,
-- registered and admits department; else the first offender as
-- {rule, clause, severity, field, reason}.
CREATE FUNCTION herald.policy_im_group(rule jsonb, recipients jsonb, department text)
RETURNS jsonb
LANGUAGE sql STABLE SET search_path = herald, pg_temp
AS $$
SELECT jsonb_build_object(
	'rule', coalesce(rule->>'rule', 'im_group'),
	'clause', coalesce(rule->>'clause', 'I3'),
	'severity', coalesce(rule->>'severity', 'major'),
	'field', format('msg.to[%s]', t.pos - 1),
	'reason', CASE
		WHEN g.name IS NULL
		THEN format('group "%s" is not a registered work group (POLICY %s)',
		            t.name, coalesce(rule->>'clause', 'I3'))
		WHEN NOT g.active
		THEN format('group "%s" was removed from the work group registry (POLICY %s)',
		            t.name, coalesce(rule->>'clause', 'I3'))
		ELSE format('%s may not post to group "%s" (allowed: %s) (POLICY %s)',
		            coalesce(department, 'a sender without a department'), t.name,
		            array_to_string(g.departments, ', '), coalesce(rule->>'clause', 'I3'))
		END)
  FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(recipients) = 'array' THEN recipients
                                      ELSE '[]' END) WITH ORDINALITY AS t(name, pos)
  LEFT JOIN herald.im_groups AS g ON g.name = t.name
 WHERE g.name IS NULL OR NOT g.active
    OR NOT ('*' = ANY (g.departments) OR coalesce(department = ANY (g.departments), false))
 ORDER BY t.pos
 LIMIT 1
$$;

-- S1 for one marketing SMS item: NULL when every number has a granted
-- consent; else the first offender as {rule, clause, severity, field, reason}.
CREATE FUNCTION herald.policy_sms_consent(rule jsonb, recipients jsonb)
RETURNS jsonb
LANGUAGE sql STABLE SET search_path = herald, pg_temp
AS $$
SELECT jsonb_build_object(
	'rule', coalesce(rule->>'rule', 'sms_consent'),
	'clause', coalesce(rule->>'clause', 'S1'),
	'severity', coalesce(rule->>'severity', 'major'),
	'field', format('msg.to[%s]', t.pos - 1),
	'reason', CASE
		WHEN c.state = 'revoked'
		THEN format('%s opted out of marketing SMS on %s (POLICY %s)', t.num,
		            herald.time_text(c.revoked_at), coalesce(rule->>'clause', 'S1'))
		ELSE format('%s has not consented to marketing SMS (POLICY %s)', t.num,
		            coalesce(rule->>'clause', 'S1'))
		END)
  FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(recipients) = 'array' THEN recipients
                                      ELSE '[]' END) WITH ORDINALITY AS t(num, pos)
  LEFT JOIN herald.sms_consents AS c ON c.number = t.num
 WHERE c.state IS DISTINCT FROM 'granted'
 ORDER BY t.pos
 LIMIT 1
$$;

-- S3: the earliest time >= t0 at which one more SMS to a recipient keeps
-- every cap k (at most counts[k] in any pers[k] seconds), given the
-- times (sorted ascending) its other deliveries count at, past and
-- future. cap is the first cap that t0 itself breaks (0: slot = t0).
-- A feasible time is t0 or some time + per (when the oldest of a dense
-- run leaves the window), so only those are tried, in order; t breaks
-- cap k when some k others and t lie in an interval shorter than per,
-- and those others are consecutive in time, so c + 1 blocks are checked.
CREATE FUNCTION herald.sms_cap_slot(times timestamptz[], t0 timestamptz, counts int[],
                                    pers int[], OUT slot timestamptz, OUT cap int)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = herald, pg_temp
AS $$
DECLARE
	v_n   int := coalesce(cardinality(times), 0);
	v_c   timestamptz;
	v_w   interval;
	v_j   int;
	v_lo  int;
	v_hi  int;
	v_mid int;
	v_bad boolean;
	k     int;
	a     int;
BEGIN
	cap := 0;
	FOR v_c IN
		SELECT t0
		UNION
		SELECT x + make_interval(secs => p)
		  FROM unnest(times) AS x, unnest(pers) AS p
		 WHERE x + make_interval(secs => p) > t0
		 ORDER BY 1
	LOOP
		-- v_j: how many of times are <= v_c.
		v_lo := 0;
		v_hi := v_n;
		WHILE v_lo < v_hi LOOP
			v_mid := (v_lo + v_hi + 1) / 2;
			IF times[v_mid] <= v_c THEN
				v_lo := v_mid;
			ELSE
				v_hi := v_mid - 1;
			END IF;
		END LOOP;
		v_j := v_lo;
		v_bad := false;
		FOR k IN 1 .. cardinality(counts) LOOP
			v_w := make_interval(secs => pers[k]);
			FOR a IN 0 .. counts[k] LOOP
				v_lo := v_j - a + 1;
				v_hi := v_j + counts[k] - a;
				CONTINUE WHEN v_lo < 1 OR v_hi > v_n;
				IF greatest(v_c, times[v_hi]) - least(v_c, times[v_lo]) < v_w THEN
					v_bad := true;
					EXIT;
				END IF;
			END LOOP;
			IF v_bad THEN
				IF cap = 0 THEN
					cap := k;
				END IF;
				EXIT;
			END IF;
		END LOOP;
		IF NOT v_bad THEN
			slot := v_c;
			RETURN;
		END IF;
	END LOOP;
	RAISE EXCEPTION 'sms_cap_slot: no slot after %', t0;  -- cannot happen: the last candidate is free
END
$$;

-- The policy pass of intake_batch, for the items that carry "reject",
-- "db_rules" or "not_before" (see intake_batch): an object with one key
-- per such item, its ord, holding {"rejected": bool, "error_field", "error_reason",
-- "violation": the database's own rejection {rule, clause, severity,
-- field, reason} | null, "times": [next_attempt_at per "to"] | null (S3),
-- "db_findings": [S3 defer findings] | null, "deferred": [{"pos",
-- "until", "rule", "clause", "reason"}], "quiet": {"until", "rule",
-- "clause", "reason"}}; absent keys mean none. Items of unknown senders
-- are left out (they get 'unknown_sender'). RAISEs for a db rule it does
-- not know or a malformed cap (a programming error in heraldd).
-- Not granted: only intake_batch calls it.
CREATE FUNCTION herald.intake_policy(batch jsonb)
RETURNS jsonb
LANGUAGE plpgsql SET search_path = herald, pg_temp
AS $$
DECLARE
	r        record;
	v_out    jsonb := '{}';
	v_rule   jsonb;
	v_check  text;
	v_err    jsonb;
	v_t0     timestamptz;
	v_counts int[];
	v_pers   int[];
	v_rules  jsonb;
	v_maxw   int;
	v_slots  jsonb := '{}';
	v_times  timestamptz[];
	v_rcpt   text;
	v_pos    int;
	v_slot   timestamptz;
	v_cap    int;
	v_at     jsonb;
	v_found  jsonb;
	v_def    jsonb;
	v_quiet  jsonb;
	v_defer  jsonb;
	v_reason text;
	v_f      jsonb;
BEGIN
	-- Lock the capped recipients first, in key order (no deadlock between
	-- batches), so that two batches cannot both take the last free slot.
	PERFORM pg_advisory_xact_lock(1395929923, k.key)
	   FROM (SELECT DISTINCT hashtext(t.rcpt) AS key
	           FROM jsonb_to_recordset(batch) AS x(channel text, "to" jsonb, db_rules jsonb,
	                                               reject jsonb)
	          CROSS JOIN LATERAL jsonb_array_elements_text(x."to") AS t(rcpt)
	          WHERE x.channel = 'sms' AND jsonb_typeof(x."to") = 'array'
	            AND jsonb_typeof(x.reject) IS DISTINCT FROM 'object'
	            AND jsonb_typeof(x.db_rules) = 'array'
	            AND x.db_rules @> '[{"check": "sms_cap"}]'
	          ORDER BY 1) AS k;
	-- The widest window of the batch: older deliveries cannot matter.
	SELECT max((ru->>'per_s')::int) INTO v_maxw
	  FROM jsonb_array_elements(batch) AS x(e)
	 CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(x.e->'db_rules') = 'array'
	                                              THEN x.e->'db_rules' ELSE '[]' END) AS ru
	 WHERE ru->>'check' = 'sms_cap' AND jsonb_typeof(ru->'per_s') = 'number';

	FOR r IN
		SELECT x.ord, x.app, x.ikey, x.channel, x.purpose, x."to", x.reject, x.db_rules,
		       x.not_before, x.findings, s.address IS NOT NULL AS known, s.department
		  FROM jsonb_to_recordset(batch) AS x(ord int, app text, ikey text, channel text,
		       purpose text, sender text, "to" jsonb, reject jsonb, db_rules jsonb,
		       not_before bigint, findings jsonb)
		  LEFT JOIN herald.staff AS s ON s.address = lower(x.sender) AND s.active
		 WHERE jsonb_typeof(x.reject) = 'object' OR jsonb_typeof(x.db_rules) = 'array'
		    OR x.not_before IS NOT NULL
		 ORDER BY x.ord
	LOOP
		-- A resend of a stored message is answered as a duplicate whatever
		-- the policy says of it now (PROTOCOL 1.7: a committed key always
		-- gets its first ACK): no refusal, no violation, no slot taken.
		CONTINUE WHEN r.ikey IS NOT NULL AND EXISTS (
			SELECT 1 FROM herald.messages AS m
			 WHERE m.app = r.app AND m.idempotency_key = r.ikey);
		IF jsonb_typeof(r.reject) = 'object' THEN
			v_out := v_out || jsonb_build_object(r.ord::text, jsonb_strip_nulls(jsonb_build_object(
				'rejected', true,
				'error_field', r.reject->>'field', 'error_reason', r.reject->>'reason')));
			CONTINUE;
		END IF;
		CONTINUE WHEN NOT r.known;

		v_err := NULL;
		v_counts := '{}';
		v_pers := '{}';
		v_rules := '[]';
		FOR v_rule IN
			SELECT u.x FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.db_rules) = 'array'
			                                          THEN r.db_rules ELSE '[]' END) AS u(x)
		LOOP
			v_check := v_rule->>'check';
			IF v_check = 'im_group' THEN
				IF r.channel = 'im' AND v_err IS NULL THEN
					v_err := herald.policy_im_group(v_rule, r."to", r.department);
				END IF;
			ELSIF v_check = 'sms_consent' THEN
				IF r.channel = 'sms' AND r.purpose = 'marketing' AND v_err IS NULL THEN
					v_err := herald.policy_sms_consent(v_rule, r."to");
				END IF;
			ELSIF v_check = 'sms_cap' THEN
				IF jsonb_typeof(v_rule->'count') IS DISTINCT FROM 'number'
				   OR jsonb_typeof(v_rule->'per_s') IS DISTINCT FROM 'number'
				   OR (v_rule->>'count')::numeric < 1 OR (v_rule->>'per_s')::numeric < 1 THEN
					RAISE EXCEPTION 'intake_batch: entry %: sms_cap needs count >= 1 and per_s >= 1, got %',
						r.ord, v_rule USING ERRCODE = 'invalid_parameter_value';
				END IF;
				IF r.channel = 'sms' THEN
					v_counts := v_counts || (v_rule->>'count')::int;
					v_pers := v_pers || (v_rule->>'per_s')::int;
					v_rules := v_rules || jsonb_build_array(v_rule);
				END IF;
			ELSE
				RAISE EXCEPTION 'intake_batch: entry %: unknown db rule check %', r.ord,
					coalesce(v_check, 'null') USING ERRCODE = 'invalid_parameter_value';
			END IF;
		END LOOP;
		IF v_err IS NOT NULL THEN
			v_out := v_out || jsonb_build_object(r.ord::text, jsonb_build_object(
				'rejected', true, 'error_field', v_err->>'field',
				'error_reason', v_err->>'reason', 'violation', v_err));
			CONTINUE;
		END IF;

		v_t0 := CASE WHEN r.not_before IS NOT NULL THEN greatest(now(), to_timestamp(r.not_before))
		             ELSE now() END;
		v_at := NULL;
		v_found := '[]';
		v_def := '[]';
		-- A resend of a stored message will be answered as a duplicate: it
		-- must not take a slot from the entries after it.
		IF cardinality(v_counts) > 0 AND jsonb_typeof(r."to") = 'array'
		   AND NOT EXISTS (SELECT 1 FROM herald.messages AS m
		                    WHERE m.app = r.app AND m.idempotency_key = r.ikey) THEN
			v_at := '[]';
			FOR v_rcpt, v_pos IN
				SELECT t.rcpt, t.pos::int - 1
				  FROM jsonb_array_elements_text(r."to") WITH ORDINALITY AS t(rcpt, pos)
				 ORDER BY t.pos
			LOOP
				IF NOT v_slots ? v_rcpt THEN
					v_slots := v_slots || jsonb_build_object(v_rcpt, (
						SELECT coalesce(jsonb_agg(coalesce(d.sent_at, d.next_attempt_at)), '[]')
						  FROM herald.deliveries AS d
						 WHERE d.channel = 'sms' AND d.recipient = v_rcpt
						   AND coalesce(d.sent_at, d.next_attempt_at)
						       > now() - make_interval(secs => v_maxw)
						   AND d.state NOT IN ('cancelled', 'failed', 'expired',
						                       'rejected_by_approver')));
				END IF;
				v_times := ARRAY(SELECT u.t::timestamptz
				                   FROM jsonb_array_elements_text(v_slots -> v_rcpt) AS u(t)
				                  ORDER BY 1);
				SELECT s.slot, s.cap INTO v_slot, v_cap
				  FROM herald.sms_cap_slot(v_times, v_t0, v_counts, v_pers) AS s;
				v_slots := jsonb_set(v_slots, ARRAY[v_rcpt],
				                     (v_slots -> v_rcpt) || jsonb_build_array(v_slot));
				v_at := v_at || jsonb_build_array(v_slot);
				IF v_slot > v_t0 THEN
					v_rule := v_rules -> (v_cap - 1);
					v_reason := format('%s: %s SMS in %s already; deferred to %s (POLICY %s)',
					                   v_rcpt, v_counts[v_cap], herald.duration_text(v_pers[v_cap]),
					                   herald.time_text(v_slot), coalesce(v_rule->>'clause', 'S3'));
					v_found := v_found || jsonb_build_array(jsonb_build_object(
						'rule', coalesce(v_rule->>'rule', 'sms_cap'),
						'clause', coalesce(v_rule->>'clause', 'S3'),
						'action', 'defer',
						'severity', coalesce(v_rule->>'severity', 'info'),
						'reason', v_reason,
						'field', format('msg.to[%s]', v_pos)));
					v_def := v_def || jsonb_build_array(jsonb_build_object(
						'pos', v_pos, 'until', v_slot,
						'rule', coalesce(v_rule->>'rule', 'sms_cap'),
						'clause', coalesce(v_rule->>'clause', 'S3'), 'reason', v_reason));
				END IF;
			END LOOP;
		END IF;

		v_quiet := NULL;
		IF r.not_before IS NOT NULL AND to_timestamp(r.not_before) > now() THEN
			v_defer := NULL;
			FOR v_f IN
				SELECT u.f FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.findings) = 'array'
				                                          THEN r.findings ELSE '[]' END) AS u(f)
			LOOP
				IF v_f->>'action' = 'defer' THEN
					v_defer := v_f;
					EXIT;
				END IF;
			END LOOP;
			v_quiet := jsonb_build_object('until', to_timestamp(r.not_before),
			                              'rule', coalesce(v_defer->>'rule', 'quiet_hours'),
			                              'clause', v_defer->>'clause',
			                              'reason', v_defer->>'reason');
		END IF;
		v_out := v_out || jsonb_build_object(r.ord::text, jsonb_strip_nulls(jsonb_build_object(
			'rejected', false, 'times', v_at,
			'db_findings', CASE WHEN jsonb_array_length(v_found) > 0 THEN v_found END,
			'deferred', CASE WHEN jsonb_array_length(v_def) > 0 THEN v_def END,
			'quiet', v_quiet)));
	END LOOP;
	RETURN v_out;
END
$$;

-- Store one batch of submissions: the contract with heraldd's store
-- module. As in 003 (entries, approvals, notifications), plus these
-- optional keys per entry; an entry without them is stored exactly as
-- before:
--	"findings": [{"rule", "clause", "action", "severity", "reason",
--	    "field"}]  heraldd's policy findings: kept in messages.findings
--	    (followed by the database's own), and each with action reject or
--	    warn is a violations row plus a 'policy.violation' event.
--	"reject": {"rule", "clause", "severity", "field", "reason"}  heraldd
--	    refused the entry: nothing is stored but its violations; the
--	    answer is error 'policy' with error_field / error_reason.
--	"db_rules": [{"rule", "clause", "check", "action", "severity", ...}]
--	    checks that need the database: "im_group" (I3: every IM "to" an
--	    active registered group admitting the sender's department),
--	    "sms_consent" (S1: every number of a marketing SMS consented),
--	    each refusing with error 'policy', field msg.to[i] and a
--	    violation; "sms_cap" with "count" and "per_s" (S3, several
--	    allowed): each SMS delivery is scheduled at the earliest time its
--	    recipient's caps allow, counting earlier entries of the batch,
--	    with a 'delivery.deferred' event and a defer finding when that is
--	    later than asked. Any other check RAISEs.
--	"not_before": unix seconds | null  quiet hours: the deliveries are
--	    due at greatest(now(), not_before), with one 'delivery.deferred'
--	    event for the message.
-- One row per entry, by ord:
--	new message     ord, id, class, stored state, false, NULL, NULL, NULL, S3 findings | NULL
--	duplicate       ord, original id, class, initial state, true, NULL...
--	unknown sender  ord, NULL, class, NULL, false, 'unknown_sender', NULL...
--	refused         ord, NULL, class, NULL, false, 'policy', field, reason, NULL
-- Precedence and the other choices: see DECISIONS.
--
-- The batch is still one statement for messages, deliveries, requests
-- and their events; entries with policy keys cost a PL/pgSQL pass
-- before it (intake_policy) and one statement after it for violations
-- and deferral events. A batch without any (plain email) skips both.
DROP FUNCTION herald.intake_batch(jsonb);
CREATE FUNCTION herald.intake_batch(batch jsonb)
RETURNS TABLE (ord int, message_id bigint, class text, state text, duplicate boolean,
               error text, error_field text, error_reason text, findings jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_ords     int[];
	v_ids      bigint[];
	v_classes  text[];
	v_states   text[];
	v_apps     text[];
	v_ikeys    text[];
	v_reqs     bigint[];
	v_has_find boolean;
	v_pol      jsonb;
	v_nviol    bigint;
BEGIN
	IF jsonb_typeof(batch) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'intake_batch: batch must be a JSON array, got %',
			coalesce(jsonb_typeof(batch), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- jsonpath walks the batch in place (no copy of each entry).
	IF jsonb_path_exists(batch, '$[*] ? (@.reject.type() == "object"
	                                     || @.db_rules.type() == "array"
	                                     || @.not_before.type() == "number")') THEN
		v_pol := herald.intake_policy(batch);
	END IF;
	v_has_find := jsonb_path_exists(batch,
		'$[*].findings[*] ? (@.action == "reject" || @.action == "warn")');

	WITH e AS MATERIALIZED (
		-- Only known senders that nothing refused get an id; the others
		-- are never inserted.
		SELECT r.*, s.department AS dept,
		       r.class = 'important' OR coalesce(r.important, false)
		       OR coalesce(r.major, false) AS imp,
		       r.class = 'bulk' AS blk,
		       CASE WHEN r.class IN ('important', 'bulk') OR coalesce(r.important, false)
		                 OR coalesce(r.major, false) THEN 'held' ELSE r.state END AS st,
		       CASE WHEN r.not_before IS NOT NULL
		            THEN greatest(now(), to_timestamp(r.not_before)) END AS t0,
		       v_pol -> (r.ord::text) -> 'times' AS p_times,
		       v_pol -> (r.ord::text) -> 'db_findings' AS p_findings,
		       CASE WHEN s.address IS NOT NULL
		                 AND NOT coalesce((v_pol -> (r.ord::text) ->> 'rejected')::boolean, false)
		            THEN nextval('herald.messages_id_seq') END AS id
		  FROM jsonb_to_recordset(batch) AS r(
		       ord int, app text, ikey text, channel text, sender text, class text,
		       state text, subject text, body text, html text, cc_reason text,
		       purpose text, reply_by bigint, flags jsonb, tags jsonb, "to" jsonb,
		       cc jsonb, attachments jsonb, bulk jsonb, important boolean, major boolean,
		       approval_due_s int, reminder_s int, findings jsonb, not_before bigint)
		  LEFT JOIN herald.staff AS s ON s.address = lower(r.sender) AND s.active
	), m AS (
		INSERT INTO herald.messages AS t
		       (id, app, idempotency_key, channel, sender, class, initial_state, subject,
		        body, html, cc_reason, purpose, reply_by, flags, tags, findings)
		SELECT e.id, e.app, e.ikey, e.channel, e.sender, e.class, e.st, e.subject,
		       e.body, e.html, e.cc_reason, e.purpose, to_timestamp(e.reply_by),
		       CASE WHEN jsonb_typeof(e.flags) = 'array'
		            THEN ARRAY(SELECT jsonb_array_elements_text(e.flags))
		            ELSE '{}'::text[] END,
		       coalesce(e.tags, '{}'::jsonb),
		       CASE WHEN e.p_findings IS NULL AND jsonb_typeof(e.findings) IS DISTINCT FROM 'array'
		            THEN '[]'::jsonb
		            ELSE CASE WHEN jsonb_typeof(e.findings) = 'array' THEN e.findings
		                      ELSE '[]'::jsonb END
		                 || coalesce(e.p_findings, '[]'::jsonb) END
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
		INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state,
		                               next_attempt_at)
		SELECT n.id, n.channel, r.recipient, r.kind, n.st,
		       coalesce(CASE WHEN r.kind_order = 0
		                     THEN (n.p_times ->> (r.pos::int - 1))::timestamptz END,
		                n.t0, now())
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

	IF v_pol IS NOT NULL OR v_has_find THEN
		-- Violations of the stored and the refused entries (never of a
		-- duplicate), with their events, and the deferral events.
		WITH it AS MATERIALIZED (
			SELECT x.ord, x.app, lower(x.sender) AS sender, x.findings, u.id,
			       p.v -> 'violation' AS violation, p.v -> 'deferred' AS deferred,
			       p.v -> 'quiet' AS quiet
			  FROM jsonb_to_recordset(batch) AS x(ord int, app text, sender text, findings jsonb)
			  JOIN unnest(v_ords, v_ids) AS u(ord, id) ON u.ord = x.ord
			 CROSS JOIN LATERAL (SELECT v_pol -> (x.ord::text) AS v) AS p
			 WHERE u.id IS NOT NULL OR coalesce((p.v ->> 'rejected')::boolean, false)
		), vf AS (
			SELECT it.ord, f.pos AS sub, it.app, it.sender, it.id, f.x AS v
			  FROM it
			 CROSS JOIN LATERAL jsonb_array_elements(
			       CASE WHEN jsonb_typeof(it.findings) = 'array' THEN it.findings
			            ELSE '[]'::jsonb END) WITH ORDINALITY AS f(x, pos)
			 WHERE f.x->>'action' IN ('reject', 'warn')
			UNION ALL
			SELECT it.ord, 9223372036854775807, it.app, it.sender, it.id,
			       it.violation || '{"action": "reject"}'::jsonb
			  FROM it
			 WHERE jsonb_typeof(it.violation) = 'object'
		), vi AS (
			INSERT INTO herald.violations AS t
			       (sender, department, app, message_id, rule, clause, severity, action,
			        reason, field)
			SELECT vf.sender, s.department, vf.app, vf.id, coalesce(vf.v->>'rule', ''),
			       coalesce(vf.v->>'clause', ''), vf.v->>'severity', vf.v->>'action',
			       vf.v->>'reason', vf.v->>'field'
			  FROM vf
			  LEFT JOIN herald.staff AS s ON s.address = vf.sender
			 ORDER BY vf.ord, vf.sub
			RETURNING t.*
		), dl AS (
			SELECT dd.id, dd.message_id,
			       row_number() OVER (PARTITION BY dd.message_id ORDER BY dd.id) - 1 AS pos
			  FROM herald.deliveries AS dd
			 WHERE dd.message_id IN (SELECT it.id FROM it
			                          WHERE it.id IS NOT NULL
			                            AND jsonb_typeof(it.deferred) = 'array'
			                            AND it.deferred <> '[]'::jsonb)
		), ev AS (
			INSERT INTO herald.audit_events (actor, kind, message_id, delivery_id, detail)
			SELECT y.actor, y.kind, y.message_id, y.delivery_id, y.detail
			  FROM (
				SELECT 'app:' || vi.app, 'policy.violation', vi.message_id, NULL::bigint,
				       jsonb_strip_nulls(jsonb_build_object(
				           'violation_id', vi.id, 'sender', vi.sender,
				           'department', vi.department, 'rule', vi.rule, 'clause', vi.clause,
				           'severity', vi.severity, 'action', vi.action, 'field', vi.field,
				           'reason', left(vi.reason, 512)))::text,
				       0 AS grp, vi.id AS k1, 0::bigint AS k2
				  FROM vi
				UNION ALL
				SELECT 'app:' || it.app, 'delivery.deferred', it.id, NULL::bigint,
				       jsonb_strip_nulls(jsonb_build_object(
				           'rule', it.quiet->>'rule', 'clause', it.quiet->>'clause',
				           'until', herald.iso_ms((it.quiet->>'until')::timestamptz),
				           'reason', it.quiet->>'reason'))::text,
				       1, it.ord::bigint, 0::bigint
				  FROM it
				 WHERE it.id IS NOT NULL AND jsonb_typeof(it.quiet) = 'object'
				UNION ALL
				SELECT 'app:' || it.app, 'delivery.deferred', it.id, dl.id,
				       jsonb_build_object(
				           'rule', x.v->>'rule', 'clause', x.v->>'clause',
				           'until', herald.iso_ms((x.v->>'until')::timestamptz),
				           'reason', x.v->>'reason')::text,
				       1, it.ord::bigint, dl.id
				  FROM it
				 CROSS JOIN LATERAL jsonb_array_elements(it.deferred) AS x(v)
				  JOIN dl ON dl.message_id = it.id AND dl.pos = (x.v->>'pos')::int
				 WHERE it.id IS NOT NULL AND jsonb_typeof(it.deferred) = 'array'
			       ) AS y(actor, kind, message_id, delivery_id, detail, grp, k1, k2)
			 ORDER BY y.grp, y.k1, y.k2
		)
		SELECT count(*) INTO v_nviol FROM vi;
	END IF;

	IF v_pol IS NULL AND array_position(v_ids, NULL) IS NULL THEN
		-- Nothing refused, no duplicate, no unknown sender (the usual case).
		RETURN QUERY
		SELECT u.ord, u.id, u.class, u.state, false, NULL::text, NULL::text, NULL::text,
		       NULL::jsonb
		  FROM unnest(v_ords, v_ids, v_classes, v_states) AS u(ord, id, class, state);
		RETURN;
	END IF;

	-- Not inserted: refused by the policy, else a duplicate (answered
	-- with the original, even when its sender is no longer staff), else
	-- an unknown sender.
	RETURN QUERY
	SELECT u.ord,
	       coalesce(u.id, o.id),
	       CASE WHEN u.id IS NOT NULL OR o.id IS NULL THEN u.class ELSE o.class END,
	       CASE WHEN u.id IS NOT NULL THEN u.state ELSE o.initial_state END,
	       u.id IS NULL AND o.id IS NOT NULL,
	       CASE WHEN p.rejected THEN 'policy'
	            WHEN u.id IS NULL AND o.id IS NULL THEN 'unknown_sender' END,
	       CASE WHEN p.rejected THEN p.v ->> 'error_field' END,
	       CASE WHEN p.rejected THEN p.v ->> 'error_reason' END,
	       CASE WHEN u.id IS NOT NULL THEN p.v -> 'db_findings' END
	  FROM unnest(v_ords, v_ids, v_classes, v_states, v_apps, v_ikeys)
	       AS u(ord, id, class, state, app, ikey)
	 CROSS JOIN LATERAL (
	       SELECT v_pol -> (u.ord::text) AS v,
	              coalesce((v_pol -> (u.ord::text) ->> 'rejected')::boolean, false) AS rejected
	       ) AS p
	  LEFT JOIN herald.messages AS o
	         ON u.id IS NULL AND NOT p.rejected
	        AND o.app = u.app AND o.idempotency_key = u.ikey
	 ORDER BY u.ord;
END
$$;

-- ---------------------------------------------------------------------
-- Release keeps a deferral (replaces 003's approve; same contract)
-- ---------------------------------------------------------------------

-- Approve message_id as the caller (see decidable for who may). When no
-- request of the message is pending any more its held deliveries are
-- queued, due at greatest(now(), next_attempt_at) (an S3 or quiet-hours
-- deferral made at intake survives the wait for approval), with
-- 'message.released' and NOTIFY herald_released '<message_id>' in this
-- transaction; when a level 2 request becomes actionable the seniors are
-- notified. One row per request approved.
CREATE OR REPLACE FUNCTION herald.approve(message_id bigint, comment text DEFAULT NULL)
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
			   SET state = 'queued', next_attempt_at = greatest(now(), d.next_attempt_at),
			       updated_at = now()
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

-- ---------------------------------------------------------------------
-- Looking at one message (replaces 003's message_detail)
-- ---------------------------------------------------------------------

-- Everything heraldctl show prints about message_id, as
--	{"message": {.., "redacted": bool}, "recipients": {"to": [..], "cc":
--	 [..], "to_count", "cc_count"} (lists cut at 100), "attachments":
--	 [{"name", "type", "size"}], "bulk_application": {..} | null,
--	 "approvals": [{"request_id", "kind", "level", "approver_role",
--	 "department", "state", "due_at", "remind_at", "reminded_at",
--	 "decided_by", "decided_at", "comment", "created_at"}], "deliveries":
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
			'created_at', r.created_at) ORDER BY r.level, r.kind)
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

-- ---------------------------------------------------------------------
-- Violations (V2)
-- ---------------------------------------------------------------------

-- The violations recorded in [since, until) (NULL = open), optionally of
-- one sender (compared lower-cased) or department, newest first.
CREATE FUNCTION herald.violations_list(since timestamptz DEFAULT NULL,
                                       until timestamptz DEFAULT NULL,
                                       of_sender text DEFAULT NULL,
                                       of_department text DEFAULT NULL)
RETURNS TABLE (id bigint, at timestamptz, sender text, department text, app text,
               message_id bigint, rule text, clause text, severity text, action text,
               reason text, field text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	PERFORM herald.check_supervisor();
	RETURN QUERY
	SELECT v.id, v.at, v.sender, v.department, v.app, v.message_id, v.rule, v.clause,
	       v.severity, v.action, v.reason, v.field
	  FROM herald.violations AS v
	 WHERE (violations_list.since IS NULL OR v.at >= violations_list.since)
	   AND (violations_list.until IS NULL OR v.at < violations_list.until)
	   AND (of_sender IS NULL OR v.sender = lower(btrim(of_sender)))
	   AND (of_department IS NULL OR v.department = of_department)
	 ORDER BY v.at DESC, v.id DESC;
END
$$;

-- Violations in [since, until) counted per sender (group_by 'sender':
-- key = sender, department = the one recorded on their latest
-- violation) or per department (group_by 'department': key =
-- department, NULL for senders unknown to staff), with counts by
-- severity and the latest time; most violations first.
CREATE FUNCTION herald.violations_report(since timestamptz DEFAULT NULL,
                                         until timestamptz DEFAULT NULL,
                                         group_by text DEFAULT 'sender')
RETURNS TABLE (key text, department text, count bigint, info bigint, minor bigint,
               major bigint, critical bigint, last_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	PERFORM herald.check_supervisor();
	IF group_by IS NULL OR group_by NOT IN ('sender', 'department') THEN
		RAISE EXCEPTION 'violations_report: group_by must be sender or department, not %',
			coalesce(group_by, 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT g.k,
	       (array_agg(v.department ORDER BY v.at DESC, v.id DESC))[1],
	       count(*),
	       count(*) FILTER (WHERE v.severity = 'info'),
	       count(*) FILTER (WHERE v.severity = 'minor'),
	       count(*) FILTER (WHERE v.severity = 'major'),
	       count(*) FILTER (WHERE v.severity = 'critical'),
	       max(v.at)
	  FROM herald.violations AS v
	 CROSS JOIN LATERAL (SELECT CASE WHEN group_by = 'sender' THEN v.sender
	                                 ELSE v.department END AS k) AS g
	 WHERE (violations_report.since IS NULL OR v.at >= violations_report.since)
	   AND (violations_report.until IS NULL OR v.at < violations_report.until)
	 GROUP BY g.k
	 ORDER BY count(*) DESC, g.k NULLS LAST;
END
$$;

-- ---------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------

REVOKE ALL ON herald.im_groups, herald.sms_consents, herald.violations FROM PUBLIC;
REVOKE ALL ON SEQUENCE herald.violations_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION herald.is_plain_name(text),
	herald.is_e164(text),
	herald.operator_actor(text),
	herald.check_supervisor(),
	herald.iso_ms(timestamptz),
	herald.group_add(text, text, text, text, text, text[]),
	herald.group_remove(text),
	herald.group_list(),
	herald.check_consent_args(text, text),
	herald.consent_add(text, text),
	herald.consent_revoke(text, text),
	herald.consent_import(jsonb),
	herald.consent_show(text),
	herald.policy_im_group(jsonb, jsonb, text),
	herald.policy_sms_consent(jsonb, jsonb),
	herald.sms_cap_slot(timestamptz[], timestamptz, int[], int[]),
	herald.intake_policy(jsonb),
	herald.intake_batch(jsonb),
	herald.violations_list(timestamptz, timestamptz, text, text),
	herald.violations_report(timestamptz, timestamptz, text) FROM PUBLIC;

-- The broker and operators read everything (as in 001); nobody writes
-- these tables but the functions above.
GRANT SELECT ON herald.im_groups, herald.sms_consents, herald.violations
	TO herald_broker, herald_operator;
GRANT EXECUTE ON FUNCTION herald.intake_batch(jsonb) TO herald_broker;

-- Operators, and staff with role operator (checked inside), manage the
-- registries; supervisors (checked inside) read violations. Staff log in
-- with roles that are members of herald_approver.
GRANT EXECUTE ON FUNCTION herald.group_add(text, text, text, text, text, text[]),
	herald.group_remove(text),
	herald.group_list(),
	herald.consent_add(text, text),
	herald.consent_revoke(text, text),
	herald.consent_import(jsonb),
	herald.consent_show(text),
	herald.violations_list(timestamptz, timestamptz, text, text),
	herald.violations_report(timestamptz, timestamptz, text)
	TO herald_operator, herald_approver;
GRANT EXECUTE ON FUNCTION herald.is_plain_name(text), herald.is_e164(text),
	herald.iso_ms(timestamptz)
	TO herald_broker, herald_operator, herald_approver;
