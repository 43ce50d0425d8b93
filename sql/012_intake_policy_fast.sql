-- NAME
--	012_intake_policy_fast - herald.intake_policy() without its per-item
--	quadratic and per-item queries
-- DESCRIPTION
--	Replaces 004's herald.intake_policy() with the same contract and
--	results; it owns nothing else.
--
--	Same rules as 001: applied by heraldctl db migrate in one
--	transaction, no BEGIN/COMMIT, everything schema-qualified.
-- WHY (2-core VM, private cluster, 40 batches of 250 items; the items'
-- transfer and JSON parsing alone cost ~21 us each)
--	An IM item (it carries the I3 db rule) cost ~54 us in
--	intake_policy() against ~21 us for an email item, twice the whole
--	intake of an email. Per item it:
--	  - appended its answer to a jsonb object (v_out := v_out || ...),
--	    which copies the object: quadratic in the batch;
--	  - looked its idempotency key up in its own statement (a resend is
--	    answered as a duplicate whatever the policy says), ~7 us;
--	  - opened a query to walk its db rules (FOR ... IN SELECT over
--	    jsonb_array_elements).
--	Now the answers are collected in arrays and made one object at the
--	end, the resends of the batch are found by one statement before the
--	loop, and the rules are walked by index. The checks themselves
--	(policy_im_group, policy_sms_consent, sms_cap_slot) are unchanged.
--	Measured (same cluster, alternating): intake_policy() 67-68 -> 41-44
--	us per IM item including the ~21 us of transfer and parsing;
--	intake_batch() of IM messages 8,700 -> 11,600 per second.
-- CHANGES TO EARLIER OBJECTS
--	herald.intake_policy(jsonb): same signature, result and owner; still
--	not granted to anyone (only intake_batch calls it).

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
CREATE OR REPLACE FUNCTION herald.intake_policy(batch jsonb)
RETURNS jsonb
LANGUAGE plpgsql SET search_path = herald, pg_temp
AS $$
DECLARE
	r        record;
	v_out    jsonb;
	-- One entry per item, built at the end: appending to a jsonb object
	-- copies it, quadratic in the batch.
	o_keys   text[] := '{}';
	o_vals   jsonb[] := '{}';
	v_i      int;
	v_dups   int[];
	v_seqscan text := current_setting('enable_seqscan');
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

	-- The items that are resends of stored messages, in one statement (a
	-- key look-up each, sequential scans off: sql/007's WHY).
	PERFORM set_config('enable_seqscan', 'off', true);
	SELECT array_agg(x.ord) INTO v_dups
	  FROM jsonb_to_recordset(batch) AS x(ord int, app text, ikey text, reject jsonb,
	                                      db_rules jsonb, not_before bigint)
	 WHERE (jsonb_typeof(x.reject) = 'object' OR jsonb_typeof(x.db_rules) = 'array'
	        OR x.not_before IS NOT NULL)
	   AND x.ikey IS NOT NULL
	   AND EXISTS (SELECT 1 FROM herald.messages AS m
	                WHERE m.app = x.app AND m.idempotency_key = x.ikey);
	PERFORM set_config('enable_seqscan', v_seqscan, true);
	v_dups := coalesce(v_dups, '{}');

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
		CONTINUE WHEN r.ord = ANY (v_dups);
		IF jsonb_typeof(r.reject) = 'object' THEN
			o_keys := o_keys || r.ord::text;
			o_vals := o_vals || jsonb_strip_nulls(jsonb_build_object(
				'rejected', true,
				'error_field', r.reject->>'field', 'error_reason', r.reject->>'reason'));
			CONTINUE;
		END IF;
		CONTINUE WHEN NOT r.known;

		v_err := NULL;
		v_counts := '{}';
		v_pers := '{}';
		v_rules := '[]';
		FOR v_i IN 0 .. CASE WHEN jsonb_typeof(r.db_rules) = 'array'
		                     THEN jsonb_array_length(r.db_rules) ELSE 0 END - 1
		LOOP
			v_rule := r.db_rules -> v_i;
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
			o_keys := o_keys || r.ord::text;
			o_vals := o_vals || jsonb_build_object(
				'rejected', true, 'error_field', v_err->>'field',
				'error_reason', v_err->>'reason', 'violation', v_err);
			CONTINUE;
		END IF;

		v_t0 := CASE WHEN r.not_before IS NOT NULL THEN greatest(now(), to_timestamp(r.not_before))
		             ELSE now() END;
		v_at := NULL;
		v_found := '[]';
		v_def := '[]';
		-- A resend of a stored message will be answered as a duplicate: it
		-- must not take a slot from the entries after it.
		IF cardinality(v_counts) > 0 AND jsonb_typeof(r."to") = 'array' THEN
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
		o_keys := o_keys || r.ord::text;
		o_vals := o_vals || jsonb_strip_nulls(jsonb_build_object(
			'rejected', false, 'times', v_at,
			'db_findings', CASE WHEN jsonb_array_length(v_found) > 0 THEN v_found END,
			'deferred', CASE WHEN jsonb_array_length(v_def) > 0 THEN v_def END,
			'quiet', v_quiet));
	END LOOP;
	SELECT coalesce(jsonb_object_agg(u.k, u.v), '{}') INTO v_out
	  FROM unnest(o_keys, o_vals) AS u(k, v);
	RETURN v_out;
END
$$;
