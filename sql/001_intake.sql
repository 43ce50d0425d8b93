-- NAME
--	001_intake - messages, deliveries, the hash-chained audit trail, intake
-- DESCRIPTION
--	PostgreSQL is Herald's single source of truth. This migration creates
--	schema "herald" with the intake tables, the append-only audit trail
--	sealed into eight independent hash chains, the group roles, and
--	herald.intake_batch(), the one function through which heraldd stores
--	a batch of accepted messages.
--
--	heraldctl db migrate applies it once, in one transaction, as the role
--	that will own every object here; it must not contain BEGIN/COMMIT.
--	Everything is schema-qualified so search_path does not matter.
-- PRIVILEGES
--	herald_broker, herald_operator and herald_approver are NOLOGIN group
--	roles; a login role is made a member (CREATE ROLE x LOGIN IN ROLE
--	herald_broker). Nobody but the owner may write any table directly:
--	every write is a SECURITY DEFINER function owned by the migrating role.

CREATE SCHEMA IF NOT EXISTS herald;

-- Roles are cluster-wide: another database in the same cluster may have
-- created them already, possibly at the same moment.
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['herald_broker', 'herald_operator', 'herald_approver'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			BEGIN
				EXECUTE format('CREATE ROLE %I NOLOGIN', r);
			EXCEPTION WHEN duplicate_object OR unique_violation THEN
				NULL;
			END;
		END IF;
	END LOOP;
END
$roles$;

-- ---------------------------------------------------------------------
-- Messages and what hangs off them
-- ---------------------------------------------------------------------

CREATE TABLE herald.messages (
	id              bigserial PRIMARY KEY,
	app             text NOT NULL,
	idempotency_key text,
	channel         text NOT NULL CHECK (channel IN ('email', 'im', 'sms')),
	sender          text NOT NULL,
	class           text NOT NULL CHECK (class IN ('general', 'important', 'bulk')),
	-- The state the deliveries were created in; a resend with the same
	-- idempotency key is answered with it.
	initial_state   text NOT NULL CHECK (initial_state IN ('queued', 'held')),
	subject         text,
	body            text,
	html            text,
	cc_reason       text,
	purpose         text CHECK (purpose IN ('service', 'urgent', 'marketing')),
	reply_by        timestamptz,
	flags           text[] NOT NULL DEFAULT '{}',
	tags            jsonb NOT NULL DEFAULT '{}',
	created_at      timestamptz NOT NULL DEFAULT now(),
	-- NULL keys never conflict: messages without a key are never deduplicated.
	CONSTRAINT messages_app_idempotency_key_key UNIQUE (app, idempotency_key)
);

CREATE TABLE herald.attachments (
	message_id bigint NOT NULL REFERENCES herald.messages (id),
	idx        int NOT NULL CHECK (idx >= 1),
	name       text NOT NULL,
	mime_type  text NOT NULL,
	data       bytea NOT NULL,
	size       int NOT NULL CHECK (size >= 0),
	PRIMARY KEY (message_id, idx)
);
-- Attachments are mostly compressed formats already: do not spend CPU
-- trying to compress them again.
ALTER TABLE herald.attachments ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE herald.bulk_applications (
	message_id      bigint PRIMARY KEY REFERENCES herald.messages (id),
	purpose         text,
	audience        text,
	recipient_count int CHECK (recipient_count >= 0),
	summary         text,
	applicant       text NOT NULL,
	created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE herald.deliveries (
	id              bigserial PRIMARY KEY,
	message_id      bigint NOT NULL REFERENCES herald.messages (id),
	channel         text NOT NULL CHECK (channel IN ('email', 'im', 'sms')),
	recipient       text NOT NULL,
	kind            text NOT NULL CHECK (kind IN ('to', 'cc')),
	state           text NOT NULL CONSTRAINT deliveries_state_check CHECK (state IN (
	                    'held', 'queued', 'dispatched', 'sent', 'retry_wait',
	                    'failed', 'rejected_by_approver', 'expired', 'cancelled')),
	attempts        int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	lease_until     timestamptz,
	lease_owner     text,
	last_error      text,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The scheduler's scan: only waiting rows, so the index stays small while
-- the table grows (finished rows are the vast majority).
CREATE INDEX deliveries_due_idx ON herald.deliveries (next_attempt_at)
	WHERE state IN ('queued', 'retry_wait');
CREATE INDEX deliveries_message_id_idx ON herald.deliveries (message_id);

-- ---------------------------------------------------------------------
-- Audit trail: append-only, sealed into hash chains
-- ---------------------------------------------------------------------
--
-- Each INSERT statement into audit_events is sealed by one link on one
-- of eight chains, picked by the inserting backend (pg_backend_pid() % 8),
-- so concurrent brokers usually lock different chain heads and intake is
-- not serialized. A link stores the ordered event ids, the digest of
-- their row hashes and hash = sha256(prev_hash || digest || chain_id ||
-- seq || sealed_at); herald.audit_verify() recomputes all of it.
-- Messages may be pruned later, so audit rows carry ids, not foreign keys.

CREATE TABLE herald.audit_events (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT clock_timestamp(),
	actor       text NOT NULL,
	kind        text NOT NULL,
	message_id  bigint,
	delivery_id bigint,
	-- JSON kept as text: the hash input is exactly what was written.
	detail      text NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_message_id_idx ON herald.audit_events (message_id)
	WHERE message_id IS NOT NULL;

CREATE TABLE herald.audit_chains (
	chain_id int PRIMARY KEY CHECK (chain_id BETWEEN 0 AND 7),
	seq      bigint NOT NULL CHECK (seq >= 0),
	head     bytea NOT NULL CHECK (length(head) = 32)
);
INSERT INTO herald.audit_chains (chain_id, seq, head)
SELECT c, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
FROM generate_series(0, 7) AS c;

CREATE TABLE herald.audit_links (
	chain_id  int NOT NULL REFERENCES herald.audit_chains (chain_id),
	seq       bigint NOT NULL CHECK (seq >= 1),
	prev_hash bytea NOT NULL,
	digest    bytea NOT NULL,
	hash      bytea NOT NULL,
	event_ids bigint[] NOT NULL,
	sealed_at timestamptz NOT NULL,
	PRIMARY KEY (chain_id, seq)
);

-- Microseconds since the Unix epoch; equals
-- (extract(epoch FROM t) * 1000000)::bigint but is built from immutable
-- operators only, so the hash functions below can be inlined.
CREATE FUNCTION herald.epoch_us(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (extract(epoch FROM (t - '1970-01-01 00:00:00+00'::timestamptz)) * 1000000)::bigint;

-- The row hash of one audit event: sha256 of the UTF-8 canonical text
-- id|at_us|actor|kind|message_id|delivery_id|detail (empty for NULL ids).
-- Sealing and verification both call this one definition. It is written
-- with || rather than concat_ws() (same text: actor, kind and detail are
-- NOT NULL) and with the database-encoding bytes rather than
-- convert_to(..., 'UTF8') (the cluster is UTF8): both of those are only
-- STABLE, which would stop the planner from inlining this function, and
-- the call overhead is a measurable share of intake time.
CREATE FUNCTION herald.audit_event_hash(id bigint, at timestamptz, actor text, kind text,
                                        message_id bigint, delivery_id bigint, detail text)
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN sha256(decode(replace(
	id::text || '|' || herald.epoch_us(at)::text || '|' || actor || '|' || kind || '|'
	|| coalesce(message_id::text, '') || '|' || coalesce(delivery_id::text, '') || '|' || detail,
	'\', '\\'), 'escape'));

-- The hash of one link, binding it to its predecessor, chain and place.
CREATE FUNCTION herald.audit_link_hash(prev_hash bytea, digest bytea, chain_id int,
                                       seq bigint, sealed_at timestamptz)
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN sha256(prev_hash || digest || int4send(chain_id) || int8send(seq)
              || int8send(herald.epoch_us(sealed_at)));

-- Seal the rows one INSERT statement added to audit_events into one link.
CREATE FUNCTION herald.audit_seal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = herald, pg_temp
AS $$
DECLARE
	v_chain  int := pg_backend_pid() % 8;
	v_ids    bigint[];
	v_digest bytea;
	v_seq    bigint;
	v_head   bytea;
	v_hash   bytea;
	v_at     timestamptz;
BEGIN
	-- One sort feeding both aggregates (they keep the subquery's order).
	SELECT array_agg(s.id), sha256(string_agg(s.row_hash, ''::bytea))
	  INTO v_ids, v_digest
	  FROM (SELECT n.id,
	               herald.audit_event_hash(n.id, n.at, n.actor, n.kind, n.message_id,
	                                       n.delivery_id, n.detail) AS row_hash
	          FROM new_events AS n
	         ORDER BY n.id) AS s;
	IF v_ids IS NULL THEN
		RETURN NULL;
	END IF;

	-- The row lock is held until commit: links of one chain are
	-- appended in commit order, each on top of the committed head. Take
	-- this backend's chain if free (or already ours), else the next free
	-- one, so concurrent transactions never queue behind each other's
	-- commit while any of the eight chains is free; wait only when all
	-- eight are busy.
	SELECT c.chain_id, c.seq, c.head INTO v_chain, v_seq, v_head
	  FROM herald.audit_chains AS c
	 ORDER BY (c.chain_id - v_chain + 8) % 8
	 LIMIT 1
	   FOR UPDATE SKIP LOCKED;
	IF NOT FOUND THEN
		v_chain := pg_backend_pid() % 8;
		SELECT c.seq, c.head INTO STRICT v_seq, v_head
		  FROM herald.audit_chains AS c
		 WHERE c.chain_id = v_chain
		   FOR UPDATE;
	END IF;
	v_seq := v_seq + 1;
	v_at := clock_timestamp();
	v_hash := herald.audit_link_hash(v_head, v_digest, v_chain, v_seq, v_at);

	INSERT INTO herald.audit_links (chain_id, seq, prev_hash, digest, hash, event_ids, sealed_at)
	VALUES (v_chain, v_seq, v_head, v_digest, v_hash, v_ids, v_at);
	UPDATE herald.audit_chains SET seq = v_seq, head = v_hash WHERE chain_id = v_chain;
	RETURN NULL;
END
$$;

CREATE TRIGGER audit_events_seal
	AFTER INSERT ON herald.audit_events
	REFERENCING NEW TABLE AS new_events
	FOR EACH STATEMENT EXECUTE FUNCTION herald.audit_seal();

CREATE FUNCTION herald.audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION 'herald.% is append-only: % refused', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'restrict_violation',
		      HINT = 'Audit records are never updated or deleted.';
END
$$;

-- Statement-level, so even an UPDATE or DELETE matching no row fails.
CREATE TRIGGER audit_events_append_only
	BEFORE UPDATE OR DELETE OR TRUNCATE ON herald.audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION herald.audit_refuse_change();
CREATE TRIGGER audit_links_append_only
	BEFORE UPDATE OR DELETE OR TRUNCATE ON herald.audit_links
	FOR EACH STATEMENT EXECUTE FUNCTION herald.audit_refuse_change();
-- ALWAYS: session_replication_role = replica must not switch them off.
ALTER TABLE herald.audit_events ENABLE ALWAYS TRIGGER audit_events_seal;
ALTER TABLE herald.audit_events ENABLE ALWAYS TRIGGER audit_events_append_only;
ALTER TABLE herald.audit_links ENABLE ALWAYS TRIGGER audit_links_append_only;

-- Every problem in the audit trail, one row each; no rows = intact.
--	seq_gap             link seq is not its predecessor's + 1
--	prev_hash_mismatch  link does not point at its predecessor's hash
--	hash_mismatch       link hash does not match its own fields
--	digest_mismatch     the link's events are not what was sealed
--	link_empty          link seals no event
--	event_missing       an event a link sealed no longer exists
--	event_sealed_twice  an event appears in more than one link
--	event_unsealed      an event is in no link
--	head_mismatch       a chain head disagrees with the chain's last link
CREATE FUNCTION herald.audit_verify()
RETURNS TABLE (problem text, chain_id int, seq bigint, event_id bigint)
LANGUAGE sql STABLE SET search_path = herald, pg_temp
AS $$
WITH l AS (
	SELECT l.*,
	       lag(l.seq) OVER w AS pred_seq,
	       lag(l.hash) OVER w AS pred_hash,
	       row_number() OVER (PARTITION BY l.chain_id ORDER BY l.seq DESC) AS from_end
	  FROM herald.audit_links AS l
	WINDOW w AS (PARTITION BY l.chain_id ORDER BY l.seq)
), le AS (
	SELECT l.chain_id, l.seq, u.event_id, u.pos
	  FROM herald.audit_links AS l, unnest(l.event_ids) WITH ORDINALITY AS u(event_id, pos)
), le_e AS (
	SELECT le.*, e.id AS found_id,
	       herald.audit_event_hash(e.id, e.at, e.actor, e.kind, e.message_id,
	                               e.delivery_id, e.detail) AS row_hash
	  FROM le LEFT JOIN herald.audit_events AS e ON e.id = le.event_id
), recomputed AS (
	SELECT le_e.chain_id, le_e.seq,
	       sha256(string_agg(le_e.row_hash, ''::bytea ORDER BY le_e.pos)) AS digest,
	       count(le_e.found_id) = count(*) AS complete
	  FROM le_e
	 GROUP BY le_e.chain_id, le_e.seq
), zero AS (
	SELECT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea AS h
)
SELECT p.problem, p.chain_id, p.seq, p.event_id FROM (
	SELECT 'seq_gap', l.chain_id, l.seq, NULL::bigint
	  FROM l WHERE l.seq <> coalesce(l.pred_seq, 0) + 1
	UNION ALL
	SELECT 'prev_hash_mismatch', l.chain_id, l.seq, NULL
	  FROM l, zero WHERE l.prev_hash IS DISTINCT FROM coalesce(l.pred_hash, zero.h)
	UNION ALL
	SELECT 'hash_mismatch', l.chain_id, l.seq, NULL
	  FROM l
	 WHERE l.hash IS DISTINCT FROM
	       herald.audit_link_hash(l.prev_hash, l.digest, l.chain_id, l.seq, l.sealed_at)
	UNION ALL
	SELECT 'link_empty', l.chain_id, l.seq, NULL
	  FROM l WHERE cardinality(l.event_ids) = 0
	UNION ALL
	SELECT 'digest_mismatch', l.chain_id, l.seq, NULL
	  FROM l JOIN recomputed AS r ON r.chain_id = l.chain_id AND r.seq = l.seq
	 WHERE NOT r.complete OR r.digest IS DISTINCT FROM l.digest
	UNION ALL
	SELECT 'event_missing', le_e.chain_id, le_e.seq, le_e.event_id
	  FROM le_e WHERE le_e.found_id IS NULL
	UNION ALL
	SELECT 'event_sealed_twice', min(le.chain_id), min(le.seq), le.event_id
	  FROM le GROUP BY le.event_id HAVING count(*) > 1
	UNION ALL
	SELECT 'event_unsealed', NULL, NULL, e.id
	  FROM herald.audit_events AS e
	 WHERE NOT EXISTS (SELECT 1 FROM le WHERE le.event_id = e.id)
	UNION ALL
	SELECT 'head_mismatch', c.chain_id, c.seq, NULL
	  FROM herald.audit_chains AS c
	  CROSS JOIN zero
	  LEFT JOIN l ON l.chain_id = c.chain_id AND l.from_end = 1
	 WHERE c.seq <> coalesce(l.seq, 0) OR c.head IS DISTINCT FROM coalesce(l.hash, zero.h)
) AS p(problem, chain_id, seq, event_id)
ORDER BY p.chain_id NULLS LAST, p.seq NULLS LAST, p.event_id NULLS LAST, p.problem
$$;

-- ---------------------------------------------------------------------
-- Intake
-- ---------------------------------------------------------------------

-- Store one batch of accepted messages: the contract with heraldd's
-- store module. batch is a JSON array of entries
--	{"ord", "app", "ikey", "channel", "sender", "class", "state",
--	 "subject", "body", "html", "cc_reason", "purpose", "reply_by"
--	 (unix seconds), "flags": [..], "tags": {..}, "to": [..], "cc": [..],
--	 "attachments": [{"name", "type", "data" (base64)}],
--	 "bulk": {"purpose", "audience", "recipient_count", "summary"} | null}
-- with unique ord and no two entries sharing (app, ikey) (the broker
-- guarantees both). A new message gets its attachments, bulk application,
-- one delivery per recipient (to, then cc) in the entry's state and one
-- 'message.accepted' audit event. An entry whose (app, ikey) exists
-- already writes nothing and is answered with the original message's id,
-- class and initial state, duplicate = true. One row per entry, by ord.
--
-- Set-based on purpose (no per-entry loop): one statement writes the whole
-- batch; only when some entry was a duplicate does a second statement look
-- the originals up. It must be a separate statement because in READ
-- COMMITTED only a new statement sees a conflicting row that a concurrent
-- transaction committed while the insert waited on it.
CREATE FUNCTION herald.intake_batch(batch jsonb)
RETURNS TABLE (ord int, message_id bigint, class text, state text, duplicate boolean)
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
BEGIN
	IF jsonb_typeof(batch) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'intake_batch: batch must be a JSON array, got %',
			coalesce(jsonb_typeof(batch), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	WITH e AS MATERIALIZED (
		SELECT r.*, nextval('herald.messages_id_seq') AS id
		  FROM jsonb_to_recordset(batch) AS r(
		       ord int, app text, ikey text, channel text, sender text, class text,
		       state text, subject text, body text, html text, cc_reason text,
		       purpose text, reply_by bigint, flags jsonb, tags jsonb, "to" jsonb,
		       cc jsonb, attachments jsonb, bulk jsonb)
	), m AS (
		INSERT INTO herald.messages AS t
		       (id, app, idempotency_key, channel, sender, class, initial_state, subject,
		        body, html, cc_reason, purpose, reply_by, flags, tags)
		SELECT e.id, e.app, e.ikey, e.channel, e.sender, e.class, e.state, e.subject,
		       e.body, e.html, e.cc_reason, e.purpose, to_timestamp(e.reply_by),
		       CASE WHEN jsonb_typeof(e.flags) = 'array'
		            THEN ARRAY(SELECT jsonb_array_elements_text(e.flags))
		            ELSE '{}'::text[] END,
		       coalesce(e.tags, '{}'::jsonb)
		  FROM e
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
		SELECT n.id, n.channel, r.recipient, r.kind, n.state
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
	), ev AS (
		INSERT INTO herald.audit_events (actor, kind, message_id, detail)
		SELECT 'app:' || n.app, 'message.accepted', n.id,
		       jsonb_strip_nulls(jsonb_build_object(
		           'class', n.class,
		           'state', n.state,
		           'recipients',
		               (CASE WHEN jsonb_typeof(n."to") = 'array'
		                     THEN jsonb_array_length(n."to") ELSE 0 END)
		             + (CASE WHEN jsonb_typeof(n.cc) = 'array'
		                     THEN jsonb_array_length(n.cc) ELSE 0 END),
		           'cc_reason', n.cc_reason))::text
		  FROM n
		 ORDER BY n.ord
	)
	-- One sort feeding all aggregates (they keep the subquery's order).
	SELECT array_agg(s.ord), array_agg(s.id), array_agg(s.class), array_agg(s.state),
	       array_agg(s.app), array_agg(s.ikey)
	  INTO v_ords, v_ids, v_classes, v_states, v_apps, v_ikeys
	  FROM (SELECT e.ord, m.id, e.class, e.state, e.app, e.ikey
	          FROM e LEFT JOIN m ON m.id = e.id
	         ORDER BY e.ord) AS s;

	IF array_position(v_ids, NULL) IS NULL THEN
		-- No duplicate (the usual case): answer from the batch itself.
		RETURN QUERY
		SELECT u.ord, u.id, u.class, u.state, false
		  FROM unnest(v_ords, v_ids, v_classes, v_states) AS u(ord, id, class, state);
		RETURN;
	END IF;

	RETURN QUERY
	SELECT u.ord,
	       coalesce(u.id, o.id),
	       CASE WHEN u.id IS NOT NULL THEN u.class ELSE o.class END,
	       CASE WHEN u.id IS NOT NULL THEN u.state ELSE o.initial_state END,
	       u.id IS NULL
	  FROM unnest(v_ords, v_ids, v_classes, v_states, v_apps, v_ikeys)
	       AS u(ord, id, class, state, app, ikey)
	  LEFT JOIN herald.messages AS o
	         ON u.id IS NULL AND o.app = u.app AND o.idempotency_key = u.ikey
	 ORDER BY u.ord;
END
$$;

-- ---------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------

CREATE VIEW herald.delivery_counts AS
SELECT d.state, d.channel, m.class, count(*) AS count
  FROM herald.deliveries AS d
  JOIN herald.messages AS m ON m.id = d.message_id
 GROUP BY d.state, d.channel, m.class;

-- ---------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA herald FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA herald FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA herald FROM PUBLIC;
-- Functions later migrations add are not executable by everybody either:
-- each grant is deliberate.
ALTER DEFAULT PRIVILEGES IN SCHEMA herald REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

GRANT USAGE ON SCHEMA herald TO herald_broker, herald_operator, herald_approver;

-- heraldd reads everything and writes only through intake_batch (and the
-- transition functions later migrations add).
GRANT SELECT ON ALL TABLES IN SCHEMA herald TO herald_broker;
GRANT EXECUTE ON FUNCTION herald.intake_batch(jsonb) TO herald_broker;

-- Operators watch queues and the audit trail.
GRANT SELECT ON ALL TABLES IN SCHEMA herald TO herald_operator;
GRANT EXECUTE ON FUNCTION herald.audit_verify() TO herald_broker, herald_operator;

-- Approvers see only what they are asked to decide, through SECURITY
-- DEFINER functions that check who is asking (held_for_me, message_detail
-- in 003): no direct read of other people's messages.
GRANT SELECT ON herald.delivery_counts TO herald_approver;

GRANT EXECUTE ON FUNCTION herald.epoch_us(timestamptz),
	herald.audit_event_hash(bigint, timestamptz, text, text, bigint, bigint, text),
	herald.audit_link_hash(bytea, bytea, int, bigint, timestamptz)
	TO herald_broker, herald_operator, herald_approver;
